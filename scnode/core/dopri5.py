"""Dormand–Prince 5(4) whose dense output is evaluated at every output time in one vectorised step.

The steps are torchdiffeq's ``dopri5`` (same tableau, initial step, error norm, step-size controller
and 4th-order interpolant), but the step-size control runs on Python floats (one device sync per
step: the error norm) and the interpolant is evaluated for all output times of all trajectories at
once, after the last step. torchdiffeq evaluates it one output time after another and writes each
into the solution tensor, which costs about twenty operations per output time in the forward pass
and as many in the backward pass: with hundreds of cells per trajectory, that loop — not the
vector field — dominated a training iteration, and on a GPU every one of those operations is a
kernel launch. Step sizes are not differentiated (torchdiffeq's first step is, through its initial
step heuristic); the gradient is otherwise that of the same computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Butcher tableau of Dormand and Prince (1980), as in torchdiffeq/_impl/dopri5.py.
_C = (1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),  # = the 5th-order solution (FSAL)
)
_ERROR = (
    35 / 384 - 1951 / 21600,
    0.0,
    500 / 1113 - 22642 / 50085,
    125 / 192 - 451 / 720,
    -2187 / 6784 - -12231 / 42400,
    11 / 84 - 649 / 6300,
    -1 / 60,
)
_MID = (  # the solution at the step's midpoint, for the interpolant (Shampine 1986)
    6025192743 / 30085553152 / 2,
    0.0,
    51252292925 / 65400821598 / 2,
    -2691868925 / 45128329728 / 2,
    187940372067 / 1594534317056 / 2,
    -1776094331 / 19743644256 / 2,
    11237099 / 235043384 / 2,
)
ORDER = 5
SAFETY, IFACTOR, DFACTOR = 0.9, 10.0, 0.2
MAX_STEPS = 100_000
MATMUL_STEPS = 16
"""Up to this many steps the interpolant is evaluated as one batched matrix product (else by gathers)."""


class SolverError(RuntimeError):
    """The adaptive solver could not continue (step size underflow, non-finite state, too many steps)."""


def _combine(y: torch.Tensor, ks: list[torch.Tensor], coefficients: tuple[float, ...], dt: float) -> torch.Tensor:
    """``y + dt * sum_j c_j k_j`` over the non-zero coefficients."""
    out = y
    for c, k in zip(coefficients, ks, strict=False):
        if c != 0.0:
            out = torch.add(out, k, alpha=dt * c)
    return out


def _time(t: float) -> torch.Tensor:
    """Return a 0-d CPU tensor: it mixes with tensors on any device without a copy (the fields are autonomous)."""
    return torch.tensor(t, dtype=torch.float64)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean().sqrt()


def _initial_step(func: Field, y0: torch.Tensor, f0: torch.Tensor, rtol: float, atol: float) -> float:
    """Hairer, Nørsett & Wanner's starting step (Solving ODEs I, II.4), as torchdiffeq chooses it."""
    with torch.no_grad():
        scale = atol + y0.abs() * rtol
        d0, d1 = float(_rms(y0 / scale)), float(_rms(f0 / scale))
    if not (math.isfinite(d0) and math.isfinite(d1)):
        raise SolverError("the initial state or the field's value there is non-finite (t = 0)")
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = func(_time(h0), y0 + h0 * f0)  # an evaluation of the field, counted like any other
    with torch.no_grad():
        d2 = float(_rms((f1 - f0) / scale)) / h0
    if not math.isfinite(d2):
        raise SolverError(f"the field's value became non-finite at t = {h0:.3g}")
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / ORDER)
    return min(100 * h0, h1)


def dopri5(
    func: Field, y0: torch.Tensor, times: torch.Tensor, *, rtol: float = 1e-3, atol: float = 1e-3
) -> torch.Tensor:
    """Solve ``dy/dt = func(t, y)`` from ``y0`` (``(B, D)``, at time 0) and return ``y`` at ``times``.

    Parameters
    ----------
    func
        The vector field, called as ``func(t, y)`` with a scalar tensor ``t`` and ``y`` of ``y0``'s shape.
    y0
        Initial states of ``B`` trajectories, ``(B, D)``; they are stepped together (one step size).
    times
        ``(B, T)``: each trajectory's own output times, within ``[0, times.max()]``.
    rtol, atol
        Tolerances of the local error estimate (root mean square over all entries, as torchdiffeq).

    Returns
    -------
    ``(B, T, D)``, each trajectory at its own times.
    """
    t_end = float(times.max())
    f0 = func(_time(0.0), y0)
    dt = _initial_step(func, y0, f0, rtol, atol)
    t0, y, f = 0.0, y0, f0
    starts: list[float] = []
    ends: list[float] = []
    states: list[tuple[torch.Tensor, ...]] = []  # (y0, y1, y_mid, f0, f1) of each accepted step
    for _ in range(MAX_STEPS):
        if t0 >= t_end:
            break
        if not math.isfinite(dt):
            raise SolverError(f"the step size became {dt} at t = {t0:.6g}")
        t1 = t0 + dt
        if not t1 > t0:
            raise SolverError(f"underflow in dt ({dt:.3g}) at t = {t0:.6g}")
        ks = [f]
        for c, a in zip(_C, _A, strict=True):
            y1 = _combine(y, ks, a, dt)  # after the last stage: its input, the 5th-order solution
            ks.append(func(_time(t1 if c == 1.0 else t0 + c * dt), y1))
        with torch.no_grad():  # the error estimate steers the step size only: no graph
            error = _combine(torch.zeros_like(y), ks, _ERROR, dt)
            ratio = float(_rms(error / (atol + rtol * torch.maximum(y.abs(), y1.abs()))))
        if not math.isfinite(ratio):
            raise SolverError(f"the state or its error estimate became non-finite at t = {t0:.6g}")
        if ratio <= 1:
            starts.append(t0)
            ends.append(t1)
            states.append((y, y1, _combine(y, ks, _MID, dt), ks[0], ks[-1]))
            t0, y, f = t1, y1, ks[-1]
        if ratio == 0:
            dt *= IFACTOR
        else:
            dt *= min(IFACTOR, max(SAFETY / ratio ** (1.0 / ORDER), DFACTOR if ratio >= 1 else 1.0))
    else:
        raise SolverError(f"more than {MAX_STEPS} steps up to t = {t0:.6g} (of {t_end:.6g}); is the field stiff?")
    if not states:  # every output time is 0
        return y0[:, None, :].expand(-1, times.shape[1], -1)
    return _evaluate(starts, ends, states, times)


def _evaluate(
    starts: list[float], ends: list[float], states: list[tuple[torch.Tensor, ...]], times: torch.Tensor
) -> torch.Tensor:
    """Evaluate the 4th-order interpolant of the step holding each output time (torchdiffeq's ``_interp_fit``)."""
    y0, y1, ym, f0, f1 = (torch.stack(s) for s in zip(*states, strict=True))  # (S, B, D) each
    h = torch.tensor([e - s for s, e in zip(starts, ends, strict=True)], dtype=y0.dtype, device=y0.device)
    h = h[:, None, None]
    coefficients = (  # p(x) = e + d x + c x^2 + b x^3 + a x^4 on x in [0, 1]
        y0,
        h * f0,
        h * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * ym,
        h * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * ym,
        2 * h * (f1 - f0) - 8 * (y1 + y0) + 16 * ym,
    )
    t = times.to(torch.float64)
    start = torch.tensor(starts, dtype=torch.float64, device=t.device)
    end = torch.tensor(ends, dtype=torch.float64, device=t.device)
    step = torch.searchsorted(end, t.contiguous()).clamp(max=len(ends) - 1)  # the step with start < t <= end
    x = ((t - start[step]) / (end[step] - start[step])).to(y0.dtype)  # (B, T) in [0, 1]
    n_steps = len(ends)
    if n_steps <= MATMUL_STEPS:  # one batched product with a block-sparse matrix of powers of x
        powers = x.unsqueeze(-1) ** torch.arange(5, device=x.device, dtype=x.dtype)  # (B, T, 5)
        onehot = torch.nn.functional.one_hot(step, n_steps).to(x.dtype)  # (B, T, S)
        basis = (onehot.unsqueeze(-1) * powers.unsqueeze(-2)).flatten(2)  # (B, T, S * 5)
        stacked = torch.stack(coefficients, 1).permute(2, 0, 1, 3).flatten(1, 2)  # (B, S * 5, D)
        return torch.bmm(basis, stacked)
    b = torch.arange(t.shape[0], device=t.device)[:, None]
    x = x.unsqueeze(-1)
    out = coefficients[4][step, b]
    for c in coefficients[3::-1]:  # Horner
        out = torch.addcmul(c[step, b], out, x)
    return out
