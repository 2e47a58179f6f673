"""The command line: a thin skin over the library API in pgshift/__init__.py."""
