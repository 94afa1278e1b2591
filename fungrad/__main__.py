"""``python -m fungrad``: the same as the ``fungrad`` command."""

import sys

from fungrad.cli import main

sys.exit(main())
