"""Saving and loading a :class:`~scnode.SparseODE`: a directory with its configuration, weights and record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..core import History
from ._config import ModelConfig

if TYPE_CHECKING:
    from ._sparse_ode import SparseODE


def save(model: SparseODE, path: str | Path) -> None:
    """Write ``config.json``, ``model.pt``, ``history.json`` (and ``preprocessing.json``) into ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(asdict(model.config), indent=2))
    torch.save(model.system.state_dict(), path / "model.pt")
    (path / "history.json").write_text(json.dumps(model.history.as_dict()))
    if model.preprocessing is not None:
        (path / "preprocessing.json").write_text(json.dumps(model.preprocessing, indent=2))


def load(
    cls: type[SparseODE],
    path: str | Path,
    *,
    var_names: Sequence[str] | None = None,
    device: str | torch.device = "auto",
) -> SparseODE:
    """Read a model written by :func:`save` (see :meth:`scnode.SparseODE.load`)."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} holds no saved SparseODE (config.json is missing).")
    cfg = json.loads((path / "config.json").read_text())
    if var_names is not None and list(map(str, var_names)) != cfg["var_names"]:
        raise ValueError(f"Variable names differ from the saved model's ({cfg['var_names']}).")
    config = ModelConfig(**cfg)
    model = cls(cfg["n_vars"], device=device, **config.constructor_kwargs())
    model.system.load_state_dict(torch.load(path / "model.pt", map_location=model.device))
    model.system.eval()
    hist = path / "history.json"
    if hist.exists():
        model.history = History(**json.loads(hist.read_text()))
    prep = path / "preprocessing.json"
    if prep.exists():
        model.preprocessing = json.loads(prep.read_text())
    return model
