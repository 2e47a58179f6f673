"""pgshift test suite (a package so that `-p tests.plugins.pg` can import its plugins)."""
