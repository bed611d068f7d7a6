"""`python -m core` entry point. Imports nothing but the standard library before the CLI, so that a
Python without the project's packages (outside the virtualenv) gets one line saying what to do."""

import sys


def run() -> int:
    try:
        from core.cli import main
    except ModuleNotFoundError as missing:
        print(
            f"error: {sys.executable} lacks the package {missing.name!r}: activate the virtualenv first "
            "(source .venv/bin/activate), or run .venv/bin/lookalike; `make app` creates it",
            file=sys.stderr,
        )
        return 2
    return main()


if __name__ == "__main__":  # decode worker processes may import this module; they must not run the CLI
    sys.exit(run())
