"""Second-order systems through the AnnData call: preprocessing from positions alone."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from helpers import FIT

import scnode as scn
from scnode.pp._prepare import initial_velocity


def _system(n: int = 6, seed: int = 0, **kw):
    return scn.datasets.second_order_system(n_trajectories=n, random_state=seed, **kw)


def test_initial_velocity_from_the_first_positions():
    adata = _system(20)
    ts = scn.pp.prepare_trajectories(adata, time_key="time", lineage_key="trajectory", scaling="none", scale_time=False)
    true_v0 = adata.uns["initial_state"][:, 3:]
    err = np.sqrt(np.mean((ts.v0 - true_v0) ** 2))
    assert err < 0.05 * np.sqrt(np.mean(true_v0**2))
    # a straight line's slope exactly, and two points give their difference quotient
    t = np.array([0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(initial_velocity(t, np.c_[3 * t + 1, -t]), [3.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(initial_velocity(t[:2], np.c_[t[:2] ** 2]), [0.5], atol=1e-12)


def test_one_scaling_for_every_trajectory_and_reused_on_new_ones():
    adata = _system(6)
    x = np.asarray(adata.X, float)
    own = scn.pp.prepare_trajectories(adata, time_key="time", lineage_key="trajectory")
    ts = scn.pp.prepare_trajectories(adata, time_key="time", lineage_key="trajectory", scale_by="all")
    assert not np.allclose(own.center[0], own.center[1])  # the paper's: each trajectory scaled on its own
    for c, s in zip(ts.center, ts.scale, strict=True):
        np.testing.assert_allclose(c, x.min(0))
        np.testing.assert_allclose(s, x.max(0) - x.min(0))
    unit = ts.time_scale[0]
    assert np.all(ts.time_scale == unit) and 0.4 < unit < 1.0  # about 1 / the system's angular frequencies
    assert ts.times[0][-1] == pytest.approx(10.0 / unit)
    # the velocities in data units do not depend on the scaling
    for k in range(6):
        raw = ts.v0[k] * ts.scale[k] / ts.time_scale[k]
        np.testing.assert_allclose(raw, own.v0[k] * own.scale[k] / own.time_scale[k], rtol=1e-6)
    ref = ts.params["reference"]
    assert ref["time_scale"] == unit and len(ref["center"]) == 3
    # new trajectories are scaled as the training ones were, not by their own range
    new = _system(2, seed=7, t_max=5.0, n_times=25)
    again = scn.pp.prepare_trajectories(new, time_key="time", lineage_key="trajectory", scale_by="all", reference=ref)
    np.testing.assert_allclose(again.center[0], ts.center[0])
    assert again.times[0][-1] == pytest.approx(5.0 / unit)
    with pytest.raises(ValueError, match="scale_by must be one of"):
        scn.pp.prepare_trajectories(adata, time_key="time", lineage_key="trajectory", scale_by="gene")
    with pytest.raises(ValueError, match="reference has"):
        bad = {**ref, "center": [0.0, 1.0]}
        scn.pp.prepare_trajectories(adata, time_key="time", lineage_key="trajectory", scale_by="all", reference=bad)


def test_the_time_unit_of_a_harmonic_motion_is_one_over_its_frequency():
    t = np.linspace(0, 6, 300)
    x = np.concatenate([np.c_[np.sin(2 * t + p), 3 * np.cos(2 * t + p)] for p in (0.0, 1.0)])
    obs = pd.DataFrame({"time": np.r_[t, t], "lineage": pd.Categorical(["a"] * 300 + ["b"] * 300)})
    adata = ad.AnnData(x, obs=obs.set_index(obs.index.astype(str)))
    ts = scn.pp.prepare_trajectories(adata, time_key="time", lineage_key="lineage", scale_by="all")
    # finite differences over 20 bins of 0.3 time units overestimate 1/2 by (0.15 / sin(0.3)) / 0.5 - 1 = 1.5 %
    assert ts.time_scale[0] == pytest.approx(0.15 / np.sin(0.3), rel=0.01)


def test_order_two_defaults_and_the_model_predicts_new_trajectories_in_the_training_scale():
    adata = _system(4)
    before = adata.copy()
    model = scn.tl.fit_sparse_ode(
        adata, method="pathreg", order=2, time_key="time", lineage_key="trajectory", return_model=True, **FIT
    )
    params = adata.uns["scnode"]["params"]
    assert params["scale_by"] == "all" and params["x0_cells"] == 1 and "n_bins" not in params
    assert "window" not in params and params["fit"]["horizon_warmup"] == 2
    assert params["model"]["per_output"] and not params["adaptive"]  # the per-gene field; a fixed lam is fitted once
    assert "x0_noise" not in params["fit"]
    np.testing.assert_array_equal(adata.X, before.X)
    # a new trajectory is prepared with the training scaling and started from its estimated velocity
    new = _system(1, seed=9)
    pred = scn.tl.predict(new, model, n_points=50)
    ts = scn.pp.prepare_trajectories(
        new, time_key="time", lineage_key="trajectory", scale_by="all", reference=params["reference"]
    )
    direct = model.predict(ts.times[0], ts.x0[0], v0=ts.v0[0])
    np.testing.assert_allclose(pred.layers["scaled"], direct, rtol=1e-4, atol=1e-6)
    # order 1 keeps the single-cell preprocessing
    scn.tl.fit_sparse_ode(adata, time_key="time", lineage_key="trajectory", key_added="first", **FIT)
    first = adata.uns["first"]["params"]
    assert first["scale_by"] == "lineage" and first["n_bins"] == 100 and first["x0_cells"] == 5


def test_within_rule_selects_the_sparsest_fit_close_to_the_best():
    from scnode.tl._select import LambdaSearch

    ts = scn.pp.prepare_trajectories(_system(2), time_key="time", lineage_key="trajectory", scale_by="all")
    # errors of a noise-free system: from 1e-5 (best) over orders of magnitude to the empty graph's 1.3
    val = {0.1: 1.3e-5, 1.0: 1.0e-5, 10.0: 1.8e-5, 100.0: 1.8e-3, 1000.0: 2.5e-2, 1e4: 1.3}
    rows = [{"lam": lam, "val_mse": v, "graph": "ok"} for lam, v in val.items()]

    def chosen(**rule):
        search = LambdaSearch(lambda lam: None, ts, window=None, fit_kwargs={}, **rule)
        search.search.rows = [dict(r) for r in rows]
        return search.search.rows[search.select()]["lam"], search.search.reason

    assert chosen()[0] == 1000.0  # keeps more than half the gain over the empty graph, 2500 x the best error
    lam, reason = chosen(within=2.0)
    assert lam == 10.0 and reason.startswith("largest lam whose validation error is at most 2 x the best (lam 1,")
    with pytest.raises(ValueError, match="within must be >= 1"):
        LambdaSearch(lambda lam: None, ts, window=None, fit_kwargs={}, within=0.5)


def test_adaptive_factors_make_weak_pairs_expensive_and_strong_ones_cheap():
    from scnode.tl._adaptive import adaptive_factors
    from scnode.tl._utils import used_pairs

    scores = np.array([[2.0, 0.0, 1.0, -0.5], [0.0, 4.0, 1e-6, 2.0]])  # targets x (x0, x1, v0, v1)
    used = np.ones((2, 4), dtype=bool)
    f = adaptive_factors(scores, used)
    assert f.shape == (2, 4) and f.mean() == pytest.approx(1.0)
    inverse = 1.0 / np.maximum(np.abs(scores) / 4.0, 1e-3)  # the strongest pair is the cheapest, cut pairs 1000x dearer
    np.testing.assert_allclose(f, inverse / inverse.mean(), rtol=1e-6)
    # a prior's (targets x genes) factors multiply both the position and the velocity columns
    prior = np.array([[1.0, 0.1], [1.0, 1.0]])
    expected = inverse * np.tile(prior, (1, 2))
    np.testing.assert_allclose(adaptive_factors(scores, used, prior), expected / expected.mean(), rtol=1e-6)
    # only the inputs a model has weights for count
    limited = scn.SparseODE(2, method="pathreg", order=2, per_output=True, hidden=(3,), inputs=[1], device="cpu")
    used = used_pairs(limited)
    np.testing.assert_array_equal(used, [[False, True, False, True]] * 2)
    h = adaptive_factors(scores * used, used)
    assert h[used].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(adaptive_factors(np.zeros((2, 4)), used), 1.0)  # no dependence at all


def test_the_automatic_penalty_of_order_two_searches_again_with_the_first_fits_factors(monkeypatch):
    from scnode.tl import _fit

    adata = _system(3)
    fast = {k: v for k, v in FIT.items() if k != "lam"}
    seen = []
    original = _fit.adaptive_factors

    def spy(scores, used, base=None):
        seen.append((scores, original(scores, used, base)))
        return seen[-1][1]

    monkeypatch.setattr(_fit, "adaptive_factors", spy)
    sized = []
    jacobian = _fit.mean_jacobian

    def sizes(model, ts, *, absolute=False):
        if absolute:
            sized.append(model.config.lam)
        return jacobian(model, ts, absolute=absolute)

    monkeypatch.setattr(_fit, "mean_jacobian", sizes)
    model = scn.tl.fit_sparse_ode(
        adata, method="pathreg", order=2, time_key="time", lineage_key="trajectory", return_model=True, **fast
    )
    path = adata.uns["scnode"]["path"]
    assert adata.uns["scnode"]["params"]["adaptive"] and len(seen) == 1
    first = path["first_stage"]["table"]
    assert first["selected"].sum() == 1 and path["rule"].startswith("largest lam whose validation error is at most 2 x")
    assert sized == [first["lam"][first["selected"]][0]]  # the sizes of the first search's selected fit
    assert seen[0][0].shape == (3, 6) and (seen[0][0] >= 0).all()
    weights = model.system.pair_weight.cpu().numpy()
    np.testing.assert_allclose(weights, seen[0][1], rtol=1e-6)
    assert weights.std() > 0
    # off on request, and not possible with the shared field
    scn.tl.fit_sparse_ode(
        adata,
        method="pathreg",
        order=2,
        time_key="time",
        lineage_key="trajectory",
        adaptive=False,
        key_added="once",
        **fast,
    )
    assert "first_stage" not in adata.uns["once"]["path"] and not adata.uns["once"]["params"]["adaptive"]
    with pytest.raises(ValueError, match=r"adaptive=True .* needs one network per gene"):
        scn.tl.fit_sparse_ode(
            adata, order=2, time_key="time", lineage_key="trajectory", field="shared", adaptive=True, **FIT
        )
