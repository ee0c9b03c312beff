"""Lines every benchmark report starts and ends with: the command, the machine, the total time."""

from __future__ import annotations

import platform
import shlex
import sys
import time
from collections.abc import Sequence

import torch


def command(script: str, argv: Sequence[str] | None = None) -> str:
    """``Command: `python benchmarks/<script> <args>``` (a markdown line break at the end)."""
    return f"Command: `python benchmarks/{script} {shlex.join(argv if argv is not None else sys.argv[1:])}`  "


def machine() -> str:
    """``Machine: <processor>, <n> torch threads, torch <version>``."""
    cpu = platform.processor() or platform.machine()
    return f"Machine: {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def total(start: float) -> str:
    """``Total <minutes> min.`` since ``start`` (a ``time.perf_counter()`` value)."""
    return f"Total {(time.perf_counter() - start) / 60:.1f} min."
