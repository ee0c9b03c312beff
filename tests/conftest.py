import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

# Real data live next to the project (../shared/data); .ci/run sets the same path.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if "SCNODE_DATA_DIR" not in os.environ and _SHARED.is_dir():
    os.environ["SCNODE_DATA_DIR"] = str(_SHARED)
