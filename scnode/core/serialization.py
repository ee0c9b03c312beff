"""Torch files without pickled code: loads restricted to tensors and plain data, saves that cannot be left half-written.

Every file scnode reads back (a saved model's ``model.pt``, a fit's checkpoint) holds tensors, dicts,
lists, tuples, numbers, strings, booleans and ``None`` only, and is read with
``torch.load(weights_only=True)``, which refuses anything else: unpickling other objects can run
arbitrary code from the file.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def _reason(err: Exception) -> str:
    if isinstance(err, pickle.UnpicklingError):
        return (
            "it holds something other than tensors and plain data, or is garbled (scnode never unpickles other "
            "objects: they can run code from the file)"
        )
    if isinstance(err, EOFError):
        return "it is empty"
    if isinstance(err, OSError | RuntimeError):
        return f"it is truncated or damaged ({type(err).__name__}: {err})"
    return f"it is not a torch file ({type(err).__name__}: {err})"


def load(path: str | os.PathLike, *, what: str, map_location: str | torch.device | None = None) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain data only.

    Parameters
    ----------
    path
        The file.
    what
        What the file should be, for the error message (e.g. ``"a saved SparseODE's weights"``).
    map_location
        Where to put the tensors.

    Returns
    -------
    The object stored.

    Raises
    ------
    FileNotFoundError
        When ``path`` is no file.
    ValueError
        Naming the file, when it is empty, truncated, garbled or holds other objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (it should be {what}).")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, EOFError, OSError, RuntimeError, KeyError, ...
        raise ValueError(f"{path} cannot be read as {what}: {_reason(err)}.") from None


def _replace(path: str | os.PathLike, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place (never half-written)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file renamed into place: an interrupted save leaves the old file whole."""
    _replace(path, lambda tmp: torch.save(obj, tmp))


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file the same way as :func:`save`: an interrupted write leaves the old file whole."""
    _replace(path, lambda tmp: tmp.write_text(text))


def check_state_dict(state: Any, reference: dict[str, torch.Tensor], *, source: str) -> None:
    """Raise a ValueError (``source`` names the file) unless ``state`` has ``reference``'s entries and shapes.

    Checked before loading, so that a mismatching file changes nothing (``load_state_dict`` copies
    the entries that fit before it complains about the others).
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{source} holds no state dict of tensors.")

    def listed(items: list[str]) -> str:
        return "; ".join(items[:5]) + (" ..." if len(items) > 5 else "")

    missing = [k for k in reference if k not in state]
    unknown = [k for k in state if k not in reference]
    shapes = [
        f"{k} {tuple(state[k].shape)}, not {tuple(v.shape)}"
        for k, v in reference.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{what} {listed(items)}"
        for what, items in (("missing", missing), ("unknown", unknown), ("shapes", shapes))
        if items
    ]
    if problems:
        raise ValueError(f"{source} holds the weights of another architecture ({', '.join(problems)}).")
