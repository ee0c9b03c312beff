"""SparseODE: the user-facing model object (config + fit + predict + adjacency + save/load)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .core import (
    History,
    Intervention,
    NonFiniteLossError,
    ODESystem,
    SolverOptions,
    TimeGrid,
    TrainConfig,
    Trajectories,
    feature_sparsity,
    get_method,
    solve_batched,
    train,
    weight_sparsity,
)
from .core import adjacency as _adjacency
from .core.data import ArrayLike

DEFAULT_LAM: dict[str, float] = {
    "base": 0.0,
    "l0": 21.5,
    "cnode": 464.0,
    "pathreg": 21.5,
    "lassonet_inner": 464.0,
    "lassonet_outer": 464.0,
    "grouplasso": 21.5,
}
"""Default penalty weight of each method: the values the validation rule of ``benchmarks/synthetic.py``
selected on seed 0 (run 2 in docs/results.md; see :mod:`scnode.core.penalties` for the normalisation).
A starting point only: the right value depends on the data; use :meth:`SparseODE.fit_path` to scan it."""
DEFAULT_PATHREG_LAM1 = 464.0
"""Default weight of PathReg's weight-path term (C-NODE's selected weight in the same benchmark)."""


def _constructor_kwargs(config: ModelConfig) -> dict[str, Any]:
    kwargs = asdict(config)
    kwargs.pop("n_vars")
    return kwargs


def _concat(a: History, b: History) -> History:
    da, db = a.as_dict(), b.as_dict()
    return History(**{k: da[k] + db[k] for k in da if k != "interrupted"}, interrupted=a.interrupted or b.interrupted)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda' (optionally 'cuda:N'), got {device!r}.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but CUDA is not available; use device='auto' or 'cpu'.")
    return dev


@dataclass
class ModelConfig:
    """Everything that defines a :class:`SparseODE` (saved next to its weights)."""

    n_vars: int
    method: str = "pathreg"
    order: int = 1
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "elu"
    per_output: bool = False
    gates: str = "all"
    linear: bool = False
    decay: bool = False
    lam: float | None = None
    lam1: float | None = None
    M: float = 10.0
    init_keep: float = 0.999
    velocity_hidden: tuple[int, ...] = (16,)
    solver: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-3
    step_size: float | None = None
    adjoint: bool = False
    dense_points: int | None = 128
    random_state: int = 0
    var_names: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        get_method(self.method)
        self.hidden = tuple(int(h) for h in self.hidden)
        self.velocity_hidden = tuple(int(h) for h in self.velocity_hidden)
        if self.lam is None:
            self.lam = DEFAULT_LAM[self.method]
        if self.lam1 is None:
            self.lam1 = DEFAULT_PATHREG_LAM1 if self.method == "pathreg" else 0.0
        if self.lam < 0 or self.lam1 < 0:
            raise ValueError(f"Penalty weights must be >= 0, got lam={self.lam}, lam1={self.lam1}.")
        if self.n_vars < 1:
            raise ValueError(f"n_vars must be positive, got {self.n_vars}.")
        if self.per_output and get_method(self.method).skip is not None:
            raise ValueError(f"per_output=True is not available for {self.method!r} (its prox acts on a shared layer).")
        if self.gates == "inputs" and not get_method(self.method).gated:  # other values: the field's check
            raise ValueError(f"gates={self.gates!r} applies to the gated methods (l0, pathreg), not {self.method!r}.")
        if self.linear and get_method(self.method).prox is not None:
            raise ValueError(
                f"linear=True is not available for {self.method!r}: its proximal step would leave the linear term "
                "unpenalised (LassoNet's skip already is a linear term)."
            )
        if self.var_names is not None and len(self.var_names) != self.n_vars:
            raise ValueError(f"{len(self.var_names)} var_names for n_vars={self.n_vars}.")

    @property
    def penalty_kwargs(self) -> dict[str, float]:
        """Keyword arguments of the method's penalty and proximal step."""
        return {"lam": float(self.lam), "lam1": float(self.lam1), "M": float(self.M)}

    @property
    def solver_options(self) -> SolverOptions:
        """The solver settings."""
        return SolverOptions(self.solver, self.rtol, self.atol, self.step_size, self.adjoint, self.dense_points)


class SparseODE:
    """A sparse neural ODE ``dx/dt = f(x)`` (or ``d2x/dt2 = f(x, dx/dt)``) fitted to trajectories.

    Parameters
    ----------
    n_vars
        Number of observed variables.
    method
        ``"base"``, ``"l0"``, ``"cnode"``, ``"pathreg"``, ``"lassonet_inner"``, ``"lassonet_outer"``
        or ``"grouplasso"``.
    order
        1 for a first-order system; 2 for a second-order one (state ``(x, v)``).
    hidden
        Hidden widths of the vector-field MLP (per output sub-network for GroupLasso).
    activation
        Activation of the MLP.
    per_output
        One small sub-network per output (each ``hidden`` wide), batched, instead of one shared MLP:
        output ``i`` depends on input ``j`` only through its own sub-network. GroupLasso always uses
        it; for the other methods (not LassoNet) it is an option.
    gates
        Gated methods (L0, PathReg): ``"all"`` layers carry one gate per weight (the paper), or only
        the first layer, whose weights are the field's ``"inputs"`` (and the linear term). With
        ``per_output=True`` and PathReg, ``"inputs"`` makes sparsity choose each output's inputs: with
        every layer gated, closing one output-layer gate removes all of a hidden unit's paths at
        once, so the penalty is cheapest to pay by switching whole sub-networks off (on the
        hematopoiesis data: 494 of 529 genes left without any input, the other 35 keeping all 529).
    linear
        Add a linear term to the field, ``f(x) = MLP(x) + L x`` (base, L0, C-NODE, PathReg): one more
        path per (output, input) pair, gated and penalised like the MLP's paths. A sparse MLP with few
        active units extrapolates along its activation's flat side beyond the training states; the
        linear term keeps the linear part of the dynamics there.
    decay
        First order: every variable also decays at its own learned rate, ``dx_i/dt = f_i(x) -
        gamma_i x_i`` (``gamma_i > 0``), the degradation term of gene-regulatory ODE models. Not
        penalised and not in the adjacency: a sparse field that cuts a gene's own input still lets
        that gene relax towards what its regulators produce (so a new donor's noisy start decays).
    lam
        Penalty weight (``lam0`` for PathReg); ``None`` takes the method's default.
    lam1
        PathReg only: weight of the ``|W z|`` path-product term; ``None`` takes the default.
    M
        LassoNet's hierarchy multiplier.
    init_keep
        Initial probability that a gate is open (gated methods). Close to one, so the gates start
        open with little sampling noise; the penalty then closes the ones the fit does not need.
    velocity_hidden
        Hidden widths of the network predicting ``v(0)`` from ``x(0)`` (second order).
    solver, rtol, atol, step_size, adjoint, dense_points
        ODE solver settings, see :class:`scnode.core.SolverOptions` (``dense_points``, for torchdiffeq's
        adaptive solvers other than the default ``dopri5``: with more output times than this, solve at
        this many and interpolate the rest).
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    random_state
        Seed for initialisation, gate samples and mini-batches (CPU runs are repeatable).
    var_names
        Names of the variables (checked when loading against data).
    """

    def __init__(
        self,
        n_vars: int,
        *,
        method: str = "pathreg",
        order: int = 1,
        hidden: Sequence[int] = (32, 32),
        activation: str = "elu",
        per_output: bool = False,
        gates: str = "all",
        linear: bool = False,
        decay: bool = False,
        lam: float | None = None,
        lam1: float | None = None,
        M: float = 10.0,
        init_keep: float = 0.999,
        velocity_hidden: Sequence[int] = (16,),
        solver: str = "dopri5",
        rtol: float = 1e-3,
        atol: float = 1e-3,
        step_size: float | None = None,
        adjoint: bool = False,
        dense_points: int | None = 128,
        device: str | torch.device = "auto",
        random_state: int = 0,
        var_names: Sequence[str] | None = None,
    ) -> None:
        self.config = ModelConfig(
            n_vars=n_vars,
            method=method,
            order=order,
            hidden=tuple(hidden),
            activation=activation,
            per_output=per_output,
            gates=gates,
            linear=linear,
            decay=decay,
            lam=lam,
            lam1=lam1,
            M=M,
            init_keep=init_keep,
            velocity_hidden=tuple(velocity_hidden),
            solver=solver,
            rtol=rtol,
            atol=atol,
            step_size=step_size,
            adjoint=adjoint,
            dense_points=dense_points,
            random_state=random_state,
            var_names=None if var_names is None else [str(v) for v in var_names],
        )
        self.config.solver_options  # noqa: B018 - validates the solver settings early
        self.device = resolve_device(device)
        self.method = get_method(method)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_state)
            self.system = ODESystem(
                n_vars,
                order=order,
                hidden=self.config.hidden,
                activation=activation,
                gated=self.method.gated,
                gate_layers=self.config.gates,
                grouped=self.method.grouped or per_output,
                skip=self.method.skip,
                linear=linear,
                decay=decay,
                init_keep=init_keep,
                velocity_hidden=self.config.velocity_hidden,
            ).to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(random_state)
        self.history: History = History()
        self.preprocessing: dict[str, Any] | None = None
        """How AnnData was turned into trajectories for the fit (set by :func:`scnode.tl.fit_sparse_ode`;
        the companion tools prepare other AnnData the same way)."""

    def __repr__(self) -> str:
        c = self.config
        return f"SparseODE(n_vars={c.n_vars}, method={c.method!r}, order={c.order}, hidden={c.hidden}, lam={c.lam})"

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        times: ArrayLike | Sequence[ArrayLike],
        values: ArrayLike | Sequence[ArrayLike],
        *,
        x0: ArrayLike | None = None,
        v0: ArrayLike | None = None,
        n_iter: int = 1000,
        lr: float = 1e-2,
        lr_factor: float = 0.5,
        lr_patience: int = 100,
        min_lr: float = 1e-4,
        gate_lr_factor: float = 10.0,
        batch_time: int | None = None,
        batch_size: int = 16,
        x0_noise: float = 0.0,
        refit_iter: int | None = None,
        refit_lr_factor: float = 1.0,
        horizon_warmup: int | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 100,
        resume: str | Path | None = None,
        progress_bar: bool = True,
    ) -> SparseODE:
        """Fit to one or several trajectories that share the vector field.

        Parameters
        ----------
        times
            ``(T,)`` observation times, or a list with one array per trajectory.
        values
            ``(T, n_vars)`` observations, or a list with one array per trajectory.
        x0
            Initial positions ``(B, n_vars)``; default: each trajectory's first observation.
        v0
            Initial velocities ``(B, n_vars)`` (second order); default: predicted from ``x0``.
        refit_iter
            Iterations of the unpenalised refit with the learned zero pattern frozen; default
            ``n_iter // 2``.
        horizon_warmup
            Iterations over which the fitted time span grows to the whole trajectories; default
            ``n_iter // 4`` for full-batch training.
        n_iter, lr, lr_factor, lr_patience, min_lr, gate_lr_factor, refit_lr_factor
            Optimiser settings; see :class:`scnode.core.TrainConfig`.
        batch_time, batch_size, x0_noise, checkpoint, checkpoint_every, resume, progress_bar
            Batching, noise, checkpoints and display; see :class:`scnode.core.TrainConfig`.

        Returns
        -------
        ``self``, with :attr:`history` filled.
        """
        if refit_iter is None:
            refit_iter = n_iter // 2
        if horizon_warmup is None:
            horizon_warmup = n_iter // 4 if batch_time is None else 0
        data = Trajectories.from_arrays(times, values, x0=x0, v0=v0).to(self.device)
        if data.n_vars != self.config.n_vars:
            raise ValueError(f"The data have {data.n_vars} variables but the model was built for {self.config.n_vars}.")
        cfg = TrainConfig(
            n_iter=n_iter,
            lr=lr,
            lr_factor=lr_factor,
            lr_patience=lr_patience,
            min_lr=min_lr,
            gate_lr_factor=gate_lr_factor,
            batch_time=batch_time,
            batch_size=batch_size,
            x0_noise=x0_noise,
            refit_iter=refit_iter,
            refit_lr_factor=refit_lr_factor,
            horizon_warmup=horizon_warmup,
            checkpoint=None if checkpoint is None else str(checkpoint),
            checkpoint_every=checkpoint_every,
            resume=None if resume is None else str(resume),
            progress_bar=progress_bar,
        )
        self.system.train()
        try:
            self.history = train(
                self.system,
                self.method,
                data,
                penalty_kwargs=self.config.penalty_kwargs,
                solver=self.config.solver_options,
                config=cfg,
                generator=self.generator,
            )
        except NonFiniteLossError as err:
            self.history = err.history or History()
            raise
        finally:
            self.system.eval()
        return self

    def clone(self) -> SparseODE:
        """Return an independent copy: same configuration, weights, history and generator state."""
        other = SparseODE(self.config.n_vars, device=self.device, **_constructor_kwargs(self.config))
        other.system.load_state_dict(self.system.state_dict())
        other.generator.set_state(self.generator.get_state())
        other.history = History(**copy.deepcopy(self.history.as_dict()))
        other.preprocessing = copy.deepcopy(self.preprocessing)
        return other

    def fit_path(
        self,
        times: ArrayLike | Sequence[ArrayLike],
        values: ArrayLike | Sequence[ArrayLike],
        lams: Sequence[float],
        *,
        x0: ArrayLike | None = None,
        v0: ArrayLike | None = None,
        n_iter: int = 1000,
        path_iter: int | None = None,
        refit_iter: int | None = None,
        **fit_kwargs: Any,
    ) -> list[SparseODE]:
        """Fit along a path of increasing penalty weights with warm starts.

        The first ``lam`` is fitted from scratch for ``n_iter`` penalised iterations; each next one
        continues from the previous penalised state for ``path_iter`` iterations. After each, a copy
        is refitted (``refit_iter`` iterations with the zero pattern frozen) and returned; this
        model keeps the last penalised state.

        Parameters
        ----------
        times, values, x0, v0
            As in :meth:`fit`.
        lams
            Penalty weights, fitted in increasing order.
        n_iter
            Penalised iterations for the first ``lam``.
        path_iter
            Penalised iterations for each further ``lam``; default ``n_iter // 2``.
        refit_iter
            Refit iterations of each returned model; default ``n_iter // 2``.
        **fit_kwargs
            Further arguments of :meth:`fit`.

        Returns
        -------
        One refitted model per ``lam``, in increasing order of ``lam``; its history is the path's up
        to its ``lam`` followed by its refit.
        """
        if refit_iter is None:
            refit_iter = n_iter // 2
        states = self._penalised_path(
            times, values, lams, x0=x0, v0=v0, n_iter=n_iter, path_iter=path_iter, **fit_kwargs
        )
        return [state._refit_copy(times, values, x0=x0, v0=v0, refit_iter=refit_iter, **fit_kwargs) for state in states]

    def _penalised_path(
        self,
        times: ArrayLike | Sequence[ArrayLike],
        values: ArrayLike | Sequence[ArrayLike],
        lams: Sequence[float],
        *,
        x0: ArrayLike | None = None,
        v0: ArrayLike | None = None,
        n_iter: int = 1000,
        path_iter: int | None = None,
        **fit_kwargs: Any,
    ) -> list[SparseODE]:
        """Run the sequential half of :meth:`fit_path`: the warm-started penalised chain, no refits.

        Returns a copy of the penalised state after each ``lam`` (increasing order), its history the
        path's up to that ``lam``; this model keeps the last state. Each copy is then refitted
        independently by :meth:`_refit_copy` (serially, or as parallel tasks by
        :func:`scnode.tl.lambda_path`).
        """
        if path_iter is None:
            path_iter = n_iter // 2
        continued = {**fit_kwargs, "horizon_warmup": 0}  # warm starts fit the whole span at once
        states, path_history = [], History()
        for k, lam in enumerate(sorted(float(v) for v in lams)):
            if lam < 0:
                raise ValueError(f"Penalty weights must be >= 0, got {lam}.")
            self.config.lam = lam
            first = k == 0
            self.fit(
                times,
                values,
                x0=x0,
                v0=v0,
                n_iter=n_iter if first else path_iter,
                refit_iter=0,
                **(fit_kwargs if first else continued),
            )
            path_history = _concat(path_history, self.history)
            state = self.clone()
            state.history = History(**copy.deepcopy(path_history.as_dict()))
            states.append(state)
        self.history = path_history
        return states

    def _refit_copy(
        self,
        times: ArrayLike | Sequence[ArrayLike],
        values: ArrayLike | Sequence[ArrayLike],
        *,
        x0: ArrayLike | None = None,
        v0: ArrayLike | None = None,
        refit_iter: int,
        **fit_kwargs: Any,
    ) -> SparseODE:
        """Run the parallel half of :meth:`fit_path`: refit a copy of this penalised state, its zeros frozen.

        Depends on nothing but this state and the arguments (its own generator state is cloned), so
        the refits of a path give the same result in any order or process. The copy's history is
        this model's followed by the refit's.
        """
        refitted = self.clone()
        continued = {**fit_kwargs, "horizon_warmup": 0}
        refitted.fit(times, values, x0=x0, v0=v0, n_iter=0, refit_iter=refit_iter, **continued)
        refitted.history = _concat(self.history, refitted.history)
        return refitted

    # --------------------------------------------------------------- prediction
    def _intervention(
        self, hold: Mapping[int | str, float] | None, replace: Mapping[int | str, Callable] | None
    ) -> Intervention | None:
        if not hold and not replace:
            return None
        return Intervention(
            {self._index(k): float(v) for k, v in (hold or {}).items()},
            {self._index(k): fn for k, fn in (replace or {}).items()},
        )

    def _index(self, key: int | str) -> int:
        if isinstance(key, str):
            names = self.config.var_names or []
            if key not in names:
                raise KeyError(f"Unknown variable {key!r}; the model's variables are {names}.")
            return names.index(key)
        return int(key)

    @torch.no_grad()
    def predict(
        self,
        times: ArrayLike | Sequence[ArrayLike],
        x0: ArrayLike,
        *,
        v0: ArrayLike | None = None,
        hold: Mapping[int | str, float] | None = None,
        replace: Mapping[int | str, Callable] | None = None,
        start: float | None = None,
        return_velocity: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """Integrate from ``x0`` and return the trajectory at ``times`` (also beyond the training range).

        Parameters
        ----------
        times
            ``(T,)`` times for one initial state, or a list of arrays for a batch ``x0`` of shape
            ``(B, n_vars)``; each trajectory starts at its first time.
        x0
            Initial positions, ``(n_vars,)`` or ``(B, n_vars)``.
        v0
            Initial velocities (second order); default: predicted from ``x0``.
        hold
            Interventions ``{variable: value}``: the variable is set to the value and held there
            (velocity zero).
        replace
            Interventions ``{variable: fn}`` replacing a variable's mechanism; ``fn(x, v)`` receives
            torch tensors ``(..., n_vars)`` and returns the new rate (first order) or acceleration.
        start
            Time from which ``hold``/``replace`` act (the system runs unchanged before it); default:
            from each trajectory's first time.
        return_velocity
            Second order: return ``[x, v]`` instead of ``x``.

        Returns
        -------
        ``(T, n_vars)`` array (``(T, 2 n_vars)`` with velocities), or a list of them for a batch.
        """
        single = np.ndim(x0) == 1
        x0_a = np.atleast_2d(np.asarray(x0, float))
        times_l = [times] if single else list(times)
        if len(times_l) != len(x0_a):
            raise ValueError(f"Got {len(times_l)} time grids for {len(x0_a)} initial states.")
        data = Trajectories.from_arrays(
            times_l, [np.zeros((len(np.ravel(t)), x0_a.shape[1])) for t in times_l], x0=x0_a, v0=v0
        ).to(self.device)
        intervention = self._intervention(hold, replace)
        self.system.prepare(sample=False)
        if start is None or intervention is None:
            with self.system.intervene(intervention):
                y0 = self.system.initial_state(data.x0, data.v0)
                out = self._solve(data.times, y0, return_velocity)
            arrays = [out[b, : len(t)].cpu().numpy() for b, t in enumerate(data.times)]
        else:
            y0 = self.system.initial_state(data.x0, data.v0)
            arrays = [
                self._switch(t, y0[b : b + 1], float(start), intervention, return_velocity)
                for b, t in enumerate(data.times)
            ]
        return arrays[0] if single else arrays

    def _solve(self, times: Sequence[torch.Tensor], y0: torch.Tensor, return_velocity: bool) -> torch.Tensor:
        """Solve from full states ``y0`` over each trajectory's times; states or observed values."""
        states = solve_batched(self.system, y0, TimeGrid.from_times(times), self.config.solver_options)
        return states if return_velocity else self.system.readout(states)

    def _switch(
        self, t: torch.Tensor, y0: torch.Tensor, start: float, intervention: Intervention, return_velocity: bool
    ) -> np.ndarray:
        """One trajectory that runs unchanged up to ``start`` and under ``intervention`` from then on."""
        before = t[t < start]
        if len(before) == 0:
            with self.system.intervene(intervention):
                y0 = self.system.initial_state(*self._split(y0))
                return self._solve([t], y0, return_velocity)[0].cpu().numpy()
        grid = torch.cat([before, t.new_tensor([start])])
        states = self._solve([grid], y0, True)[0]
        rest = t[t >= start]
        on_grid = bool(rest.numel()) and float(rest[0]) == start
        after = rest if on_grid else torch.cat([t.new_tensor([start]), rest])
        with self.system.intervene(intervention):
            y_on = self.system.initial_state(*self._split(states[-1:]))
            out_after = self._solve([after], y_on, return_velocity)[0]
        out_before = states[:-1] if return_velocity else self.system.readout(states[:-1])
        return torch.cat([out_before, out_after if on_grid else out_after[1:]]).cpu().numpy()

    def _split(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        d = self.config.n_vars
        return (state[..., :d], state[..., d:]) if self.config.order == 2 else (state, None)

    # ----------------------------------------------------------------- structure
    @torch.no_grad()
    def rates(self, x: ArrayLike, v: ArrayLike | None = None) -> np.ndarray:
        """Evaluate the learned field at given states: ``dx/dt`` (first order) or ``d2x/dt2`` (second order).

        Deterministic gates, no intervention; e.g. to see how the field behaves beyond the states it
        was fitted on.

        Parameters
        ----------
        x
            Positions, shape ``(..., n_vars)``.
        v
            Velocities of the same shape (second order only).

        Returns
        -------
        The rates (first order) or accelerations (second order), shape ``(..., n_vars)``.
        """
        d = self.config.n_vars
        x = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        if x.shape[-1] != d:
            raise ValueError(f"x has {x.shape[-1]} variables in its last axis, the model {d}.")
        if self.config.order == 2:
            if v is None:
                raise ValueError("A second-order field needs the velocities v as well as the positions x.")
            v = torch.as_tensor(np.asarray(v, dtype=np.float32), device=self.device)
            if v.shape != x.shape:
                raise ValueError(f"v has shape {tuple(v.shape)}, x {tuple(x.shape)}; they must match.")
            state = torch.cat([x, v], -1)
        elif v is not None:
            raise ValueError("v is only for second-order models.")
        else:
            state = x
        self.system.prepare(sample=False)
        out = self.system(torch.zeros((), device=self.device), state)
        return out[..., d:].cpu().numpy() if self.config.order == 2 else out.cpu().numpy()

    def adjacency(self) -> np.ndarray:
        """Dependency scores of each output on each input, ``(n_vars, order * n_vars)``.

        Rows are outputs (the rates or accelerations), columns inputs (positions, then velocities).
        Exact zeros mean the output does not depend on the input.
        """
        return _adjacency(self.system).cpu().numpy()

    @property
    def feature_sparsity(self) -> float:
        """Share of zero entries of :meth:`adjacency`."""
        return feature_sparsity(_adjacency(self.system))

    @property
    def weight_sparsity(self) -> float:
        """Share of zero effective weights of the field."""
        return weight_sparsity(self.system)

    # --------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write ``config.json``, ``model.pt``, ``history.json`` (and ``preprocessing.json``) into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(asdict(self.config), indent=2))
        torch.save(self.system.state_dict(), path / "model.pt")
        (path / "history.json").write_text(json.dumps(self.history.as_dict()))
        if self.preprocessing is not None:
            (path / "preprocessing.json").write_text(json.dumps(self.preprocessing, indent=2))

    @classmethod
    def load(
        cls, path: str | Path, *, var_names: Sequence[str] | None = None, device: str | torch.device = "auto"
    ) -> SparseODE:
        """Read a model written by :meth:`save`.

        Parameters
        ----------
        path
            Directory written by :meth:`save`.
        var_names
            If given, must equal the saved variable names (same genes, same order).
        device
            Where to put the model.
        """
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path} holds no saved SparseODE (config.json is missing).")
        cfg = json.loads((path / "config.json").read_text())
        if var_names is not None and list(map(str, var_names)) != cfg["var_names"]:
            raise ValueError(f"Variable names differ from the saved model's ({cfg['var_names']}).")
        model = cls(cfg["n_vars"], device=device, **_constructor_kwargs(ModelConfig(**cfg)))
        model.system.load_state_dict(torch.load(path / "model.pt", map_location=model.device))
        model.system.eval()
        hist = path / "history.json"
        if hist.exists():
            model.history = History(**json.loads(hist.read_text()))
        prep = path / "preprocessing.json"
        if prep.exists():
            model.preprocessing = json.loads(prep.read_text())
        return model
