"""``python -m research.models``: see :mod:`research.models.cli`."""

import sys

from research.models.cli import main

sys.exit(main())
