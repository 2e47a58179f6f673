"""Pure rewrites on parse trees: a statement made into what pgshift runs, or what it implies."""
