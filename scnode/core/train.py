"""The fit loop: Adam + ReduceLROnPlateau, full batch or time windows, history, guards, checkpoints.

Gates are sampled once per iteration and held fixed through that iteration's solve (a field
whose weights change between solver stages makes adaptive solvers take many more steps).
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TextIO

import torch
from tqdm import TqdmWarning

with warnings.catch_warnings():  # in Jupyter without ipywidgets tqdm.auto warns, then falls back to a text bar
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

from . import serialization
from .data import Trajectories
from .dopri5 import SolverError
from .fields import Intervention, ODESystem
from .layers import check_gradient_precision, gradient_precision
from .penalties import Method
from .solve import SolverOptions, TimeGrid, solve_batched


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss (the best model so far has been restored).

    The attribute ``history`` holds the record up to the failure.
    """

    def __init__(self, message: str, history: History | None = None) -> None:
        super().__init__(message)
        self.history = history


class FitInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a fit: the model was set back to its best state so far, and whatever called the fit stops too.

    A :class:`KeyboardInterrupt`, so a loop over fits (a penalty path, a sweep) ends at once; scnode's
    tools write nothing into the AnnData when one passes through them. Each level it passes through
    may add what it was doing (:meth:`add_context`); ``str(err)`` is the whole account.

    Attributes
    ----------
    iteration
        Iterations completed before the interrupt.
    total
        Iterations the fit was to run (penalised phase and refit).
    best_iteration
        Iteration of the best state, which the model holds now.
    refitted
        Whether that state comes from the refit, i.e. its sparsity pattern was frozen and refitted;
        ``False``: it is a state of the penalised phase (or the fit has no refit).
    checkpoint
        ``(file, iteration)`` of the last checkpoint this fit wrote, or ``None``.
    history
        The record up to the interrupt.
    model
        The :class:`~scnode.SparseODE` holding the best state, when the fit was one of a SparseODE.
    """

    def __init__(
        self,
        *,
        iteration: int,
        total: int,
        best_iteration: int,
        refitted: bool,
        refit_pending: bool,
        checkpoint: tuple[str, int] | None,
        checkpoint_file: str | None,
        history: History,
    ) -> None:
        self.iteration, self.total, self.best_iteration = iteration, total, best_iteration
        self.refitted, self.checkpoint, self.history = refitted, checkpoint, history
        self.model = None
        kept = f"the model was set back to its best state so far (iteration {best_iteration})"
        if refit_pending and not refitted:
            kept += ", a state of the penalised phase: its sparsity pattern was not frozen and refitted"
        if checkpoint is not None:
            resume = f"The last checkpoint, {checkpoint[0]}, holds iteration {checkpoint[1]}: resume={checkpoint[0]!r}"
            resume += " with the same settings continues from it."
        elif checkpoint_file is not None:
            resume = f"No checkpoint was written yet ({checkpoint_file}); a rerun starts afresh."
        else:
            resume = (
                "To be able to continue an interrupted fit, pass checkpoint='<file>' (for the scn.tl tools in "
                "fit_kwargs), then resume='<file>'."
            )
        self._summary = f"Fit interrupted after {iteration} of {total} iterations; {kept}."
        self._resume: str | None = resume
        self._context: list[str] = []
        super().__init__(self._message())

    def _message(self) -> str:
        return " ".join([self._summary, *([self._resume] if self._resume else []), *self._context])

    def add_context(self, text: str, *, resumable: bool = True) -> None:
        """Add what the interrupted caller was doing, or what it kept, to the message.

        ``resumable=False`` drops the advice on resuming from a checkpoint (e.g. for a fit inside a
        penalty path, which is not resumed fit by fit).
        """
        self._context.append(text)
        if not resumable:
            self._resume = None
        self.args = (self._message(),)


ADAM_EPS = 1e-8
"""Adam's ``eps`` (torch's default): the weights' always, the gates' unless ``gate_eps`` says otherwise."""


@dataclass
class TrainConfig:
    """Settings of one fit.

    Parameters
    ----------
    n_iter
        Iterations of the penalised phase.
    lr
        Initial Adam learning rate.
    lr_factor, lr_patience, min_lr
        ReduceLROnPlateau on the training objective.
    gate_eps
        Adam's ``eps`` for the gate parameters (the other parameters keep ``ADAM_EPS``, torch's 1e-8).
    gate_lr_factor
        Learning rate of the gate parameters ``log_alpha`` relative to ``lr``. Gates start open
        (``log_alpha`` well above the closing point) and must travel several units to close;
        a faster rate lets them do so within a fit.
    batch_time
        ``None`` for full-batch training; else the number of consecutive observations in each
        time window (windows start from the observation at their first time).
    batch_size
        Windows per iteration (time-window mini-batches only).
    horizon_warmup
        Iterations over which the fitted time span grows linearly from 10 % of each trajectory
        to all of it (full-batch training). Long horizons from a random field blow up; a short
        one first avoids it.
    penalty_delay
        Iterations at the start of the penalised phase that fit the data without the penalty (the
        best state is still judged by the objective with it).
    x0_noise
        Standard deviation of Gaussian noise added to the initial positions at every iteration
        (full-batch training). The field then learns to bring nearby starts back onto the observed
        trajectories, so that predictions from a new, noisy initial state (e.g. another donor's
        first cells) stay close to them. 0 for none.
    refit_iter
        Iterations of a second phase that freezes the learned sparsity pattern (zero effective
        weights stay zero, gates fixed at their deterministic values) and fits without penalty
        with a fresh optimiser; the fit ends with the refit's best state.
    refit_lr_factor
        Learning rate of the refit relative to ``lr``; it ramps up linearly over the first
        50 refit iterations so the fresh optimiser's first steps do not throw the model off.
    checkpoint
        File to write checkpoints to; ``None`` for none. A checkpoint holds tensors and plain data
        only (read back with ``torch.load(weights_only=True)``, no pickled objects), and is written
        through a temporary file, so an interrupt never leaves it half-written.
    checkpoint_every
        Iterations between checkpoints (and one at the end).
    resume
        Checkpoint file to continue from (written by a fit of the same model with ``checkpoint``).
    progress_bar
        Show a tqdm progress bar with loss and penalty (see :func:`progress`).
    monitor
        Called as ``monitor(iteration, system)`` every ``monitor_every`` iterations of the penalised
        phase (after the optimiser step), e.g. to warn early that the graph became empty.
    monitor_every
        Iterations between calls of ``monitor``.
    gradient_precision
        ``"float32"``, ``"bfloat16"`` or ``"auto"``: the precision of the backward products of large
        grouped first layers on the CPU (:func:`scnode.core.layers.gradient_precision`); the forward
        pass stays float32.
    """

    n_iter: int = 1000
    lr: float = 1e-2
    lr_factor: float = 0.5
    lr_patience: int = 100
    min_lr: float = 1e-4
    gate_lr_factor: float = 10.0
    gate_eps: float = ADAM_EPS
    batch_time: int | None = None
    batch_size: int = 16
    x0_noise: float = 0.0
    refit_iter: int = 0
    refit_lr_factor: float = 1.0
    horizon_warmup: int = 0
    penalty_delay: int = 0
    checkpoint: str | None = None
    checkpoint_every: int = 100
    resume: str | None = None
    progress_bar: bool = True
    monitor: Callable[[int, ODESystem], None] | None = None
    monitor_every: int = 50
    gradient_precision: str = "float32"

    def __post_init__(self) -> None:
        check_gradient_precision(self.gradient_precision)
        if self.penalty_delay < 0:
            raise ValueError(f"penalty_delay must be >= 0, got {self.penalty_delay}.")
        if not self.gate_eps > 0:
            raise ValueError(f"gate_eps must be positive, got {self.gate_eps}.")
        if self.n_iter < 0 or self.refit_iter < 0:
            raise ValueError(f"n_iter and refit_iter must be >= 0, got {self.n_iter}, {self.refit_iter}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}.")
        if not self.x0_noise >= 0:
            raise ValueError(f"x0_noise must be >= 0, got {self.x0_noise}.")
        if self.batch_time is not None and self.batch_time < 2:
            raise ValueError(f"batch_time must be at least 2 observations, got {self.batch_time}.")


@dataclass
class History:
    """Per-iteration record of a fit."""

    loss: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    penalty: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    nfe: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    interrupted: bool = False

    def as_dict(self) -> dict:
        """Plain dict of lists (serialisable)."""
        return asdict(self)


def _objective_terms(
    system: ODESystem,
    method: Method,
    data: Trajectories,
    grid: TimeGrid,
    target: torch.Tensor,
    solver: SolverOptions,
    penalty_kwargs: dict,
    *,
    sample: bool,
    penalised: bool,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    system.prepare(sample=sample, generator=generator)
    with system.intervene(None if data.held is None else Intervention(mask=data.held)):
        y0 = system.initial_state(data.x0, data.v0)
        pred = system.readout(solve_batched(system, y0, grid, solver))
    err = (pred - target) ** 2
    mse = err[grid.mask].mean()
    if penalised and method.penalty is not None:
        with torch.set_grad_enabled(torch.is_grad_enabled() and method.uses_gradient_penalty):
            pen = method.penalty(system, **penalty_kwargs)  # a proximal method's is only recorded
    else:
        pen = mse.new_zeros(())
    return mse, pen


def _windows(data: Trajectories, cfg: TrainConfig, generator: torch.Generator) -> Trajectories:
    """Random windows of ``batch_time`` consecutive observations, started at their first value."""
    lengths = torch.tensor([len(t) for t in data.times])
    eligible = torch.nonzero(lengths >= cfg.batch_time).flatten()
    if len(eligible) == 0:
        raise ValueError(
            f"batch_time={cfg.batch_time} is longer than every trajectory (longest has {int(lengths.max())})."
        )
    draw = {"generator": generator, "device": generator.device}  # the model's generator lives on its device
    pick = eligible[torch.randint(len(eligible), (cfg.batch_size,), **draw).cpu()]
    times, values = [], []
    for b in pick.tolist():
        s = int(torch.randint(int(lengths[b]) - cfg.batch_time + 1, (1,), **draw))
        times.append(data.times[b][s : s + cfg.batch_time])
        values.append(data.values[b][s : s + cfg.batch_time])
    held = None if data.held is None else data.held[pick.to(data.held.device)]
    return Trajectories(times, values, torch.stack([y[0] for y in values]), None, held)


def _truncate(data: Trajectories, fraction: float) -> Trajectories:
    """Each trajectory up to ``fraction`` of its time span (at least two observations)."""
    times, values = [], []
    for t, y in zip(data.times, data.values, strict=True):
        n = max(2, int(torch.searchsorted(t, t[0] + fraction * (t[-1] - t[0]), right=True)))
        times.append(t[:n])
        values.append(y[:n])
    return Trajectories(times, values, data.x0, data.v0, data.held)


REFIT_WARMUP = 50
"""Iterations over which the refit's learning rate ramps up from zero."""


def _base_lrs(cfg: TrainConfig, *, refit_lr: bool) -> list[float]:
    lr = cfg.lr * (cfg.refit_lr_factor if refit_lr else 1.0)
    return [lr, lr * cfg.gate_lr_factor]


FUSED_ADAM = True
"""Use Adam's fused implementation (one pass over each parameter per step) where torch has it for
the parameters' device. The same update; on the CPU a per-gene field's 4.4 M weights and gates
take 2.6 ms per step instead of 18.5 ms (ad-hoc micro-benchmark, the benchmark machine)."""


def _adam(groups: list[dict]) -> torch.optim.Adam:
    if FUSED_ADAM:
        try:
            return torch.optim.Adam(groups, fused=True)
        except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or torch version
            pass
    return torch.optim.Adam(groups)


def _make_optimizer(system: ODESystem, cfg: TrainConfig, *, refit: bool):
    gate_params = [p for n, p in system.named_parameters() if n.endswith("log_alpha") and p.requires_grad]
    others = [p for n, p in system.named_parameters() if not n.endswith("log_alpha") and p.requires_grad]
    lrs = _base_lrs(cfg, refit_lr=refit)
    eps = [ADAM_EPS, cfg.gate_eps]
    groups = [
        {"params": ps, "lr": lr, "eps": e} for ps, lr, e in zip([others, gate_params], lrs, eps, strict=True) if ps
    ]
    opt = _adam(groups)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=cfg.lr_factor, patience=cfg.lr_patience, min_lr=cfg.min_lr
    )
    return opt, sched


def freeze_pattern(system: ODESystem, tol: float = 1e-5) -> None:
    """Fold deterministic gates into the weights and freeze the zero pattern as masks."""
    with torch.no_grad():
        system.prepare(sample=False)
        for layer, z in zip(system.sparse_layers(), system.gate_samples(), strict=True):
            layer.freeze(z, tol)
        if system.skip is not None:  # ungated, its mask still all ones: the weight is kept, its zeros fixed
            system.skip.freeze(None, tol)
    _set_refit_grads(system)


def _set_refit_grads(system: ODESystem) -> None:
    for layer in system.sparse_layers():
        if layer.log_alpha is not None:
            layer.log_alpha.requires_grad_(False)


@torch.no_grad()
def _copy_state(into: dict[str, torch.Tensor], system: ODESystem) -> None:
    """Copy ``system``'s state into the tensors of ``into`` (a state dict of the same model), in place.

    In place rather than a fresh clone: at 2000 genes with every gene an input the first layer alone
    is 128 MB, and a clone per improvement holds the old and the new best state at once.
    """
    for k, v in system.state_dict().items():
        into[k].copy_(v)


def _nonfinite_message(what: str, it: int, lr: float, best_it: int) -> str:
    return (
        f"{what} at iteration {it} (learning rate {lr:.3g}); training stopped and the best model so far "
        f"(iteration {best_it}) was restored. Try a lower learning rate (lr), tighter solver tolerances "
        "(rtol/atol) or a fixed-step solver, a smaller penalty, or scaling the data to unit range."
    )


CHECKPOINT_KEYS = (
    "system",
    "optimizer",
    "scheduler",
    "generator",
    "history",
    "best_state",
    "best_value",
    "best_iteration",
    "iteration",
)
"""Entries of a checkpoint (tensors and plain data: the optimiser's, scheduler's and generator's states)."""


def read_checkpoint(path: str | os.PathLike, system: ODESystem) -> dict:
    """Read a checkpoint for ``system``, checked: a ValueError naming the file for a foreign or damaged one."""
    what = "an scnode checkpoint (written by a fit with checkpoint=)"
    ckpt = serialization.load(path, what=what, map_location="cpu")  # the generator state must stay on the CPU
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(CHECKPOINT_KEYS)
    if missing:
        raise ValueError(f"{path} is not {what}: it lacks {', '.join(missing)}.")
    for key in ("system", "best_state"):
        serialization.check_state_dict(ckpt[key], system.state_dict(), source=f"The checkpoint {path}")
    return ckpt


PROGRESS_INTERVAL = 30.0
"""Seconds between progress-bar updates when stderr is no terminal (a log file, a CI job)."""


def _scanpy_quiet() -> bool:
    """Whether scanpy, if in use, is set to report errors only (``sc.settings.verbosity = 0``)."""
    scanpy = sys.modules.get("scanpy")  # no import: core needs torch only
    settings = getattr(scanpy, "settings", None)
    return settings is not None and int(settings.verbosity) < 1


class _Lines:
    """A stream for tqdm in a log file: each update on a line of its own (tqdm rewrites one line in place)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: range, *, enabled: bool, desc: str) -> tqdm:
    """Return the fit's progress bar (tqdm) over ``iterable``.

    Off when ``enabled`` is false or scanpy's verbosity is ``0`` (errors only). On a terminal or in
    Jupyter, tqdm's usual bar; elsewhere (output redirected to a file, a CI job), one plain line per
    update, at most every :data:`PROGRESS_INTERVAL` seconds, the last one kept: a log gets a few
    lines per fit instead of thousands. tqdm's environment variables (``TQDM_MININTERVAL``,
    ``TQDM_DISABLE``, ...) take precedence.
    """
    stream = sys.stderr
    interactive = getattr(stream, "isatty", bool)() or type(stream).__module__.startswith("ipykernel")
    options: dict = {"leave": False}
    if not interactive:
        options.update(file=_Lines(stream), mininterval=PROGRESS_INTERVAL, ascii=True, leave=True)
    if not enabled or _scanpy_quiet():
        options["disable"] = True
    options = {k: v for k, v in options.items() if f"TQDM_{k.upper()}" not in os.environ}
    return tqdm(iterable, desc=desc, **options)


def train(
    system: ODESystem,
    method: Method,
    data: Trajectories,
    *,
    penalty_kwargs: dict,
    solver: SolverOptions,
    config: TrainConfig,
    generator: torch.Generator,
) -> History:
    """Fit ``system`` to ``data`` with ``method``'s penalty; returns the :class:`History`.

    Raises
    ------
    NonFiniteLossError
        When the loss or the solver breaks down (the best model so far is restored first).
    FitInterrupted
        On Ctrl-C (the best model so far is restored first).
    ValueError
        When ``config.resume`` is no checkpoint of this model (before anything is changed).
    """
    cfg = config
    history = History()
    total = cfg.n_iter + cfg.refit_iter
    opt, sched = _make_optimizer(system, cfg, refit=False)
    start = 0
    best_state, best_value, best_it = copy.deepcopy(system.state_dict()), math.inf, 0
    if cfg.resume is not None:
        ckpt = read_checkpoint(cfg.resume, system)
        try:
            history = History(**ckpt["history"])
            if ckpt["iteration"] > cfg.n_iter:  # the pattern was frozen already
                _set_refit_grads(system)
                opt, sched = _make_optimizer(system, cfg, refit=True)
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            generator.set_state(ckpt["generator"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"The checkpoint {cfg.resume} does not fit this model or its settings ({err}).") from None
        system.load_state_dict(ckpt["system"])
        best_state, best_value, best_it = ckpt["best_state"], ckpt["best_value"], ckpt["best_iteration"]
        start = ckpt["iteration"]
    best_refitted = cfg.refit_iter > 0 and best_it >= cfg.n_iter and start > cfg.n_iter
    last_checkpoint = None

    full_grid = TimeGrid.from_times(data.times)
    full_target = data.padded_values(full_grid.index.shape[1])

    def save(it: int) -> None:
        nonlocal last_checkpoint
        serialization.save(
            {
                "system": system.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "generator": generator.get_state(),
                "history": history.as_dict(),
                "best_state": best_state,
                "best_value": best_value,
                "best_iteration": best_it,
                "iteration": it,
            },
            cfg.checkpoint,
        )
        last_checkpoint = (cfg.checkpoint, it)

    bar = progress(range(start, total), enabled=cfg.progress_bar, desc=f"scnode {method.name}")
    it = start
    try:
        for it in bar:
            tick = time.perf_counter()
            if it == cfg.n_iter and cfg.refit_iter:
                freeze_pattern(system)
                opt, sched = _make_optimizer(system, cfg, refit=True)
                best_value = math.inf
            refit = it >= cfg.n_iter
            if cfg.batch_time is None and it < cfg.horizon_warmup:
                batch = _truncate(data, 0.1 + 0.9 * it / cfg.horizon_warmup)
                grid = TimeGrid.from_times(batch.times)
                target = batch.padded_values(grid.index.shape[1])
            elif cfg.batch_time is None:
                batch, grid, target = data, full_grid, full_target
            else:
                batch = _windows(data, cfg, generator)
                grid = TimeGrid.from_times(batch.times)
                target = batch.padded_values(grid.index.shape[1])
            if cfg.x0_noise > 0 and cfg.batch_time is None:
                noise = torch.randn(batch.x0.shape, generator=generator, device=generator.device)
                if batch.held is not None:  # a held variable stays at its observed level
                    noise = noise.masked_fill(batch.held.to(noise.device), 0.0)
                x0 = batch.x0 + cfg.x0_noise * noise.to(batch.x0)
                batch = Trajectories(batch.times, batch.values, x0, batch.v0, batch.held)
            system.nfe = 0
            if refit and it - cfg.n_iter < REFIT_WARMUP:  # ramp the fresh optimiser's rate up
                for group, base in zip(opt.param_groups, _base_lrs(cfg, refit_lr=True), strict=False):
                    group["lr"] = base * (it - cfg.n_iter + 1) / REFIT_WARMUP
            opt.zero_grad(set_to_none=True)
            try:
                with gradient_precision(cfg.gradient_precision):  # read as the field prepares its layers
                    mse, pen = _objective_terms(
                        system,
                        method,
                        batch,
                        grid,
                        target,
                        solver,
                        penalty_kwargs,
                        sample=method.gated and not refit,
                        penalised=not refit,
                        generator=generator,
                    )
            except (AssertionError, SolverError) as err:  # "underflow in dt" (torchdiffeq asserts it)
                system.load_state_dict(best_state)
                raise NonFiniteLossError(
                    _nonfinite_message(f"The solver failed ({err})", it, opt.param_groups[0]["lr"], best_it), history
                ) from err
            on = refit or it >= cfg.penalty_delay
            loss = mse + pen if method.uses_gradient_penalty and on else mse
            value = float((mse + pen).detach())
            if not math.isfinite(value):
                system.load_state_dict(best_state)
                raise NonFiniteLossError(
                    _nonfinite_message(f"The loss became {value}", it, opt.param_groups[0]["lr"], best_it), history
                )
            if value < best_value:
                best_value, best_it, best_refitted = value, it, refit
                _copy_state(best_state, system)
            system.release()  # the graph alone keeps the effective weights: freed during the backward pass
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)  # free the gradients now, not at the next step: the monitor and
            # checkpoints in between need memory of their own (a graph's deterministic gates and weights)
            lr = opt.param_groups[0]["lr"]
            if method.prox is not None and not refit and on:
                method.prox(system, step=lr, **penalty_kwargs)
            sched.step(value)
            history.loss.append(value)
            history.mse.append(float(mse.detach()))
            history.penalty.append(float(pen.detach()))
            history.lr.append(lr)
            history.nfe.append(int(system.nfe))
            history.seconds.append(time.perf_counter() - tick)
            bar.set_postfix(
                loss=f"{history.mse[-1]:.3g}", penalty=f"{history.penalty[-1]:.3g}", lr=f"{lr:.2g}", refresh=False
            )
            if cfg.checkpoint is not None and (it + 1) % cfg.checkpoint_every == 0:
                save(it + 1)
            if cfg.monitor is not None and not refit and (it + 1) % cfg.monitor_every == 0:
                cfg.monitor(it + 1, system)
    except KeyboardInterrupt:
        system.load_state_dict(best_state)
        history.interrupted = True
        raise FitInterrupted(
            iteration=len(history.loss),
            total=total,
            best_iteration=best_it,
            refitted=best_refitted,
            refit_pending=cfg.refit_iter > 0,
            checkpoint=last_checkpoint,
            checkpoint_file=cfg.checkpoint,
            history=history,
        ) from None
    finally:
        bar.close()
        for layer in system.sparse_layers():
            layer.release_buffers()
    if cfg.checkpoint is not None:
        save(total)  # the training state, from which a longer fit can resume
    if cfg.refit_iter and best_it >= cfg.n_iter:
        system.load_state_dict(best_state)  # the refit is deterministic: keep its best state
    return history
