"""Execute the tutorials and store their outputs in place.

    python tutorials/execute.py                       # all five, full setting, outputs written back
    python tutorials/execute.py synthetic.ipynb       # one of them
    python tutorials/execute.py --fast --no-write     # what CI checks (SCNODE_TUTORIAL_FAST=1)

Each notebook runs in a fresh kernel with the tutorials folder as working directory; the wall time of
each is printed (docs/tutorials.md states the times of the last full run).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ORDER = ["hematopoiesis.ipynb", "paul15.ipynb", "mocap.ipynb", "synthetic.ipynb", "grn.ipynb"]


def execute(path: Path, *, fast: bool, timeout: int = 1200) -> tuple[nbformat.NotebookNode, float]:
    """Run one notebook in a fresh kernel; returns the executed notebook and its wall time in seconds."""
    os.environ["SCNODE_TUTORIAL_FAST"] = "1" if fast else "0"
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if os.environ.get("SCNODE_DATA_DIR"):  # the kernel runs in the tutorials folder: make the path absolute
        os.environ["SCNODE_DATA_DIR"] = str(Path(os.environ["SCNODE_DATA_DIR"]).resolve())
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    return nb, time.perf_counter() - start


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", default=ORDER)
    parser.add_argument("--fast", action="store_true", help="few iterations (SCNODE_TUTORIAL_FAST=1)")
    parser.add_argument("--no-write", action="store_true", help="do not store the outputs")
    args = parser.parse_args()
    for name in args.notebooks:
        path = HERE / Path(name).name
        nb, seconds = execute(path, fast=args.fast)
        if not args.no_write:
            nbformat.write(nb, path)
        print(f"{path.name}: {seconds:.0f} s{' (fast)' if args.fast else ''}", flush=True)


if __name__ == "__main__":
    main()
