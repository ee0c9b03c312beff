"""Saving and loading a :class:`~scnode.SparseODE`: a directory with its configuration, weights and record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..core import History, serialization
from ._config import ModelConfig, resolve_device

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


def _read_json(file: Path, what: str) -> Any:
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file} is not valid JSON ({err}); it should hold the saved model's {what}.") from None


def load(
    cls: type[SparseODE],
    path: str | Path,
    *,
    var_names: Sequence[str] | None = None,
    device: str | torch.device = "auto",
) -> SparseODE:
    """Read a model written by :func:`save` (see :meth:`scnode.SparseODE.load`)."""
    path = Path(path)
    config_file, weights, hist, prep = (
        path / n for n in ("config.json", "model.pt", "history.json", "preprocessing.json")
    )
    if not config_file.exists():
        raise FileNotFoundError(f"{path} holds no saved SparseODE (config.json is missing).")
    device = resolve_device(device)  # a bad device is no fault of the file
    cfg = _read_json(config_file, "configuration")
    try:
        config = ModelConfig(**cfg)
    except (TypeError, ValueError) as err:  # not a dict, other keys or values
        raise ValueError(f"{config_file} is not a valid SparseODE configuration ({err}).") from None
    if var_names is not None and list(map(str, var_names)) != config.var_names:
        raise ValueError(f"Variable names differ from the saved model's ({config.var_names}).")
    try:
        model = cls(config.n_vars, device=device, **config.constructor_kwargs())
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config_file} is not a valid SparseODE configuration ({err}).") from None
    try:
        history = History(**_read_json(hist, "history")) if hist.exists() else None
    except TypeError as err:
        raise ValueError(f"{hist} is not a SparseODE history ({err}).") from None
    preprocessing = _read_json(prep, "preprocessing record") if prep.exists() else None
    state = serialization.load(weights, what="a saved SparseODE's weights (model.pt)", map_location=model.device)
    serialization.check_state_dict(state, model.system.state_dict(), source=f"{weights} (for {config_file})")
    model.system.load_state_dict(state)
    model.system.eval()
    if history is not None:
        model.history = history
    model.preprocessing = preprocessing
    return model
