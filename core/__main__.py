"""`python -m core` entry point."""

import sys

from core.cli import main

if __name__ == "__main__":  # decode worker processes may import this module; they must not run the CLI
    sys.exit(main())
