"""Pure rewrites on parse trees: a plain statement made into what pgshift runs instead."""
