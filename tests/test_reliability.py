"""Interrupts, safe loading and the last bad inputs: each gets a clear error or warning, the AnnData untouched."""

import importlib
import io
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import FAST, FIT, cells, damped_system
from scipy import sparse

import scnode as scn
from scnode.cli import main
from scnode.core import FitInterrupted

train_module = importlib.import_module("scnode.core.train")
SMALL = {"hidden": (8,), "velocity_hidden": (4,), "device": "cpu"}
DATA = Path(os.environ.get("SCNODE_DATA_DIR", "/nonexistent")) / "mocap"
needs_mocap = pytest.mark.skipif(not DATA.is_dir(), reason="SCNODE_DATA_DIR has no mocap/")


@pytest.fixture(scope="module")
def data():
    return damped_system()


# -------------------------------------------------------------------------------------------- helpers
def _dense(x):
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


def _assert_same(a, b, where="adata"):
    """Bit-identical nested content (arrays with their dtypes, frames, dicts)."""
    if isinstance(a, dict) or hasattr(a, "keys"):
        assert set(a.keys()) == set(b.keys()), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    else:
        assert _dense(a).dtype == _dense(b).dtype, where
        np.testing.assert_array_equal(_dense(a), _dense(b), err_msg=where)


def assert_untouched(adata, before):
    """``adata`` equals the copy taken before the call, bit for bit."""
    assert adata.shape == before.shape
    pd.testing.assert_frame_equal(adata.obs, before.obs)
    pd.testing.assert_frame_equal(adata.var, before.var)
    _assert_same(adata.X, before.X, "X")
    for attr in ("layers", "obsm", "varm", "obsp", "varp", "uns"):
        _assert_same(getattr(adata, attr), getattr(before, attr), attr)


@pytest.fixture
def interrupt_at(monkeypatch):
    """``interrupt_at(n)``: raise Ctrl-C in the n-th training iteration (counted by its solve); returns the counter."""
    original = train_module.solve_batched

    def arm(n):  # 0: never
        calls = {"n": 0}

        def solve(func, y0, grid, options):
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt
            return original(func, y0, grid, options)

        monkeypatch.setattr(train_module, "solve_batched", solve)
        return calls

    return arm


# ------------------------------------------------------------------------------------------ interrupts
def test_interrupt_says_whether_the_kept_state_was_refitted(data, interrupt_at):
    times, values = data
    kw = {"method": "pathreg", "random_state": 3, **SMALL}
    interrupt_at(3)  # iteration 3 of the penalised phase
    m = scn.SparseODE(3, **kw)
    with pytest.raises(FitInterrupted, match=r"after 2 of 10 iterations.*not frozen and refitted") as info:
        m.fit(times, values, n_iter=6, refit_iter=4, progress_bar=False)
    assert not info.value.refitted and info.value.total == 10 and m.history.interrupted
    assert "checkpoint='<file>'" in str(info.value)  # how to be able to resume

    interrupt_at(9)  # iteration 9: in the refit
    m = scn.SparseODE(3, **kw)
    with pytest.raises(FitInterrupted, match="after 8 of 10 iterations") as info:
        m.fit(times, values, n_iter=6, refit_iter=4, progress_bar=False)
    assert info.value.refitted and info.value.best_iteration >= 6
    assert "not frozen" not in str(info.value)


def test_interrupt_names_the_last_checkpoint_from_which_resume_continues(data, tmp_path, interrupt_at):
    times, values = data
    kw = {"method": "base", "random_state": 2, **SMALL}
    settings = {"n_iter": 10, "refit_iter": 0, "horizon_warmup": 0, "lr_patience": 3, "progress_bar": False}
    straight = scn.SparseODE(3, **kw).fit(times, values, **settings)
    ckpt = tmp_path / "fit.pt"
    calls = interrupt_at(9)
    with pytest.raises(FitInterrupted) as info:
        scn.SparseODE(3, **kw).fit(times, values, checkpoint=ckpt, checkpoint_every=3, **settings)
    assert calls["n"] == 9
    assert info.value.checkpoint == (str(ckpt), 6)
    assert f"The last checkpoint, {ckpt}, holds iteration 6: resume='{ckpt}'" in str(info.value)
    assert not list(tmp_path.glob("*.tmp"))  # checkpoints go through a temporary file, renamed into place
    interrupt_at(0)
    resumed = scn.SparseODE(3, **kw).fit(times, values, resume=ckpt, **settings)
    assert resumed.history.loss == straight.history.loss
    for k, v in straight.system.state_dict().items():
        assert torch.equal(resumed.system.state_dict()[k], v), k


def test_fit_sparse_ode_interrupted_writes_nothing(interrupt_at):
    adata = cells()
    before = adata.copy()
    calls = interrupt_at(4)
    with pytest.raises(FitInterrupted, match="fit_sparse_ode stopped and wrote nothing into the AnnData"):
        scn.tl.fit_sparse_ode(adata, **FAST)
    assert calls["n"] == 4
    assert_untouched(adata, before)


def test_lambda_path_interrupted_stops_at_once_and_writes_nothing(interrupt_at):
    adata = cells()
    before = adata.copy()
    calls = interrupt_at(12)  # every lam an independent fit of 6 + 2 iterations: call 12 is in the second fit
    with pytest.raises(FitInterrupted, match=r"1 of 3 fits of the lambda search were complete") as info:
        scn.tl.lambda_path(
            adata, [0.01, 0.1, 1.0], n_iter=6, refit_iter=2, hidden=(8,), progress_bar=False, device="cpu"
        )
    assert calls["n"] == 12  # not one more iteration after the interrupt
    message = str(info.value)
    assert "best state so far" in message and message.endswith(
        "lambda_path stopped and wrote nothing into the AnnData."
    )
    assert "resume=" not in message  # a search is not resumed fit by fit
    assert_untouched(adata, before)


def test_consensus_network_of_fits_interrupted_stops_at_once(interrupt_at):
    adata = cells()
    before = adata.copy()

    def fits():
        for seed in range(3):
            yield scn.tl.fit_sparse_ode(adata, random_state=seed, copy=True, return_model=True, **FIT)[1]

    calls = interrupt_at(12)  # each fit: 6 penalised + 3 refit iterations; 12 is in the second
    with pytest.raises(FitInterrupted, match="consensus_network stopped while its models were fitted, after 1,"):
        scn.tl.consensus_network(adata, fits())
    assert calls["n"] == 12
    assert_untouched(adata, before)


def test_sweep_interrupted_stops_the_grid(interrupt_at):
    adata = cells()
    calls = interrupt_at(12)
    with pytest.raises(FitInterrupted, match=r"1 of 3 fits of the sweep were complete \(none is returned\)\.$") as info:
        scn.tl.sweep(adata, seeds=[0, 1, 2], lams=0.01, **FAST)
    assert calls["n"] == 12
    assert "resume=" not in str(info.value)  # the sweep's fits would share one checkpoint file


def test_cli_interrupted_exits_130_and_writes_nothing(tmp_path, capsys, interrupt_at):
    src, out = tmp_path / "in.h5ad", tmp_path / "out.h5ad"
    cells().write_h5ad(src)
    interrupt_at(5)
    args = ["fit", str(src), "--out", str(out), "--n-iter", "10", "--hidden", "8", "--device", "cpu", "--no-progress"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert err.startswith("scnode fit: interrupted. Fit interrupted after 4 of 10 iterations")  # a search fit: no refit
    assert "wrote nothing" in err and not out.exists()


# ----------------------------------------------------------------------------------------- safe loading
def test_no_load_path_unpickles_objects():
    package = Path(scn.__file__).parent
    sources = {p: p.read_text() for p in package.rglob("*.py")}
    assert not [p for p, text in sources.items() if "weights_only=False" in text]
    loaders = [p.name for p, text in sources.items() if re.search(r"torch\.load\((?!weights_only)", text)]  # calls
    assert loaders == ["serialization.py"]  # the one place, with weights_only=True
    assert (
        "torch.load(path, map_location=map_location, weights_only=True)" in sources[package / "core/serialization.py"]
    )


def _plain(obj):
    """Whether ``obj`` is tensors and plain data only."""
    if isinstance(obj, dict):
        return all(isinstance(k, str | int) and _plain(v) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return all(_plain(v) for v in obj)
    return obj is None or isinstance(obj, torch.Tensor | bool | int | float | str)


@pytest.mark.parametrize("method", ["pathreg", "lassonet_inner"])
def test_a_checkpoint_holds_tensors_and_plain_data_only(data, tmp_path, method):
    times, values = data
    ckpt = tmp_path / "c.pt"
    m = scn.SparseODE(3, method=method, random_state=0, **SMALL)
    m.fit(times, values, n_iter=4, refit_iter=2, checkpoint=ckpt, progress_bar=False)
    state = torch.load(ckpt, weights_only=True)
    assert set(state) == set(train_module.CHECKPOINT_KEYS) and _plain(state)
    assert state["iteration"] == 6 and state["generator"].dtype == torch.uint8
    assert state["optimizer"]["state"] and state["best_state"].keys() == m.system.state_dict().keys()


def _checkpoint(data, path, **kw):
    times, values = data
    scn.SparseODE(3, method="base", random_state=0, **{**SMALL, **kw}).fit(
        times, values, n_iter=3, refit_iter=0, checkpoint=path, progress_bar=False
    )
    return path


def _garble(path):
    path.write_bytes(bytes(range(256)) * 8)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _foreign(path):
    torch.save({"model": pd.Timestamp("2024-01-01")}, path)  # another program's pickled object


def _plain_dict(path):
    torch.save({"weights": torch.ones(3)}, path)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (_garble, r"cannot be read as an scnode checkpoint.*garbled"),
        (_truncate, r"cannot be read as an scnode checkpoint.*truncated"),
        (_foreign, r"cannot be read as an scnode checkpoint.*never unpickles other objects"),
        (_plain_dict, r"is not an scnode checkpoint .*it lacks system, optimizer"),
        (lambda p: None, r"The checkpoint .* holds the weights of another architecture \(shapes"),
    ],
)
def test_resume_names_a_foreign_or_damaged_checkpoint_and_changes_nothing(data, tmp_path, damage, match):
    times, values = data
    ckpt = _checkpoint(data, tmp_path / "c.pt", hidden=(5,))  # the last case: another width
    damage(ckpt)
    m = scn.SparseODE(3, method="base", random_state=0, **SMALL)
    state = {k: v.clone() for k, v in m.system.state_dict().items()}
    with pytest.raises(ValueError, match=match) as info:
        m.fit(times, values, n_iter=3, refit_iter=0, resume=ckpt, progress_bar=False)
    assert str(ckpt) in str(info.value) and "weights_only=False" not in str(info.value)
    for k, v in m.system.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.fixture
def saved(data, tmp_path):
    times, values = data
    m = scn.SparseODE(3, method="pathreg", random_state=0, var_names=["a", "b", "c"], **SMALL)
    m.fit(times, values, n_iter=3, refit_iter=0, progress_bar=False)
    m.preprocessing = {"time_key": "t"}
    m.save(tmp_path / "m")
    return tmp_path / "m"


def _write(name, text):
    def damage(folder):
        (folder / name).write_text(text)

    return damage


def _other_width(folder):
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(re.sub(r'"hidden": \[\s*8\s*\]', '"hidden": [6]', config))


@pytest.mark.parametrize(
    ("damage", "file", "match"),
    [
        (lambda f: _garble(f / "model.pt"), "model.pt", "cannot be read as a saved SparseODE's weights.*garbled"),
        (lambda f: _truncate(f / "model.pt"), "model.pt", "cannot be read as a saved SparseODE's weights.*truncated"),
        (lambda f: _foreign(f / "model.pt"), "model.pt", "never unpickles other objects"),
        (lambda f: (f / "model.pt").unlink(), "model.pt", "does not exist"),
        (_other_width, "model.pt", r"holds the weights of another architecture \(shapes"),
        (_write("config.json", '{"n_vars": 3,'), "config.json", "is not valid JSON"),
        (_write("config.json", '{"n_vars": 3, "colour": 1}'), "config.json", "is not a valid SparseODE configuration"),
        (_write("history.json", "[1, 2"), "history.json", "is not valid JSON"),
        (_write("history.json", '{"loss": [1.0], "speed": []}'), "history.json", "is not a SparseODE history"),
        (_write("preprocessing.json", "{'time_key': 't'}"), "preprocessing.json", "is not valid JSON"),
    ],
)
def test_load_names_the_damaged_file(saved, damage, file, match):
    damage(saved)
    with pytest.raises((ValueError, FileNotFoundError), match=match) as info:
        scn.SparseODE.load(saved, device="cpu")
    assert str(saved / file) in str(info.value) and "weights_only=False" not in str(info.value)


def test_load_round_trip_still_reads_everything(saved):
    back = scn.SparseODE.load(saved, var_names=["a", "b", "c"], device="cpu")
    assert back.preprocessing == {"time_key": "t"} and len(back.history.loss) == 3


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize(
    ("subset", "lineage_key", "match"),
    [
        (slice(0, 0), None, r"adata has no cells \(n_obs is 0\)"),
        (slice(0, 0), "lineage", r"adata has no cells \(n_obs is 0\)"),
        (slice(None), "nolineage", r"No cell has a lineage: adata.obs\['nolineage'\] is missing \(NaN\) for all 40"),
    ],
)
def test_no_cells_is_a_clear_error(subset, lineage_key, match):
    adata = cells()[subset].copy()
    adata.obs["nolineage"] = pd.Categorical([None] * adata.n_obs, categories=["L0"])
    before = adata.copy()
    with pytest.raises(ValueError, match=match):
        scn.tl.fit_sparse_ode(adata, lineage_key=lineage_key, **FAST)
    assert_untouched(adata, before)


def test_no_genes_is_a_clear_error():
    adata = cells()[:, []].copy()
    with pytest.raises(ValueError, match=r"adata has no genes \(n_vars is 0\)"):
        scn.pp.prepare_trajectories(adata)


def test_zero_iterations_are_a_clear_error(data):
    adata = cells()
    before = adata.copy()
    fast = {k: v for k, v in FAST.items() if k != "n_iter"}
    with pytest.raises(ValueError, match=r"n_iter must be at least 1, got 0.*random initial network"):
        scn.tl.fit_sparse_ode(adata, n_iter=0, fit_kwargs={"refit_iter": 5}, **fast)
    with pytest.raises(ValueError, match=r"n_iter must be at least 1, got 0"):
        scn.tl.lambda_path(adata, [0.1, 1.0], n_iter=0, hidden=(8,), progress_bar=False, device="cpu")
    assert_untouched(adata, before)
    times, values = data
    with pytest.raises(ValueError, match="n_iter and refit_iter are both 0: nothing would be fitted"):
        scn.SparseODE(3, **SMALL).fit(times, values, n_iter=0)


def _edit(src, dst, line_pattern, edit, after=5):
    """Copy ``src`` to ``dst`` with the first line matching ``line_pattern`` after line ``after`` edited; its number."""
    lines = src.read_text(encoding="latin-1").splitlines(keepends=True)
    k = next(i for i, text in enumerate(lines) if i >= after and re.match(line_pattern, text))
    lines[k] = edit(lines[k])
    dst.write_text("".join(lines), encoding="latin-1")
    return k + 1


@needs_mocap
@pytest.mark.parametrize("value", ["nan", "1e999", "-inf"])
def test_non_finite_amc_and_bvh_values_name_file_and_line(tmp_path, value):
    asf = tmp_path / "07.asf"
    shutil.copy(DATA / "asfamc/subject07_walk/07.asf", asf)
    amc = tmp_path / "07_01.amc"
    line = _edit(DATA / "asfamc/subject07_walk/07_01.amc", amc, r"lfemur ", lambda t: f"lfemur 1 {value} 3\n")
    with pytest.raises(ValueError, match=rf"07_01\.amc, line {line}: non-finite value '{value}' in bone 'lfemur'"):
        scn.datasets.mocap(path=amc)

    bvh = tmp_path / "111_37.bvh"
    src = DATA / "bvh/111_37.bvh"
    first = next(i for i, t in enumerate(src.read_text().splitlines()) if t.startswith("Frame Time")) + 2
    line = _edit(src, bvh, r"^-?[\d.]+ ", lambda t: " ".join([t.split()[0], value, *t.split()[2:]]) + "\r\n")
    assert line == first
    with pytest.raises(ValueError, match=rf"111_37\.bvh, line {line}: non-finite value '{value}' in frame 1"):
        scn.datasets.mocap(path=bvh)

    bonedata = 17  # a bone's length, not the :units entry
    line = _edit(DATA / "asfamc/subject07_walk/07.asf", asf, r"\s*length ", lambda t: f"  length {value}\n", bonedata)
    with pytest.raises(ValueError, match=rf"07\.asf, line {line}: non-finite value '{value}' in length"):
        scn.datasets.mocap(path=amc, asf=asf)


@needs_mocap
def test_amc_with_another_subjects_asf_names_both_files(tmp_path):
    for rel in ("asfamc/subject07_walk/07.asf", "asfamc/subject35_walk/35_01.amc"):
        shutil.copy(DATA / rel, tmp_path / Path(rel).name)
    amc, asf = tmp_path / "35_01.amc", tmp_path / "07.asf"
    expect = rf"{re.escape(str(amc))} is a motion of subject 35 but {re.escape(str(asf))} is the skeleton of subject 07"
    with pytest.raises(ValueError, match=expect):
        scn.datasets.mocap(path=amc, asf=asf)
    with pytest.raises(ValueError, match=expect):  # the only .asf in the folder, found for it
        scn.datasets.mocap(path=amc)


# ------------------------------------------------------------------------------------------- progress
class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _run_bar(monkeypatch, stream, *, enabled=True, n=5):
    monkeypatch.setattr(sys, "stderr", stream)
    bar = train_module.progress(range(n), enabled=enabled, desc="scnode test")
    for _ in bar:
        bar.set_postfix(loss="0.1", refresh=False)
    bar.close()
    return bar, stream.getvalue()


def test_progress_in_a_log_file_is_one_line_per_update(monkeypatch):
    bar, text = _run_bar(monkeypatch, io.StringIO(), n=200)
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[0].startswith("scnode test:   0%") and lines[-1].startswith("scnode test: 100%|##########| 200/200")
    assert len(lines) <= 3 and bar.mininterval == train_module.PROGRESS_INTERVAL

    bar, text = _run_bar(monkeypatch, _Terminal())
    assert "\r" in text and bar.mininterval < 1  # tqdm's own bar on a terminal

    monkeypatch.setenv("TQDM_MININTERVAL", "0.5")  # tqdm's own setting comes first (tqdm read it at import)
    bar, text = _run_bar(monkeypatch, io.StringIO())
    assert bar.mininterval != train_module.PROGRESS_INTERVAL and bar.ascii and "\r" not in text


def test_progress_follows_scanpys_verbosity(monkeypatch):
    import scanpy as sc

    verbosity = sc.settings.verbosity
    try:
        sc.settings.verbosity = "error"
        assert _run_bar(monkeypatch, _Terminal())[1] == ""
        sc.settings.verbosity = "warning"
        assert "scnode test" in _run_bar(monkeypatch, _Terminal())[1]
    finally:
        sc.settings.verbosity = verbosity
    assert _run_bar(monkeypatch, _Terminal(), enabled=False)[1] == ""


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("SCNODE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fail_after_a_part(error):
    def retrieve(url, path):
        Path(path).write_bytes(b"half a file")
        raise error

    return retrieve


@pytest.mark.parametrize(
    ("retrieve", "error", "match"),
    [
        (
            _fail_after_a_part(urllib.error.ContentTooShortError("retrieval incomplete", None)),
            OSError,
            "SCNODE_DATA_DIR",
        ),
        (_fail_after_a_part(KeyboardInterrupt()), KeyboardInterrupt, None),
        (lambda url, path: Path(path).write_bytes(b"another file"), ValueError, "has SHA-256 .* Nothing was kept"),
    ],
)
def test_an_aborted_download_leaves_nothing_in_the_cache(empty_cache, monkeypatch, retrieve, error, match):
    monkeypatch.setattr(urllib.request, "urlretrieve", retrieve)
    with pytest.raises(error, match=match):
        scn.datasets.hematopoiesis(lineage="B", donor="s1d1")
    assert not empty_cache.exists()
    empty_cache.mkdir()  # a cache folder that was there before stays
    with pytest.raises(error, match=match):
        scn.datasets.hematopoiesis(lineage="B", donor="s1d1")
    assert empty_cache.is_dir() and not list(empty_cache.iterdir())
