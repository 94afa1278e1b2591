"""``python -m fungrad``: the same as the ``fungrad`` command."""

import sys

from fungrad.cli import main

if __name__ == "__main__":
    sys.exit(main())
