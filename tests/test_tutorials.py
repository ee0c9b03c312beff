"""The tutorials run (fast setting) and the API reference lists every public function."""

import os
import re
from pathlib import Path

import pytest

import scnode as scn

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
DATA = Path(os.environ.get("SCNODE_DATA_DIR", "/nonexistent"))
NEEDS = {"hematopoiesis": "hematopoiesis", "paul15": "paul15", "mocap": "mocap", "synthetic": None, "grn": None}


def test_every_tutorial_is_listed_and_has_outputs():
    import nbformat

    found = sorted(p.stem for p in TUTORIALS.glob("*.ipynb"))
    assert found == sorted(NEEDS)
    docs = (ROOT / "docs" / "tutorials.md").read_text()
    for name in found:
        assert f"tutorials/{name}" in docs
        nb = nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{name}: committed without outputs"
        assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{name}: error output"
        figures = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
        assert figures, f"{name}: no figure"


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_tutorial_runs_fast(name, monkeypatch):
    pytest.importorskip("nbclient")
    data = NEEDS[name]
    if data is not None and not (DATA / data).is_dir():
        pytest.skip(f"SCNODE_DATA_DIR has no {data}/")
    import importlib.util

    spec = importlib.util.spec_from_file_location("execute", TUTORIALS / "execute.py")
    execute = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(execute)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SCNODE_TUTORIAL_FAST", "1")  # execute() sets both; monkeypatch restores them
    monkeypatch.setenv("SCNODE_DATA_DIR", str(DATA))
    nb, _ = execute.execute(TUTORIALS / f"{name}.ipynb", fast=True)  # raises CellExecutionError on failure
    assert os.environ["SCNODE_TUTORIAL_FAST"] == "1"
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def _public(module) -> list[str]:
    return [f"{module.__name__.split('.')[-1]}.{n}" for n in module.__all__]


def test_api_reference_lists_every_public_function():
    text = (ROOT / "docs" / "api.md").read_text()
    listed = set(re.findall(r"^\s+((?:tl|pl|pp|datasets)\.\w+|SparseODE)$", text, flags=re.M))
    public = {*_public(scn.tl), *_public(scn.pl), *_public(scn.pp), *_public(scn.datasets), "SparseODE"}
    assert public - listed == set(), f"missing from docs/api.md: {sorted(public - listed)}"
    assert listed - public == set(), f"listed but not public: {sorted(listed - public)}"
