-- Rollback: 20250103000000_to_text_rollback.sql

SELECT 1;
