"""Pure rewrites on parse trees: what a plain statement implies (pre-flight checks, ...)."""
