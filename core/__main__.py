"""`python -m core` entry point."""
from core.cli import main

if __name__ == "__main__":   # decode worker processes may import this module; they must not run the CLI
    raise SystemExit(main())
