DELETE FROM pg_enum WHERE enumlabel = 'legacy' AND enumtypid = 'order_status'::regtype;
