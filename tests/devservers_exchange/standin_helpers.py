"""Constants shared by the stand-in tests (imported by name, not via conftest)."""

import pandas as pd

#: The frozen clock of ``frozen_standin``: the 12:34 minute of 2024-06-01 is in progress.
STANDIN_NOW = pd.Timestamp("2024-06-01T12:34:56Z")
