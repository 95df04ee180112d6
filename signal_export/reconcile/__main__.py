"""``python -m signal_export.reconcile`` = ``signal-reconcile``."""

import sys

from signal_export.reconcile.cli import main

sys.exit(main())
