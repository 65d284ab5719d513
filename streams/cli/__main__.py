"""`python -m streams.cli`: what the restarts and the tests start."""

import sys

from streams.cli import main

if __name__ == "__main__":
    sys.exit(main())
