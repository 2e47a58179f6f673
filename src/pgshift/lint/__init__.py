"""Static checks of migration files: the zero-downtime practices of SPEC section 4, as code.

The package is pure (no database, no processes); `pgshift.validate` adds the database checks.
"""

#: The newest PostgreSQL major version the rules know about; the default target.
LATEST_MAJOR = 18
