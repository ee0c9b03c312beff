import os
import subprocess
import sys
from pathlib import Path

import anndata
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

import scnode as scn
from scnode.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_pl_adjacency_matrix_draws_blank_zeros():
    m = np.array([[0.0, 2.0], [1.0, 0.0]])
    res = scn.pl.adjacency(m, row_names=["a", "b"], col_names=["c", "d"], show=False)
    assert isinstance(res.data, pd.DataFrame)
    np.testing.assert_array_equal(res.data.to_numpy(), m)
    image = res.ax.images[0].get_array()
    assert image.mask[0, 0] and image.mask[1, 1] and not image.mask[0, 1]
    assert [t.get_text() for t in res.ax.get_xticklabels()] == ["c", "d"]


def test_pl_adjacency_of_model_labels_inputs_and_outputs():
    model = scn.SparseODE(2, method="pathreg", order=2, hidden=(4,), device="cpu", var_names=["g1", "g2"])
    res = scn.pl.adjacency(model, show=False)
    assert res.data.shape == (2, 4)
    assert list(res.data.columns) == ["g1", "g2", "dg1/dt", "dg2/dt"]
    np.testing.assert_allclose(res.data.to_numpy(), model.adjacency())


def test_pl_adjacency_anndata_missing_key_is_clear():
    adata = scn.datasets.second_order_system(n_times=5)
    with pytest.raises(KeyError, match="varp has no 'scnode'"):
        scn.pl.adjacency(adata, show=False)


def test_pl_adjacency_rejects_1d():
    with pytest.raises(ValueError, match="2-D"):
        scn.pl.adjacency(np.ones(3), show=False)


def test_pp_trajectories_orders_and_averages():
    adata = scn.datasets.second_order_system(n_trajectories=3, n_times=6, random_state=2)
    shuffled = adata[np.random.default_rng(0).permutation(adata.n_obs)].copy()
    dup = shuffled[:1].copy()
    dup.obs_names = ["dup"]
    dup.X = dup.X + 1.0
    both = scn.pp.trajectories(
        __import__("anndata").concat([shuffled, dup]), time_key="time", trajectory_key="trajectory"
    )
    times, values, names = both
    assert names == ["0", "1", "2"]
    for t in times:
        assert (np.diff(t) > 0).all() and len(t) == 6
    # the duplicated observation is averaged with its twin
    traj = int(dup.obs["trajectory"].iloc[0])
    k = int(np.flatnonzero(times[traj] == dup.obs["time"].iloc[0])[0])
    np.testing.assert_allclose(values[traj][k], np.asarray(dup.X[0]) - 0.5, rtol=1e-6)


def test_pp_trajectories_errors():
    adata = scn.datasets.second_order_system(n_times=5)
    with pytest.raises(KeyError, match="no time column 'pt'"):
        scn.pp.trajectories(adata, time_key="pt")
    with pytest.raises(KeyError, match="'lineage'"):
        scn.pp.trajectories(adata, trajectory_key="lineage")
    bad = adata.copy()
    bad.obs["time"] = bad.obs["time"].astype(float)
    bad.obs.iloc[0, bad.obs.columns.get_loc("time")] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        scn.pp.trajectories(bad)


def test_demo_fast(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n-iter", "40"]) == 0
    out = capsys.readouterr().out
    assert "structural Hamming distance" in out and "x0 -> x0''" in out
    assert "Positions only" in out and "Base, same call" in out  # the AnnData call without the true velocities
    assert (tmp_path / "adjacency.png").stat().st_size > 0
    assert "krumsiek11" in out and "AUPRC ratio" in out and "top edges" in out and "signs right on" in out
    assert (tmp_path / "krumsiek11_network.png").stat().st_size > 0


def test_demo_network_figure_marks_the_true_edges(tmp_path, monkeypatch):
    """The demo's krumsiek11 figure (drawn here from the true network plus noise, no fit)."""
    from scnode import cli

    rng = np.random.default_rng(0)
    adata = scn.datasets.krumsiek11()
    truth = adata.varp["true_network"]
    adata.varp["scnode"] = np.abs(truth) * rng.uniform(0.5, 1.5, truth.shape) + rng.uniform(0, 0.8, truth.shape)
    adata.varp["scnode_sign"] = np.where(truth != 0, np.sign(truth), 1.0)
    scores = scn.tl.evaluate_grn(adata, truth)
    drawn = []
    network = scn.pl.network
    monkeypatch.setattr(scn.pl, "network", lambda *a, **k: drawn.append(network(*a, **k)) or drawn[-1])
    path = cli.network_figure(adata, truth, scores, tmp_path / "demo" / "krumsiek11_network.png")
    assert path.stat().st_size > 0
    (res,) = drawn
    names = list(adata.var_names)
    pairs = zip(res.data["source"], res.data["target"], strict=True)
    known = [truth[names.index(s), names.index(t)] != 0 for s, t in pairs]
    assert len(res.data) == 15 and list(res.data["true"]) == known
    assert [p.get_linestyle() == "-" for p in res.ax.patches] == known  # true edges solid, the others dashed
    assert f"AUPRC ratio {scores['auprc_ratio']:.2f}" in res.ax.get_title()
    legend = [t.get_text() for t in res.ax.get_legend().get_texts()]
    assert f"in the known network ({sum(known)} of 15)" in legend and any(t.startswith("score ") for t in legend)


def test_benchmark_quick_runs_all_tables():
    cmd = [sys.executable, "benchmarks/synthetic.py", "--quick", "--seeds", "1", "--workers", "1"]
    cmd += ["--methods", "base", "cnode", "pathreg", "grouplasso"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    out = res.stdout
    assert "### (i) Paper setting" in out and "### (ii) Identification" in out
    for method in ("base", "cnode", "pathreg", "grouplasso"):
        assert f"| {method} |" in out
    assert "PathReg AUPRC" in out


@pytest.mark.parametrize(
    ("script", "args", "data", "expect"),
    [
        (
            "hematopoiesis.py",
            ["--methods", "base", "pathreg, per output, decay, input gates", "--protocols", "a"],
            "hematopoiesis",
            "| pathreg, per output, decay, input gates |",
        ),
        (
            "grn.py",
            ["--methods", "pathreg", "--restarts", "2", "--decay"],
            None,
            "| pathreg, decay, mean of 2 restarts |",
        ),
        (
            "mocap.py",
            ["--methods", "base", "pathreg", "--motions", "wave", "--seeds", "0", "1"],
            "mocap",
            "*hold a frame (no dynamics)*",
        ),
        (
            "grn_suite.py",
            ["--models", "cycle", "--refine-time", "1"],
            "boolode",
            "| scnode default call, refine_time=1: path ranking |",
        ),
        (
            "grn_suite.py",
            [
                *("--models", "cycle", "--pseudotime", "noisy", "--clock-noise", "0.05", "--binning", "states"),
                *("--peers", "correlation (x_j, dx_i/dt)", "Lasso (dx/dt)"),
            ],
            "boolode",
            "| scnode default call, binning='states': path ranking |",
        ),
        ("interventions.py", ["--models", "cycle"], "boolode", "### Trained on other knockouts"),
    ],
    ids=["hematopoiesis", "grn", "mocap", "grn_suite", "grn_suite_noisy_states", "interventions"],
)
def test_other_benchmarks_quick(script, args, data, expect):
    if data is not None and not (Path(os.environ.get("SCNODE_DATA_DIR", "/nonexistent")) / data).is_dir():
        pytest.skip(f"SCNODE_DATA_DIR has no {data}/")
    cmd = [sys.executable, f"benchmarks/{script}", "--quick", *args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    assert expect in res.stdout and "| method |" in res.stdout
    if "--peers" in args:  # only the peers named, in both tables
        named = args[args.index("--peers") + 1 :]
        peers = [line.split(" | ")[0][2:] for line in res.stdout.splitlines() if line.startswith("| ")]
        peers = [p for p in peers if p != "method" and not p.startswith("scnode")]
        assert peers == named * 2, res.stdout
    if "--seeds" in args:  # the table over the seeds: each method's mean ± sd, its two values, wins over Base
        rows = [line.split(" | ") for line in res.stdout.splitlines() if " ± " in line and "| method" not in line]
        assert [r[0] for r in rows] == ["| base", "| pathreg"]
        assert all(r[2].count(" / ") == 1 for r in rows)
        assert rows[0][3] == "" and rows[1][3] in {"0 of 2", "1 of 2", "2 of 2"}


def test_speed_benchmark_quick():
    if not (Path(os.environ.get("SCNODE_DATA_DIR", "/nonexistent")) / "hematopoiesis").is_dir():
        pytest.skip("SCNODE_DATA_DIR has no hematopoiesis/")
    sections = ["iteration", "whole", "ratio", "binning", "reach", "solvers"]
    cmd = [sys.executable, "benchmarks/speed.py", "--quick", "--sections", *sections, "--devices", "cpu"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    lines = res.stdout.splitlines()
    rows = [line for line in lines if line.startswith("| PathReg") or line.startswith("| every")]
    # iteration and whole: 4 PathReg variants each; reach: 2 fits; binning: every cell
    assert len(rows) == 4 + 4 + 2 + 1, res.stdout
    assert "| 100 bins |" in res.stdout  # and the binned fit of the binning section
    assert res.stdout.count("| GroupLasso (8), 100 bins | CPU") == 2
    assert "GroupLasso / PathReg per iteration (CPU, " in res.stdout
    pairs = [line.split(" | ") for line in lines if line.startswith(("| 1 | CPU", "| 2 | CPU"))]  # ratio: 2 pairs
    assert len(pairs) == 2
    for p in pairs:  # the ratio of the pair's two means (printed to 4 decimals)
        assert float(p[4].strip(" |")) == pytest.approx(float(p[3]) / float(p[2]), rel=0.03, abs=0.01)
    assert "GroupLasso / PathReg over 2 pairs (CPU, " in res.stdout and " of 2 at or below 3x." in res.stdout
    former = "| paper's shared 32x32 MLP PathReg (lam 21.5, lam1 464, every cell) |"  # fit_sparse_ode's former defaults
    assert sum(line.startswith(former) for line in lines) == 2  # reach: 25 and 50 iterations
    assert sum("train <= 0.0353 " in line for line in lines) == 2  # one summary line per setting
    solvers = [line.split(" | ") for line in lines if line.startswith("| dopri5, rtol = atol = ")]
    assert [r[0] for r in solvers] == ["| dopri5, rtol = atol = 1e-3 (default)", "| dopri5, rtol = atol = 1e-2"]
    assert all(float(r[4]) > 0 and 0 < float(r[6]) < 0.1 for r in solvers)  # integration error, training MSE


def _tiny_h5ad(path: Path) -> Path:
    """3 genes, 30 cells along t: g0 decays, g1 follows g0, g2 is independent."""
    import anndata as ad

    t = np.linspace(0.0, 3.0, 30)
    g0 = np.exp(-t)
    g1 = 1.0 - np.exp(-t)  # driven by g0: g1' = g0
    g2 = 0.5 + 0.1 * np.sin(t)
    adata = ad.AnnData(
        np.c_[g0, g1, g2].astype(np.float32),
        obs=pd.DataFrame({"t": t}, index=[f"c{i}" for i in range(30)]),
        var=pd.DataFrame(index=["g0", "g1", "g2"]),
    )
    adata.write_h5ad(path)
    return path


FAST = ["--time-key", "t", "--n-iter", "30", "--hidden", "8,8", "--device", "cpu", "--no-progress"]


def test_cli_fit_writes_results(tmp_path, capsys):
    import anndata as ad

    src, out = _tiny_h5ad(tmp_path / "in.h5ad"), tmp_path / "sub" / "out.h5ad"
    assert main(["fit", str(src), "--out", str(out), "--method", "pathreg", *FAST]) == 0
    printed = capsys.readouterr().out
    assert "3 genes" in printed and "train MSE" in printed and "nonzero edges in varp['scnode']" in printed
    assert str(out) in printed
    res = ad.read_h5ad(out)
    assert res.varp["scnode"].shape == (3, 3)
    assert res.uns["scnode"]["params"]["method"] == "pathreg"
    assert list(res.uns["scnode"]["params"]["hidden"]) == [8, 8]
    assert res.layers["scnode_fitted"].shape == (30, 3)
    assert np.isfinite(res.layers["scnode_fitted"]).all()


def test_cli_fit_preprocessing_defaults_follow_the_order_as_in_python(tmp_path, capsys):
    import anndata as ad

    src, out = tmp_path / "motion.h5ad", tmp_path / "out.h5ad"
    scn.datasets.second_order_system(n_trajectories=3, n_times=8, random_state=2).write_h5ad(src)
    common = ["--time-key", "time", "--lineage-key", "trajectory", "--lam", "0.01", "--n-iter", "10"]
    assert main(["fit", str(src), "--out", str(out), "--order", "2", *common, "--device", "cpu", "--no-progress"]) == 0
    params = ad.read_h5ad(out).uns["scnode"]["params"]
    assert "n_bins" not in params or params["n_bins"] is None  # every observation, as fit_sparse_ode(order=2)
    assert params["x0_cells"] == 1
    cells = _tiny_h5ad(tmp_path / "cells.h5ad")
    argv = ["fit", str(cells), "--out", str(out), *FAST, "--lam", "0.01", "--n-bins", "10", "--binning", "states"]
    assert main(argv) == 0
    params = ad.read_h5ad(out).uns["scnode"]["params"]
    assert params["n_bins"] == 10 and params["x0_cells"] == 5 and params["binning"] == "states"
    assert params["min_cells"] == "auto" and params["edge_score"] == "weights"
    assert main([*argv[:-2], "--min-cells", "0", "--edge-score", "effects"]) == 0
    params = ad.read_h5ad(out).uns["scnode"]["params"]
    assert params["min_cells"] == 0 and params["edge_score"] == "effects"
    with pytest.raises(SystemExit):
        main(["fit", str(cells), "--out", str(out), *FAST, "--n-bins", "many"])
    assert "argument --n-bins: expected an integer, auto or none, got 'many'" in capsys.readouterr().err


def test_cli_fit_search_dir_resumes_the_search(tmp_path, capsys, monkeypatch):
    import anndata as ad

    from scnode.tl import _select

    src, kept = _tiny_h5ad(tmp_path / "in.h5ad"), tmp_path / "search"
    assert main(["fit", str(src), "--out", str(tmp_path / "a.h5ad"), "--search-dir", str(kept), *FAST]) == 0
    [fits] = list(kept.iterdir())
    first = ad.read_h5ad(tmp_path / "a.h5ad")
    assert len(list(fits.glob("*.json"))) == len(first.uns["scnode"]["path"]["table"]["lam"])
    monkeypatch.setattr(_select, "_fit_task", lambda *args: pytest.fail("a kept fit was fitted again"))
    assert main(["fit", str(src), "--out", str(tmp_path / "b.h5ad"), "--search-dir", str(kept), *FAST]) == 0
    np.testing.assert_array_equal(ad.read_h5ad(tmp_path / "b.h5ad").varp["scnode"], first.varp["scnode"])


def test_cli_fit_refine_time_round_trips(tmp_path, capsys):
    import anndata as ad

    src, out = _tiny_h5ad(tmp_path / "in.h5ad"), tmp_path / "out.h5ad"
    assert main(["fit", str(src), "--out", str(out), "--refine-time", "1", "--lam", "0.01", *FAST]) == 0
    res = ad.read_h5ad(out)
    assert np.isfinite(res.obs["scnode_time"]).all()
    assert res.uns["scnode"]["params"]["refine_time"] == 1
    assert res.uns["scnode"]["params"]["time_key"] == "scnode_time"
    assert len(res.uns["scnode"]["refine_time"]["distance"]) == 1


def test_cli_fit_refine_time_auto(tmp_path, capsys):
    import anndata as ad

    src, out = _tiny_h5ad(tmp_path / "in.h5ad"), tmp_path / "out.h5ad"
    assert main(["fit", str(src), "--out", str(out), "--refine-time", "auto", "--lam", "0.01", *FAST]) == 0
    params = ad.read_h5ad(out).uns["scnode"]["params"]
    assert params["refine_time"] == "auto" and 0 <= params["refine_rounds"] <= 2
    with pytest.raises(SystemExit):
        main(["fit", str(src), "--out", str(out), "--refine-time", "twice", *FAST])
    assert "expected an integer or auto, got 'twice'" in capsys.readouterr().err


def test_cli_fit_genes_file(tmp_path):
    import anndata as ad

    src, out = _tiny_h5ad(tmp_path / "in.h5ad"), tmp_path / "out.h5ad"
    (tmp_path / "genes.txt").write_text("g0\n\ng1  # a comment\n")
    assert main(["fit", str(src), "--out", str(out), "--genes-file", str(tmp_path / "genes.txt"), *FAST]) == 0
    res = ad.read_h5ad(out)
    assert list(res.uns["scnode"]["genes"]) == ["g0", "g1"]
    assert np.isnan(res.layers["scnode_fitted"][:, 2]).all()


def test_cli_fit_bad_input_is_a_clear_error(tmp_path, capsys):
    src, out = _tiny_h5ad(tmp_path / "in.h5ad"), tmp_path / "out.h5ad"
    fast = [a if a != "t" else "pseudotime" for a in FAST]
    assert main(["fit", str(src), "--out", str(out), *fast]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scnode fit: error:") and "'pseudotime'" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["fit", str(tmp_path / "missing.h5ad"), "--out", str(out), *FAST]) == 2
    assert "missing.h5ad does not exist" in capsys.readouterr().err
    assert main(["fit", str(src), "--out", str(out), "--method", "nope", *FAST]) == 2
    assert "Unknown method 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse's own errors exit with 2 too
        main(["fit", str(src), "--out", str(out), "--hidden", "8,x"])
    assert exc.value.code == 2


def test_cli_fit_save_model_is_loadable(tmp_path, capsys):
    import anndata as ad

    src, out, model_dir = _tiny_h5ad(tmp_path / "in.h5ad"), tmp_path / "out.h5ad", tmp_path / "model"
    (tmp_path / "regs.txt").write_text("g0\ng1\n")
    args = ["--save-model", str(model_dir), "--field", "per_gene", "--regulators-file", str(tmp_path / "regs.txt")]
    assert main(["fit", str(src), "--out", str(out), *args, "--lam", "0.01", *FAST]) == 0
    assert "model saved in" in capsys.readouterr().out
    model = scn.SparseODE.load(model_dir, var_names=["g0", "g1", "g2"], device="cpu")
    assert tuple(model.config.hidden) == (8, 8)
    assert model.config.per_output and model.config.decay and model.system.decay_rho is not None
    assert model.config.gates == "inputs"
    assert [layer.gated for layer in model.system.field.layers] == [True, False, False]
    assert model.config.inputs == [0, 1] and model.config.self_inputs  # g2 regulates nothing but itself
    assert model.adjacency().shape == (3, 3) and (model.adjacency()[:2, 2] == 0).all()
    fits_dir = tmp_path / "fits"  # every fit of the default search, loadable as one ensemble
    assert main(["fit", str(src), "--out", str(out), "--save-models", str(fits_dir), *FAST]) == 0
    printed = capsys.readouterr().out
    folders = sorted(fits_dir.iterdir())
    searched = ad.read_h5ad(out).uns["scnode"]["path"]["table"]["lam"]
    assert f"fits saved in {fits_dir}" in printed and len(folders) == len(searched) > 2
    fits = [scn.SparseODE.load(f, var_names=["g0", "g1", "g2"], device="cpu") for f in folders]
    assert {f"lam_{m.config.lam:g}" for m in fits} == {f.name for f in folders}
    ko = scn.tl.simulate_intervention(ad.read_h5ad(src), fits, knockout="g0")  # each fit's preprocessing saved
    assert ko.uns["intervention"]["n_models"] == len(fits) and "delta_high" in ko.layers


def test_grn_suite_dpt_leaves_out_cells_it_cannot_reach(monkeypatch):
    """Two pieces of neighbour graph: DPT is infinite on the one without the root; those cells go, counted."""
    pytest.importorskip("sklearn")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import grn_suite

    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0.0, 0.1, (30, 3)), rng.normal(50.0, 0.1, (30, 3))])
    adata = anndata.AnnData(x.astype(np.float32))
    adata.obs["time"] = np.r_[np.linspace(0, 1, 30), np.linspace(0, 1, 30)]
    adata.obs["perturbation"] = pd.Series([None] * 30 + ["g1"] * 30, index=adata.obs_names, dtype=object)
    monkeypatch.setattr(grn_suite, "UNREACHED", [])
    out = grn_suite.with_dpt(adata, "two pieces")
    assert out.n_obs == 30 and out.obs["perturbation"].isna().all()
    assert np.isfinite(out.obs["dpt_pseudotime"]).all()
    assert grn_suite.UNREACHED == ["two pieces: 30 of 60 cells (0 unperturbed)"]
    assert adata.n_obs == 60 and "dpt_pseudotime" not in adata.obs  # the input is left as it was


def test_grn_suite_geodesic_times_each_condition_from_its_earliest_cell(monkeypatch):
    """``--pseudotime geodesic``: per condition, rooted at its earliest cell; the clock's order along a line."""
    pytest.importorskip("sklearn")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import grn_suite

    clock = np.r_[np.linspace(0, 1, 30), np.linspace(0, 1, 30)]
    x = np.c_[np.r_[clock[:30], 2.0 - clock[30:]], np.zeros(60)]  # the knockout runs the other way
    adata = anndata.AnnData(x.astype(np.float32))
    adata.obs["time"] = clock
    adata.obs["perturbation"] = pd.Series([None] * 30 + ["g1"] * 30, index=adata.obs_names, dtype=object)
    out = grn_suite.with_geodesic(adata)
    t = out.obs["geodesic_pseudotime"].to_numpy()
    for cells in (slice(0, 30), slice(30, 60)):
        assert t[cells][0] == 0.0 and t[cells].max() == pytest.approx(1.0)
        assert np.allclose(t[cells], clock[cells], atol=1e-6)
    assert "geodesic_pseudotime" not in adata.obs


def test_grn_suite_random_network_names(monkeypatch):
    """``random<n>`` is the suite's fixed network; ``random<n>-<s>`` another one, drawn with network seed s."""
    pytest.importorskip("sklearn")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import grn_suite

    def edges(model):
        return model.network().to_numpy() != 0

    fixed = grn_suite.load_model("random12")
    assert fixed.genes == [f"g{i}" for i in range(12)]
    suite_seed = grn_suite.RANDOM_NETWORK_SEED
    assert np.array_equal(edges(fixed), edges(scn.datasets.random_boolean_model(12, seed=suite_seed)))
    other = grn_suite.load_model("random12-5")
    assert np.array_equal(edges(other), edges(scn.datasets.random_boolean_model(12, seed=5)))
    assert not np.array_equal(edges(other), edges(fixed))
