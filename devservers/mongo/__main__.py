"""``python -m devservers.mongo``: run the local MongoDB development server."""

from devservers.mongo.cli import main

raise SystemExit(main())
