"""The paper's synthetic second-order system, as AnnData."""

from __future__ import annotations

from collections.abc import Mapping

import anndata as ad
import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

VAR_NAMES = ["x0", "x1", "x2"]
PAPER_INITIAL_STATE = np.array([0.4, 0.7, 1.8, 0.3, 0.5, 1.0])
"""``(x0, x1, x2, v0, v1, v2)`` at ``t = 0`` in the authors' code."""


def second_order_coefficients() -> np.ndarray:
    """Return the matrix ``C`` of the linear system ``d2x/dt2 = C [x, v]`` of the authors' code, shape ``(3, 6)``.

    ``x0'' = -1.5 x0 - 0.5 v0``; ``x1'' = -2.7 x1 - v1``; ``x2'' = -2 x2 - v0 - v1 - 0.1 v2``.
    """
    c = np.zeros((3, 6))
    c[0, 0], c[0, 3] = -1.5, -0.5
    c[1, 1], c[1, 4] = -2.7, -1.0
    c[2, 2], c[2, 3], c[2, 4], c[2, 5] = -2.0, -1.0, -1.0, -0.1
    return c


def second_order_system(
    *,
    n_trajectories: int = 1,
    t_max: float = 10.0,
    n_times: int = 50,
    random_initial: bool | None = None,
    initial_range: tuple[float, float] = (-2.0, 2.0),
    noise: float = 0.0,
    irregular: bool = False,
    coefficients: np.ndarray | None = None,
    hold: Mapping[int, float] | None = None,
    random_state: int = 0,
) -> ad.AnnData:
    """Simulate the paper's damped second-order linear system.

    Parameters
    ----------
    n_trajectories
        Number of trajectories.
    t_max
        Time horizon; observations lie in ``[0, t_max]``.
    n_times
        Observations per trajectory (``linspace(0, t_max, n_times)`` unless ``irregular``).
    random_initial
        Draw ``(x, v)(0)`` uniformly from ``initial_range``; default: ``True`` when
        ``n_trajectories > 1``, else the paper's initial state.
    initial_range
        Range of random initial positions and velocities.
    noise
        Standard deviation of Gaussian observation noise added to ``X``.
    irregular
        Observation times drawn uniformly in ``(0, t_max]`` (plus ``t = 0``), per trajectory.
    coefficients
        Replace the system matrix ``C`` (``(3, 6)``, see :func:`second_order_coefficients`), e.g. to
        simulate a changed mechanism. The true adjacency stays that of the original system.
    hold
        ``{index: value}``: hold ``x_index`` at ``value`` (velocity zero), the intervention
        ``do(x_index = value)``.
    random_state
        Seed for initial states, noise and irregular times.

    Returns
    -------
    AnnData with ``X`` the observed positions (cells = observations), ``obs['time']``,
    ``obs['trajectory']`` (categorical), ``var_names`` ``x0, x1, x2``, ``layers['velocity']`` (noise-free
    velocities), ``uns['true_adjacency']`` (``3 x 6``, accelerations x ``[x, v]``),
    ``uns['coefficients']`` and ``uns['initial_state']`` (``n_trajectories x 6``).
    """
    if n_trajectories < 1 or n_times < 2 or t_max <= 0:
        raise ValueError("Need n_trajectories >= 1, n_times >= 2 and t_max > 0.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    rng = np.random.default_rng(random_state)
    truth = second_order_coefficients()
    c = truth if coefficients is None else np.asarray(coefficients, float)
    if c.shape != (3, 6):
        raise ValueError(f"coefficients must have shape (3, 6), got {c.shape}.")
    hold = dict(hold or {})
    for i in hold:
        if i not in (0, 1, 2):
            raise ValueError(f"hold refers to variable {i}; the system has variables 0, 1, 2.")
    if random_initial is None:
        random_initial = n_trajectories > 1
    if random_initial:
        init = rng.uniform(*initial_range, size=(n_trajectories, 6))
    else:
        init = np.tile(PAPER_INITIAL_STATE, (n_trajectories, 1))
    for i, value in hold.items():
        init[:, i], init[:, 3 + i] = value, 0.0
    c_eff = c.copy()
    c_eff[list(hold)] = 0.0

    def rhs(_t: float, s: np.ndarray) -> np.ndarray:
        return np.concatenate([s[3:], c_eff @ s])

    xs, vs, ts, traj = [], [], [], []
    for b in range(n_trajectories):
        if irregular:
            t = np.r_[0.0, np.sort(rng.uniform(0, t_max, n_times - 1))]
        else:
            t = np.linspace(0, t_max, n_times)
        sol = solve_ivp(rhs, (0.0, t_max), init[b], t_eval=t, rtol=1e-10, atol=1e-10, method="DOP853")
        xs.append(sol.y[:3].T)
        vs.append(sol.y[3:].T)
        ts.append(t)
        traj.append(np.full(len(t), str(b)))
    x = np.concatenate(xs)
    if noise:
        x = x + rng.normal(0, noise, size=x.shape)
    obs = pd.DataFrame(
        {
            "time": np.concatenate(ts),
            "trajectory": pd.Categorical(np.concatenate(traj), categories=[str(b) for b in range(n_trajectories)]),
        },
        index=[f"{b}_{k}" for b, t in enumerate(ts) for k in range(len(t))],
    )
    adata = ad.AnnData(x.astype(np.float32), obs=obs, var=pd.DataFrame(index=VAR_NAMES))
    adata.layers["velocity"] = np.concatenate(vs).astype(np.float32)
    adata.uns["true_adjacency"] = (truth != 0).astype(np.int8)
    adata.uns["coefficients"] = c
    adata.uns["initial_state"] = init
    return adata
