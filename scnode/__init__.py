"""scnode: sparse neural ODEs for single-cell trajectories, motion capture and system identification.

``import scnode as scn`` gives ``scn.tl``, ``scn.pl``, ``scn.pp``, ``scn.datasets`` and
``scn.SparseODE``. The submodules are imported on first use, so ``scnode.core`` works with torch alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_SUBMODULES = ("core", "datasets", "pl", "pp", "tl")

if TYPE_CHECKING:  # pragma: no cover
    from . import core, datasets, pl, pp, tl
    from .model import SparseODE


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "SparseODE":
        from .model import SparseODE

        return SparseODE
    raise AttributeError(f"module 'scnode' has no attribute {name!r}")


__all__ = ["SparseODE", "__version__", "core", "datasets", "pl", "pp", "tl"]
