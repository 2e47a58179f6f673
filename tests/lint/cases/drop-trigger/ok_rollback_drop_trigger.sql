-- Rollback: 20250101000000_add_audit_trigger_rollback.sql
DROP TRIGGER audit ON orders;
