"""The adaptive second stage of the automatic penalty: each pair penalised by its first-stage weakness.

After a first search has chosen its fit, every (target, input) pair's penalty factor becomes the
inverse of the size of its dependence in that fit (the mean absolute Jacobian over the training
states, relative to the strongest pair, floored), normalised to mean one over the pairs the model
may use: strong pairs become cheap to keep, weak ones expensive, and a second search with these
factors cuts the weak pairs to exact zeros while the strong ones keep their size (the adaptive
lasso's reweighting, Zou 2006, applied to the gates' penalty). With a prior network the factors
multiply the prior's.

The Jacobian, not the weight paths: a pair whose paths through the hidden units cancel has large
weights and no effect. On the synthetic second-order system such pairs scored 0.2-0.6 by their
weights (the true ones 0.4-1.6) and below 0.01 by their Jacobians (benchmarks/synthetic.py).
"""

from __future__ import annotations

import numpy as np

ADAPTIVE_FLOOR = 1e-3
"""Scores below this share of the strongest pair count as this share (pairs cut in the first stage)."""
ADAPTIVE_POWER = 1.0
"""Exponent of the inverse score (the adaptive lasso's gamma)."""


def adaptive_factors(
    scores: np.ndarray,
    used: np.ndarray,
    base: np.ndarray | None = None,
    *,
    floor: float = ADAPTIVE_FLOOR,
    power: float = ADAPTIVE_POWER,
) -> np.ndarray:
    """Return the second stage's penalty factors, ``(n_vars, order * n_vars)`` (targets x inputs).

    ``1 / max(score / largest score, floor) ** power`` from the first fit's ``scores`` (the sizes of
    its dependences, same shape), times ``base`` (a prior's factors, ``(n_vars, n_vars)``, repeated
    for the velocities, or the full shape), scaled to mean one over the ``used`` pairs
    (:func:`scnode.tl._utils.used_pairs`). A first fit without any dependence gives factors of one.
    """
    if not 0.0 < floor < 1.0:
        raise ValueError(f"floor must be in (0, 1), got {floor}.")
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}.")
    scores = np.abs(np.asarray(scores, dtype=float))
    top = float(scores[used].max()) if used.any() else 0.0
    factors = np.ones_like(scores) if top == 0 else 1.0 / np.maximum(scores / top, floor) ** power
    if base is not None:
        base = np.asarray(base, dtype=float)
        if base.shape != scores.shape:  # (targets, genes): a gene's position and velocity share its factor
            base = np.tile(base, (1, scores.shape[1] // base.shape[1]))
        factors = factors * base
    mean = float(factors[used].mean())
    return (factors / mean).astype(np.float32)
