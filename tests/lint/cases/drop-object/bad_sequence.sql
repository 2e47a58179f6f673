DROP SEQUENCE IF EXISTS invoice_numbers;
