"""``python -m flatref``: the command line (:mod:`flatref.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
