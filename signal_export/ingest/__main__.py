"""``python -m signal_export.ingest``: the same as the ``signal-ingest`` console script."""

import sys

from signal_export.ingest.cli import main

sys.exit(main())
