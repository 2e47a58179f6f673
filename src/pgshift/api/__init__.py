"""The bodies of the facade's functions, one private module per group of verbs.

Import them through `pgshift`: these modules are not the public API, and nothing below this
layer (ops, db, source, lint, ...) may import them.
"""
