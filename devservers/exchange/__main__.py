"""Entry point for ``python -m devservers.exchange``."""

import sys

from devservers.exchange.cli import main

sys.exit(main())
