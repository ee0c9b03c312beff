"""Where a penalty search keeps its fits: in memory while they are small, in a temporary directory when not.

The search needs every fit twice after it was made: once for the selection (only the chosen one, to
be refitted and written) and once for the path score, which reads each fit's graph and Jacobian.
At 10,000 genes with 1000 regulators one fit's weights take about 720 MB and a search makes about
ten fits, so keeping them all in memory would cost more than the fit itself. The weights of fits
larger than :data:`SPILL_BYTES` are therefore written to a temporary directory (under ``TMPDIR``) as
they arrive, a tensors-only torch file read back with ``weights_only=True`` like every file scnode
reads (:mod:`scnode.core.serialization`); the rest of the fit (configuration, history, generator
state) stays in memory. A fit is read back as :meth:`~scnode.SparseODE.clone` copies one: a model
built from the configuration, given the weights, generator state and history. The directory is
removed with the store. Results do not depend on where a fit was kept.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import serialization
from ..model import SparseODE

SPILL_BYTES = 16 * 2**20
"""Fits whose parameters and buffers take at least this many bytes are kept on disk, not in memory."""


def model_bytes(model: SparseODE) -> int:
    """Bytes of a model's parameters and buffers."""
    tensors = [*model.system.parameters(), *model.system.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class Spilled:
    """A fit whose weights are on disk: the model without its field (``shell``) and the file of the weights."""

    shell: SparseODE
    path: Path

    def load(self) -> SparseODE:
        """Return the fit, its weights read back (a new model: :meth:`~scnode.SparseODE.clone` with them)."""
        state = serialization.load(self.path, what="a fit of the penalty search", map_location=self.shell.device)
        return self.shell.clone(state)


class FitStore:
    """A list of fitted models that keeps the large ones on disk.

    ``stash(model)`` returns an entry (the model itself, or a :class:`Spilled` one) to ``append``;
    indexing and iteration return models, read back from disk where they were spilled, one at a
    time (iterate rather than index repeatedly: each access of a spilled fit reads it again).
    """

    def __init__(self) -> None:
        self._entries: list[SparseODE | Spilled] = []
        self._dir: tempfile.TemporaryDirectory | None = None
        self._count = 0

    def stash(self, model: SparseODE, path: Path | None = None) -> SparseODE | Spilled:
        """Return ``model``, or, when it is large, a :class:`Spilled` entry: its weights on disk, the rest in memory.

        ``model`` itself is left as it is (the caller drops it to free its weights). ``path``: a file
        that already holds the model's weights (a search's ``search_dir``), read back from there
        instead of written again; the store never deletes it.
        """
        if model_bytes(model) < SPILL_BYTES:
            return model
        if path is None:
            path = self._write(model)
        shell = copy.copy(model)  # its configuration, history and generator, without the field
        shell.system = None
        shell.generator = torch.Generator(device=model.device)  # its own: the model's may advance
        shell.generator.set_state(model.generator.get_state())
        shell.history = copy.deepcopy(model.history)
        return Spilled(shell, path)

    def _write(self, model: SparseODE) -> Path:
        """Write a model's weights into the store's temporary directory; return the file."""
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="scnode-search-")
        path = Path(self._dir.name) / f"fit{self._count}.pt"
        self._count += 1
        torch.save(model.system.state_dict(), path)
        return path

    def append(self, entry: SparseODE | Spilled) -> None:
        """Add a model, or an entry returned by :meth:`stash`."""
        self._entries.append(entry if isinstance(entry, Spilled) else self.stash(entry))

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> SparseODE:
        entry = self._entries[i]
        return entry.load() if isinstance(entry, Spilled) else entry

    def __setitem__(self, i: int, model: SparseODE) -> None:
        self._entries[i] = self.stash(model)

    def __iter__(self) -> Iterator[SparseODE]:
        for i in range(len(self._entries)):
            yield self[i]

    @property
    def spilled(self) -> int:
        """How many of the fits are kept on disk."""
        return sum(isinstance(e, Spilled) for e in self._entries)

    @property
    def directory(self) -> Path | None:
        """The temporary directory of the spilled fits (``None`` while none was spilled)."""
        return None if self._dir is None else Path(self._dir.name)

    def close(self) -> None:
        """Delete the spilled fits (the store keeps only its in-memory ones; indexing a spilled one then fails)."""
        if self._dir is not None:
            self._dir.cleanup()
