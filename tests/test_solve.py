import pytest
import torch

from scnode.core import ODESystem, SolverOptions, TimeGrid, odeint, solve_batched

TIMES = [
    torch.tensor([0.0, 0.13, 0.5, 0.51, 1.7, 2.0], dtype=torch.float64),
    torch.tensor([1.5, 1.6, 2.45, 3.0], dtype=torch.float64),
    torch.tensor([-0.7, -0.2, 0.05, 0.9, 1.1, 1.13, 2.6, 2.9, 3.3], dtype=torch.float64),
]


def _system(order, n_vars=2, hidden=(6,), dtype=torch.float64):
    torch.manual_seed(0)
    system = ODESystem(n_vars=n_vars, order=order, hidden=hidden, activation="tanh").to(dtype)
    system.prepare(sample=False)
    return system


@pytest.mark.parametrize("order", [1, 2])
def test_batched_equals_separate_solves(order):
    system = _system(order)
    y0 = torch.randn(3, 2 * order, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    opts = SolverOptions(rtol=1e-10, atol=1e-10)
    grid = TimeGrid.from_times(TIMES)
    with torch.no_grad():
        batched = solve_batched(system, y0, grid, opts)
        assert batched.shape == (3, max(len(t) for t in TIMES), 2 * order)
        for b, t in enumerate(TIMES):
            alone = odeint(system, y0[b], t, opts)  # autonomous field: own (unshifted) times
            assert alone.shape == (len(t), 2 * order)
            torch.testing.assert_close(batched[b, : len(t)], alone, rtol=0, atol=1e-6)
            torch.testing.assert_close(batched[b, 0], y0[b], rtol=0, atol=1e-12)
    # the states actually move, so the comparison is not trivial
    assert (batched[0, 5] - batched[0, 0]).abs().max() > 1e-2


def test_time_grid_structure():
    grid = TimeGrid.from_times(TIMES)
    assert grid.union[0] == 0
    assert (grid.union[1:] > grid.union[:-1]).all()
    assert grid.index.shape == grid.mask.shape == (3, 9)
    assert grid.mask.sum(1).tolist() == [6, 4, 9]
    for b, t in enumerate(TIMES):
        torch.testing.assert_close(grid.union[grid.index[b, : len(t)]], t - t[0])


def test_gather_picks_each_trajectory():
    grid = TimeGrid.from_times([torch.tensor([0.0, 1.0]), torch.tensor([3.0, 3.5, 5.0])])
    assert grid.union.tolist() == [0.0, 0.5, 1.0, 2.0]
    sol = torch.arange(4.0)[:, None, None] + 10 * torch.arange(2.0)[None, :, None]  # (U, B, 1)
    out = grid.gather(sol)
    assert out[0, :2, 0].tolist() == [0.0, 2.0]
    assert out[1, :3, 0].tolist() == [10.0, 11.0, 13.0]


def test_fixed_step_solver():
    system = _system(1)
    y0 = torch.randn(3, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grid = TimeGrid.from_times(TIMES)
    with torch.no_grad():
        rk4 = solve_batched(system, y0, grid, SolverOptions(method="rk4", step_size=0.01))
        ref = solve_batched(system, y0, grid, SolverOptions(rtol=1e-10, atol=1e-10))
        coarse = solve_batched(system, y0, grid, SolverOptions(method="euler", step_size=0.25))
    assert torch.isfinite(rk4).all()
    for b, t in enumerate(TIMES):
        torch.testing.assert_close(rk4[b, : len(t)], ref[b, : len(t)], rtol=0, atol=1e-6)
    # Euler with a coarse step is a different (less accurate) solution
    assert (coarse[2, :9] - ref[2, :9]).abs().max() > 1e-4


def test_unknown_solver_raises():
    with pytest.raises(ValueError, match="nope"):
        SolverOptions(method="nope")


@pytest.mark.parametrize("kwargs", [{"rtol": 0.0}, {"atol": -1.0}, {"method": "rk4", "step_size": 0.0}])
def test_invalid_solver_options_raise(kwargs):
    with pytest.raises(ValueError):
        SolverOptions(**kwargs)


def test_batched_solve_is_differentiable():
    system = _system(1)
    y0 = torch.randn(3, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = solve_batched(system, y0, TimeGrid.from_times(TIMES), SolverOptions())
    out.sum().backward()
    grad = system.field.layers[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and (grad != 0).any()


def test_hermite_is_exact_for_cubics():
    from scnode.core.solve import hermite

    knots = torch.tensor([0.0, 0.3, 1.0, 1.6], dtype=torch.float64)
    t = torch.linspace(0, 1.6, 37, dtype=torch.float64)

    def f(x):
        return 2 * x**3 - x**2 + 0.5

    def df(x):
        return 6 * x**2 - 2 * x

    values = torch.stack([f(knots), 2 * f(knots)], 1)[..., None]  # (K, B=2, D=1)
    slopes = torch.stack([df(knots), 2 * df(knots)], 1)[..., None]
    out = hermite(knots, values, slopes, torch.stack([t, t.flip(0)]))  # each trajectory its own times
    assert out.shape == (2, 37, 1)
    torch.testing.assert_close(out[0, :, 0], f(t), rtol=0, atol=1e-12)
    torch.testing.assert_close(out[1, :, 0], 2 * f(t.flip(0)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_dense_points_interpolate_many_output_times_accurately(order):
    system = _system(order)
    y0 = torch.randn(3, 2 * order, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rng = torch.Generator().manual_seed(2)
    many = [torch.sort(torch.rand(400, generator=rng, dtype=torch.float64) * 3)[0] for _ in range(3)]
    grid = TimeGrid.from_times(many)
    assert grid.union.numel() > 1000
    direct = SolverOptions("dopri8", rtol=1e-7, atol=1e-7, dense_points=None)  # torchdiffeq
    dense = SolverOptions("dopri8", rtol=1e-7, atol=1e-7, dense_points=64)
    with torch.no_grad():
        exact, interpolated = solve_batched(system, y0, grid, direct), solve_batched(system, y0, grid, dense)
    assert (exact[:, -1] - exact[:, 0]).abs().max() > 1e-2  # the states move
    torch.testing.assert_close(interpolated, exact, rtol=0, atol=1e-5)
    # gradients flow through the interpolation
    system.zero_grad()
    solve_batched(system, y0, grid, dense).square().sum().backward()
    grads = [p.grad for p in system.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    with pytest.raises(ValueError, match="dense_points must be >= 2"):
        SolverOptions(dense_points=1)


@pytest.mark.parametrize("matmul_steps", [16, 0])  # both evaluations of the interpolant
@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_dopri5_matches_torchdiffeq(monkeypatch, matmul_steps, tol):
    import torchdiffeq

    from scnode.core import dopri5 as dp

    monkeypatch.setattr(dp, "MATMUL_STEPS", matmul_steps)
    field = _system(1, n_vars=5, hidden=(16,), dtype=torch.float32)  # counts its evaluations (nfe)
    field.nfe = 0
    y0 = torch.randn(3, 5, generator=torch.Generator().manual_seed(5))
    rng = torch.Generator().manual_seed(6)
    many = [torch.sort(torch.rand(n, generator=rng, dtype=torch.float64) * 4)[0] for n in (300, 40, 120)]
    grid = TimeGrid.from_times(many)
    ours = solve_batched(field, y0, grid, SolverOptions(rtol=tol, atol=tol))
    nfe, field.nfe = field.nfe, 0
    ref = grid.gather(torchdiffeq.odeint(field, y0, grid.union.float(), rtol=tol, atol=tol, method="dopri5"))
    assert field.nfe == nfe > 10  # the same steps: same number of evaluations
    assert (ref[:, -1] - ref[:, 0]).abs().max() > 0.1  # the states move
    torch.testing.assert_close(ours[grid.mask], ref[grid.mask], rtol=0, atol=2e-5)
    params = [p for p in field.parameters() if p.requires_grad]
    g_ours = torch.autograd.grad(ours[grid.mask].square().sum(), params, retain_graph=True)  # shared prepare()
    g_ref = torch.autograd.grad(ref[grid.mask].square().sum(), params)
    for a, b in zip(g_ours, g_ref, strict=True):
        assert float((a - b).norm() / b.norm()) < 1e-4


def test_dopri5_reports_what_went_wrong(monkeypatch):
    from scnode.core import dopri5 as dp

    times = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    with pytest.raises(dp.SolverError, match="non-finite"):
        dp.dopri5(lambda t, y: y * float("nan"), torch.ones(1, 2), times)
    monkeypatch.setattr(dp, "MAX_STEPS", 20)
    with pytest.raises(dp.SolverError, match="more than 20 steps"):  # a stiff field
        dp.dopri5(lambda t, y: -1e6 * y + torch.sin(1e3 * y), torch.ones(1, 2), times)
    out = dp.dopri5(lambda t, y: -y, torch.ones(2, 3), torch.zeros(2, 4, dtype=torch.float64))
    torch.testing.assert_close(out, torch.ones(2, 4, 3))  # every output time is 0: the initial state
