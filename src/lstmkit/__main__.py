"""``python -m lstmkit ...``: the same command line as the ``lstmkit`` script."""

import sys

from .cli import script

if __name__ == "__main__":
    sys.exit(script())
