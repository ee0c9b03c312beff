"""The CUDA path: skipped without a GPU (``-m gpu`` selects these tests)."""

import numpy as np
import pytest
import torch
from helpers import cells, damped_system

import scnode as scn

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.fixture(scope="module")
def data():
    return damped_system()


def test_fit_on_gpu(data):
    times, values = data
    m = scn.SparseODE(3, method="pathreg", order=2, hidden=(8,), device="auto")
    assert m.device.type == "cuda"
    m.fit(times, values, n_iter=5, progress_bar=False)
    assert m.adjacency().shape == (3, 6) and np.isfinite(m.history.loss).all()


def test_time_windows_on_gpu(data):
    """Mini-batches of time windows draw from the model's generator, which lives on the GPU."""
    times, values = data
    m = scn.SparseODE(3, method="l0", order=2, hidden=(8,), device="cuda")
    m.fit(times, values, n_iter=6, batch_time=5, batch_size=4, progress_bar=False)
    assert np.isfinite(m.history.loss).all()


def test_gpu_learns_what_the_cpu_learns(data):
    """Same initial weights on both devices; an ungated fit follows the same losses to float32 accuracy."""
    times, values = data
    kwargs = {"method": "base", "order": 2, "hidden": (8,), "random_state": 3}
    fit = {"n_iter": 8, "refit_iter": 0, "progress_bar": False}
    cpu = scn.SparseODE(3, device="cpu", **kwargs).fit(times, values, **fit)
    gpu = scn.SparseODE(3, device="cuda", **kwargs).fit(times, values, **fit)
    np.testing.assert_allclose(gpu.history.loss, cpu.history.loss, rtol=1e-3)
    np.testing.assert_allclose(gpu.adjacency(), cpu.adjacency(), rtol=1e-2, atol=1e-5)


def test_anndata_tools_on_gpu(tmp_path):
    """fit -> score -> intervention -> save/load on CUDA, the recommended single-cell field."""
    adata = cells(n_genes=4)
    model = scn.tl.fit_sparse_ode(
        adata,
        lineage_key="lineage",
        n_iter=6,
        hidden=(8,),
        model_kwargs={"per_output": True, "decay": True},
        device="cuda",
        progress_bar=False,
        return_model=True,
    )
    assert model.device.type == "cuda"
    assert adata.varp["scnode"].shape == (4, 4) and np.isfinite(adata.layers["scnode_fitted"]).all()
    table = scn.tl.score(adata, model, lineage_key="lineage")
    assert np.isfinite(table["mse"]).all()
    knocked = scn.tl.simulate_intervention(adata, model, knockout="g0", start=0.5, n_points=11)
    acting = knocked.obs["intervened"].to_numpy()
    assert acting.any() and np.isfinite(knocked.X).all()
    np.testing.assert_allclose(knocked.X[acting, 0], 0.0, atol=1e-5)
    model.save(tmp_path / "m")
    back = scn.SparseODE.load(tmp_path / "m", device="cpu")
    np.testing.assert_allclose(back.adjacency(), model.adjacency(), rtol=1e-6)


def test_redrawn_gates_on_gpu(monkeypatch):
    """A first layer above REDRAW_MIN_GATES draws its gates' sample again in the backward pass from the
    CUDA generator's saved state: the same fit as with the sample kept (float32 on the GPU)."""
    from scnode.core import layers

    t = np.linspace(0, 1, 12)
    values = [np.stack([np.sin(3 * t + k), np.cos(2 * t), t**2, np.exp(-t)], axis=1) for k in range(3)]
    fits = []
    for threshold in (1, 2**62):
        monkeypatch.setattr(layers, "REDRAW_MIN_GATES", threshold)
        kwargs = {"per_output": True, "hidden": (8,), "lam": 0.05, "device": "cuda", "random_state": 0}
        model = scn.SparseODE(4, method="pathreg", **kwargs)
        fits.append(model.fit([t] * 3, values, n_iter=5, refit_iter=0, batch_time=4, batch_size=6, progress_bar=False))
    np.testing.assert_allclose(fits[0].history.loss, fits[1].history.loss, rtol=1e-5)
    for a, b in zip(fits[0].system.parameters(), fits[1].system.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
