-- @risk-level: high
DELETE FROM sessions WHERE expires_at < now();
