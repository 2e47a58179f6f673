"""Entry point for ``python -m pgshift``."""

from pgshift.cli.main import run

if __name__ == "__main__":
    run()
