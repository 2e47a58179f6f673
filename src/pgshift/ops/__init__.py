"""The verbs: orchestrations over a Target (apply, rollback, backup, health, roundtrip)."""
