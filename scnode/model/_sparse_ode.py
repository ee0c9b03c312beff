"""SparseODE: the user-facing model object (configuration, torch system, history).

Fitting, prediction and persistence live beside it (``_training``, ``_prediction``, ``_io``); its
methods are the documented entry points to them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import History, ODESystem, feature_sparsity, get_method, weight_sparsity
from ..core import adjacency as _adjacency
from ..core.data import ArrayLike
from ..core.jacobian import mean_abs_jacobian, mean_jacobian
from . import _io, _prediction, _training
from ._config import ModelConfig, resolve_device


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
        ``"pairs"`` (``per_output=True`` with a hidden layer): the first layer only, one gate per
        (output, input) pair shared by the output's hidden units, so that a gate is an edge; the
        gates cost ``1 / hidden`` of per-weight gates in sampling, gradients and optimiser state.
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
    inputs
        Indices (or, with ``var_names``, names) of the variables that may drive the others' rates
        (regulators); the rest are outputs only and the field builds no input weights for them.
        ``None``: every variable.
    self_inputs
        With ``inputs``: each output's own level is one more input of its own sub-network (its
        autoregulation; a self-loop in the graph), also for outputs that regulate no other variable.
        ``None``: on for first-order per-output fields, off otherwise.
    penalty_weights
        Per-(output, variable) factors of the penalty, ``(n_vars, n_vars)`` (rows outputs, columns
        the variables as inputs; a prior network's edges get factors below one, so the fit keeps them
        more readily). Second order: also ``(n_vars, 2 n_vars)``, positions then velocities (the
        square form gives a variable's position and velocity the same factor). Per-output fields only
        (``per_output=True`` or GroupLasso); ``True`` keeps a buffer of ones (as a loaded model has
        before its weights arrive).
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
        inputs: Sequence[int | str] | None = None,
        self_inputs: bool | None = None,
        penalty_weights: ArrayLike | bool | None = None,
    ) -> None:
        names = None if var_names is None else [str(v) for v in var_names]
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
            var_names=names,
            inputs=None if inputs is None else [_input_index(i, names) for i in inputs],
            self_inputs=self_inputs,
            penalty_weights=penalty_weights is not None and penalty_weights is not False,
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
                inputs=self.config.inputs,
                self_inputs=self.config.self_inputs,
                pair_weights=self.config.penalty_weights,
            ).to(self.device)
        if self.config.penalty_weights and penalty_weights is not True:
            self.set_penalty_weights(penalty_weights)
        self.generator = torch.Generator(device=self.device).manual_seed(random_state)
        self.history: History = History()
        self.preprocessing: dict[str, Any] | None = None
        """How AnnData was turned into trajectories for the fit (set by :func:`scnode.tl.fit_sparse_ode`;
        the companion tools prepare other AnnData the same way)."""

    def set_penalty_weights(self, weights: ArrayLike) -> None:
        """Set the per-(output, variable) penalty factors, ``(n_vars, n_vars)`` (see ``penalty_weights``).

        Second order: ``(n_vars, 2 n_vars)`` sets positions' and velocities' factors apart.
        """
        system = self.system
        if system.pair_weight is None:
            raise ValueError("This model was built without penalty_weights; pass penalty_weights= when building it.")
        w = torch.as_tensor(np.asarray(weights, dtype=np.float32))
        d, order = self.config.n_vars, self.config.order
        shapes = [(d, d)] + ([(d, 2 * d)] if order == 2 else [])
        if tuple(w.shape) not in shapes:
            raise ValueError(
                f"penalty_weights must have shape {' or '.join(map(str, shapes))} (outputs x variables), "
                f"got {tuple(w.shape)}."
            )
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError("penalty_weights must be finite and non-negative.")
        if order == 2 and w.shape[1] == d:
            w = torch.cat([w, w], 1)  # positions and velocities of a variable share its factor
        index = system.input_index
        system.pair_weight.copy_((w if index is None else w[:, index.cpu()]).to(system.pair_weight))

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
        refit_iter: int | None = None,
        horizon_warmup: int | None = None,
        held: np.ndarray | Sequence[Sequence[int | str]] | None = None,
        **train_kwargs: Any,
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
        n_iter
            Iterations of the penalised phase.
        refit_iter
            Iterations of the unpenalised refit with the learned zero pattern frozen; default
            ``n_iter // 2``.
        horizon_warmup
            Iterations over which the fitted time span grows to the whole trajectories; default
            ``n_iter // 4`` for full-batch training.
        held
            Perturbed trajectories: ``(B, n_vars)`` booleans, or one list of variables (names or
            indices) per trajectory, held at their initial value while that trajectory is integrated
            (a knockout, an over-expression). All trajectories share one field, so the unperturbed
            ones and each perturbation inform it together.
        **train_kwargs
            Further settings of :class:`scnode.core.TrainConfig`: ``lr``, ``lr_factor``,
            ``lr_patience``, ``min_lr``, ``gate_lr_factor``, ``gate_eps``, ``refit_lr_factor``
            (optimiser), ``penalty_delay`` (iterations fitted before the penalty starts),
            ``batch_time``, ``batch_size``, ``x0_noise`` (batching and noise), ``checkpoint``,
            ``checkpoint_every``, ``resume``, ``progress_bar``, ``gradient_precision`` (``"float32"``,
            the default; ``"bfloat16"`` or ``"auto"`` for the backward products of large per-gene
            first layers on the CPU, :func:`scnode.core.layers.gradient_precision`).

        Returns
        -------
        ``self``, with :attr:`history` filled.

        Raises
        ------
        scnode.core.FitInterrupted
            On Ctrl-C: the model is set back to its best state so far (``history.interrupted`` is
            true), then the interrupt goes on to the caller, with what was kept and how to resume
            in its message.
        scnode.core.NonFiniteLossError
            When the loss or the solver breaks down (the best state so far is restored first).
        ValueError
            For ``n_iter`` and ``refit_iter`` both 0 (nothing to fit), or a ``resume`` file that is
            no checkpoint of this model (nothing is changed).
        """
        return _training.fit(
            self,
            times,
            values,
            x0=x0,
            v0=v0,
            n_iter=n_iter,
            refit_iter=refit_iter,
            horizon_warmup=horizon_warmup,
            held=held,
            **train_kwargs,
        )

    def clone(self, state: dict[str, torch.Tensor] | None = None) -> SparseODE:
        """Return an independent copy: same configuration, weights, history and generator state.

        ``state``: the weights to give the copy (a ``system.state_dict()``) instead of this model's.
        """
        other = SparseODE(self.config.n_vars, device=self.device, **self.config.constructor_kwargs())
        other.system.load_state_dict(self.system.state_dict() if state is None else state)
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
        refit_iter = _training.refit_iterations(n_iter, refit_iter)
        states = _training.penalised_path(
            self, times, values, lams, x0=x0, v0=v0, n_iter=n_iter, path_iter=path_iter, **fit_kwargs
        )
        return [
            _training.refit_copy(state, times, values, x0=x0, v0=v0, refit_iter=refit_iter, **fit_kwargs)
            for state in states
        ]

    # --------------------------------------------------------------- prediction
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
        held: np.ndarray | Sequence[Sequence[int | str]] | None = None,
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
        held
            Per trajectory, the variables held at their value in ``x0`` (as in :meth:`fit`):
            ``(B, n_vars)`` booleans or one list of variables per trajectory. Not with ``start``.

        Returns
        -------
        ``(T, n_vars)`` array (``(T, 2 n_vars)`` with velocities), or a list of them for a batch.
        """
        return _prediction.predict(
            self,
            times,
            x0,
            v0=v0,
            hold=hold,
            replace=replace,
            start=start,
            return_velocity=return_velocity,
            held=held,
        )

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

    def jacobian(self, x: ArrayLike, v: ArrayLike | None = None, *, absolute: bool = False) -> np.ndarray:
        """Return the field's Jacobian averaged over states: the signed dependence of each output on each input.

        Deterministic gates; the decay term (no regulation) is left out. Positive entries: the
        input raises the output's rate where the states lie (activation); negative: it lowers it
        (repression). ``absolute=True``: the mean of the entries' absolute values, the size of each
        dependence even where its sign changes between states.

        Parameters
        ----------
        x
            Positions ``(S, n_vars)`` at which to evaluate (e.g. the observed states).
        v
            Velocities of the same shape (second order only).

        Returns
        -------
        ``(n_vars, order * n_vars)``, rows outputs, columns inputs (positions, then velocities).
        """
        d = self.config.n_vars
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        if self.config.order == 2:
            if v is None:
                raise ValueError("A second-order field needs the velocities v as well as the positions x.")
            x = np.concatenate([x, np.atleast_2d(np.asarray(v, dtype=np.float32))], -1)
        elif v is not None:
            raise ValueError("v is only for second-order models.")
        if x.shape[-1] != d * self.config.order:
            raise ValueError(f"The states have {x.shape[-1]} columns; the model needs {d * self.config.order}.")
        states = torch.as_tensor(x, device=self.device)
        return (mean_abs_jacobian if absolute else mean_jacobian)(self.system, states).cpu().numpy()

    # --------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write ``config.json``, ``model.pt``, ``history.json`` (and ``preprocessing.json``) into ``path``."""
        _io.save(self, path)

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

        Returns
        -------
        The model, its history and preprocessing record included.

        Raises
        ------
        FileNotFoundError
            When ``path`` holds no ``config.json`` or no ``model.pt``.
        ValueError
            Naming the file, for a damaged or foreign one (garbled or truncated weights, invalid JSON,
            weights of another architecture than the configuration's), and for other ``var_names``.
            The weights are read with ``torch.load(weights_only=True)``: tensors only, never pickled code.
        """
        return _io.load(cls, path, var_names=var_names, device=device)


def _input_index(key: int | str, names: list[str] | None) -> int:
    """Index of an input given by position or (with ``var_names``) by name."""
    if isinstance(key, str):
        if names is None or key not in names:
            raise KeyError(f"Unknown input {key!r}: not among the model's var_names.")
        return names.index(key)
    return int(key)
