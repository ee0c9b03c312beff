"""Dask scale-out: sweep and lambda_path give the serial results with a distributed client; sweep's input checks.

Tolerance: none. On CPU every fit is seeded (the model's own torch generator; nothing draws from the
global RNG), each sweep fit and each refit of a path depends only on its inputs (a refit on its
cloned penalised state, generator included), and the networks here are far too small for torch to
split work across threads, so the worker processes compute the same floats as the serial run. The
tables and adjacencies are therefore compared for exact equality.
"""

import logging
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import FAST, cells

import scnode as scn
from scnode.tl import _select

distributed = pytest.importorskip("distributed")

# grouplasso at these weights prunes some edges but not all, so sparsity and n_edges differ between rows
SWEEP = {"methods": ["grouplasso", "l0"], "lams": [60.0, 80.0], "seeds": [0, 1], "lineage_key": "lineage"}
SWEEP_FIT = {**FAST, "n_iter": 10}
PATH = {
    "method": "grouplasso",
    "lineage_key": "lineage",
    "n_iter": 6,
    "refit_iter": 3,
    "hidden": (8,),
    "device": "cpu",
    "progress_bar": False,
    "fit_kwargs": {"batch_time": 4, "batch_size": 4},  # windows: the refits draw from the cloned generator
}


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc,
        distributed.Client(lc) as client,
    ):
        client.run(lambda: __import__("scnode"))  # import torch and scnode once on the workers, outside the tests
        yield lc, client


def _same_models(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.adjacency(), y.adjacency())


def test_sweep_with_client_matches_serial(cluster):
    _, client = cluster
    adata, validation = cells(), cells(seed=3)
    serial, serial_models = scn.tl.sweep(adata, validation=validation, return_models=True, **SWEEP, **SWEEP_FIT)
    dist, dist_models = scn.tl.sweep(
        adata, validation=validation, client=client, return_models=True, **SWEEP, **SWEEP_FIT
    )
    assert list(serial.columns) == [
        "method",
        "lam",
        "seed",
        "train_mse",
        "val_mse",
        "feature_sparsity",
        "weight_sparsity",
        "n_edges",
        "targets_without_regulators",
        "targets_with_all_regulators",
        "median_regulators",
        "seconds",
    ]
    assert len(serial) == 2 * 2 * 2 and list(serial["method"]) == ["grouplasso"] * 4 + ["l0"] * 4
    assert list(serial["seed"]) == [0, 1] * 4 and serial["n_edges"].nunique() > 1
    pd.testing.assert_frame_equal(serial.drop(columns="seconds"), dist.drop(columns="seconds"), check_exact=True)
    _same_models(serial_models, dist_models)
    assert (dist["seconds"] > 0).all()


def test_lambda_path_with_client_matches_serial(cluster, caplog, tmp_path, monkeypatch):
    lc, _ = cluster
    adata = cells()
    out_s, table_s, models_s = scn.tl.lambda_path(adata, [40.0, 80.0, 100.0], copy=True, return_models=True, **PATH)
    with caplog.at_level(logging.INFO, logger="scnode"):
        out_d, table_d, models_d = scn.tl.lambda_path(
            adata,
            [40.0, 80.0, 100.0],
            client=lc.scheduler_address,
            copy=True,
            return_models=True,
            search_dir=tmp_path,
            **PATH,
        )  # an address: lambda_path opens (and closes) its own client
    # each fit on the cluster is reported here as it ends
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lambda search: lam")]
    assert sorted(float(m.split()[3]) for m in logged) == pytest.approx(sorted(table_d["lam"]), rel=1e-5)
    assert table_s["n_edges"].nunique() > 1
    timed = ["seconds"]  # wall times differ; everything else is computed
    pd.testing.assert_frame_equal(table_s.drop(columns=timed), table_d.drop(columns=timed), check_exact=True)
    _same_models(models_s, models_d)
    np.testing.assert_array_equal(out_s.varp["scnode"], out_d.varp["scnode"])
    for a, b in zip(models_s, models_d, strict=True):
        assert {k: v for k, v in a.history.as_dict().items() if k not in timed} == {
            k: v for k, v in b.history.as_dict().items() if k not in timed
        }
    # the workers' fits were kept (search_dir, written here as they arrived): a serial call reads them back
    monkeypatch.setattr(_select, "_fit_task", lambda *args: pytest.fail("a kept fit was fitted again"))
    _, table_r, models_r = scn.tl.lambda_path(
        adata, [40.0, 80.0, 100.0], copy=True, return_models=True, search_dir=tmp_path, **PATH
    )
    pd.testing.assert_frame_equal(table_d, table_r, check_exact=True)
    _same_models(models_d, models_r)


def test_consensus_of_restarts_on_a_client_matches_serial(cluster):
    _, client = cluster
    adata = cells()
    restarts = {"methods": ["grouplasso"], "lams": [80.0], "seeds": [0, 1, 2], "lineage_key": "lineage", **SWEEP_FIT}
    _, serial_models = scn.tl.sweep(adata, return_models=True, **restarts)
    _, dist_models = scn.tl.sweep(adata, client=client, return_models=True, **restarts)
    serial = scn.tl.consensus_network(adata, serial_models, copy=True)
    dist = scn.tl.consensus_network(adata, dist_models, copy=True)
    for key in ("scnode_consensus", "scnode_consensus_frequency"):
        np.testing.assert_array_equal(serial.varp[key], dist.varp[key])
    frequency = serial.varp["scnode_consensus_frequency"]
    assert serial.uns["scnode_consensus"]["n_models"] == 3 and ((frequency > 0) & (frequency < 1)).any()


def test_second_order_adaptive_search_on_a_client_matches_serial(cluster):
    _, client = cluster
    adata = scn.datasets.second_order_system(n_trajectories=3, random_state=0)
    call = {"method": "pathreg", "order": 2, "time_key": "time", "lineage_key": "trajectory", **FAST}
    serial, serial_fits = scn.tl.fit_sparse_ode(adata, copy=True, return_models=True, **call)
    dist, dist_fits = scn.tl.fit_sparse_ode(adata, copy=True, client=client, return_models=True, **call)  # on workers
    assert (
        [m.config.lam for m in serial_fits]
        == [m.config.lam for m in dist_fits]
        == sorted(serial.uns["scnode"]["path"]["table"]["lam"])
    )
    for a, b in zip(serial_fits, dist_fits, strict=True):  # the second (adaptive) search's fits, as serial
        np.testing.assert_array_equal(a.adjacency(), b.adjacency())
    assert serial.uns["scnode"]["params"]["adaptive"]
    for stage in (serial.uns["scnode"]["path"], serial.uns["scnode"]["path"]["first_stage"]):
        assert len(stage["table"]["lam"]) > 1
    for key in ("scnode", "scnode_velocity"):
        np.testing.assert_array_equal(serial.varp[key], dist.varp[key])
    for name in ("lam", "val_mse", "selected"):
        np.testing.assert_array_equal(
            serial.uns["scnode"]["path"]["table"][name], dist.uns["scnode"]["path"]["table"][name]
        )


def test_serial_sweep_leaves_input_untouched_and_needs_no_dask(monkeypatch):
    adata, validation = cells(), cells(seed=3)
    adata.uns["note"] = "kept"
    before, before_val = adata.copy(), validation.copy()
    monkeypatch.setitem(sys.modules, "distributed", None)  # any import of Dask would fail now
    monkeypatch.setitem(sys.modules, "dask", None)
    table = scn.tl.sweep(adata, methods="l0", lams=[1.0, 5.0], validation=validation, **FAST)
    assert len(table) == 2
    for a, b in ((adata, before), (validation, before_val)):
        assert a.obs.equals(b.obs) and a.var.equals(b.var)
        np.testing.assert_array_equal(a.X, b.X)
        assert list(a.layers) == list(b.layers) and list(a.varp) == list(b.varp) and list(a.obsm) == list(b.obsm)
        assert dict(a.uns) == dict(b.uns)


def test_client_without_distributed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    adata = cells()
    with pytest.raises(ImportError, match=r"pip install scnode\[dask\]"):
        scn.tl.sweep(adata, client="tcp://127.0.0.1:1", **FAST)
    with pytest.raises(ImportError, match=r"pip install scnode\[dask\]"):  # before the penalised chain runs
        scn.tl.lambda_path(adata, [1.0], client="tcp://127.0.0.1:1", **FAST)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"methods": []}, ValueError, "methods is empty"),
        ({"lams": []}, ValueError, "lams is empty"),
        ({"seeds": []}, ValueError, "seeds is empty"),
        ({"lams": [1.0, -0.5]}, ValueError, r">= 0, got -0\.5"),
        ({"methods": ["l0", "lasso"]}, ValueError, "Unknown method 'lasso'"),
        ({"seeds": [0, 1.5]}, ValueError, r"integers, got 1\.5"),
        ({"lam": 1.0}, TypeError, "through lams="),
        ({"random_state": 1}, TypeError, "through seeds="),
        ({"copy": True}, TypeError, "'copy'"),
        ({"n_iters": 5}, TypeError, "n_iters"),
        ({"time_key": "nope"}, KeyError, "nope"),
        ({"client": 3}, TypeError, "distributed.Client or a scheduler address"),
    ],
)
def test_sweep_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        scn.tl.sweep(cells(), **{**FAST, **kwargs})
