"""Pytest plugins of the pgshift test suite, loaded through addopts in pyproject.toml."""
