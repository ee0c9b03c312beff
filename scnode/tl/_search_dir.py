"""A penalty search's fits kept in a directory the user names (``search_dir=``), so that a search resumes.

At whole-transcriptome scale one fit of a search takes tens of minutes on a laptop and a search
makes about ten (docs/results.md); a job's time limit, a closed laptop or Ctrl-C would lose them
all. With a directory, each fit is written there as it ends: its weights (a tensors-only torch file,
read back with ``weights_only=True`` like every file scnode reads) and a JSON record (its row of the
search's table, its history and its generator state). A later search that would make the same fit
reads it back instead: the same data, preprocessing, settings, initial weights, scnode and torch
versions and device give the same *fingerprint*, the name of the subdirectory its fits are kept in.
Since every fit of a search starts from scratch and CPU fits are repeatable, a resumed search gives
the results of an uninterrupted one. A change that could change a fit gives another fingerprint, so
a fit made under other settings is never reused; old subdirectories stay until deleted. The code
itself is named only by scnode's version: a development install whose fitting code changed between
two calls must be given a fresh directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..core import History, serialization

if TYPE_CHECKING:
    from ..model import SparseODE
    from ..pp import TrajectorySet

logger = logging.getLogger("scnode")

FORMAT = 1
"""Version of the directory's layout, part of the fingerprint."""

IGNORED_FIT_KWARGS = ("progress_bar",)
"""Fit settings that do not change a fit, left out of the fingerprint."""


def _feed(h: Any, obj: Any) -> None:
    """Add ``obj`` (tensors, arrays, containers of them, plain values) to the hash ``h``, with its type and shape."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"tensor {t.dtype} {tuple(obj.shape)};".encode())
        h.update(t.view(torch.uint8).numpy())  # the tensor's own bytes, not a copy
    elif isinstance(obj, np.ndarray):
        h.update(f"array {obj.dtype} {obj.shape};".encode())
        h.update(np.ascontiguousarray(obj) if obj.dtype != object else repr(obj.tolist()).encode())
    elif isinstance(obj, dict):
        h.update(f"dict {len(obj)};".encode())
        for key in sorted(obj, key=str):
            h.update(f"{key!s}:".encode())
            _feed(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(f"{type(obj).__name__} {len(obj)};".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"{type(obj).__name__} {obj!r};".encode())


def fingerprint(model: SparseODE, ts: TrajectorySet, held: Any, window: int | None, fit_kwargs: dict) -> str:
    """Return the name shared by every fit of a search: a hash of all that a fit depends on but its lambda.

    ``model`` is a new, unfitted model of the search (any lambda): its configuration without the
    lambda, its initial weights and buffers (prior factors, masks) and its device.
    """
    from .. import __version__

    h = hashlib.blake2b(digest_size=12)
    config = dataclasses.asdict(model.config)
    config.pop("lam")
    _feed(h, ["scnode lambda search", FORMAT, __version__, torch.__version__, str(model.device)])
    _feed(h, config)
    _feed(h, model.system.state_dict())
    _feed(h, {f.name: getattr(ts, f.name) for f in dataclasses.fields(ts)})
    _feed(h, [held, window])
    _feed(h, {k: v for k, v in fit_kwargs.items() if k not in IGNORED_FIT_KWARGS})
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """JSON's form of a table cell (numpy scalars as Python numbers)."""
    return value.item() if isinstance(value, np.generic) else str(value)


class SearchDirectory:
    """The fits of one search (one fingerprint) under ``root``: written as they end, read back by a rerun.

    Parameters
    ----------
    root
        The user's directory (created if missing).
    build
        ``build(lam)``: a new, unfitted model of the search.
    ts, held, window, fit_kwargs
        What the search's fits are made from (see :func:`fingerprint`).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        build: Callable[[float], SparseODE],
        ts: TrajectorySet,
        held: Any,
        window: int | None,
        fit_kwargs: dict,
    ) -> None:
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise ValueError(f"search_dir={str(root)!r} is a file, not a directory.")
        self.build = build
        self._what = (ts, held, window, fit_kwargs)
        self.root = root
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The subdirectory of this search's fits (its fingerprint; computed on first use, then created)."""
        if self._path is None:
            probe = self.build(1.0)
            self._path = self.root / fingerprint(probe, *self._what)
            del probe
            self._path.mkdir(parents=True, exist_ok=True)
        return self._path

    def _files(self, lam: float) -> tuple[Path, Path]:
        stem = f"lam_{float(lam)!r}"
        return self.path / f"{stem}.pt", self.path / f"{stem}.json"

    def __contains__(self, lam: float) -> bool:
        weights, record = self._files(lam)
        return weights.is_file() and record.is_file()

    def save(self, model: SparseODE, row: dict[str, Any]) -> Path:
        """Write a fit that just ended (its weights, then its record); return the weights' file."""
        weights, record = self._files(model.config.lam)
        serialization.save(model.system.state_dict(), weights)
        entry = {
            "format": FORMAT,
            "row": row,
            "history": model.history.as_dict(),
            "generator": model.generator.get_state().tolist(),
        }
        serialization.write_text(json.dumps(entry, default=_plain), record)  # last: its presence marks the fit as whole
        return weights

    def load(self, lam: float) -> tuple[SparseODE, dict[str, Any], Path]:
        """Return a kept fit (its weights read back), its row and its weights' file."""
        weights, record = self._files(lam)
        try:
            entry = json.loads(record.read_text())
            row, history, state = entry["row"], entry["history"], entry["generator"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            raise ValueError(
                f"{record} is not a record of a fit of the penalty search ({type(err).__name__}: {err}); delete it "
                "(and its .pt file) to fit that lambda again."
            ) from None
        model = self.build(lam)
        saved = serialization.load(weights, what="a fit of the penalty search (search_dir)", map_location=model.device)
        serialization.check_state_dict(saved, model.system.state_dict(), source=str(weights))
        model.system.load_state_dict(saved)
        model.system.eval()
        model.generator.set_state(torch.tensor(state, dtype=torch.uint8))
        model.history = History(**history)
        return model, row, weights
