"""Scores: MSE, GRN scores in the BEELINE convention, and structural Hamming distance."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error over all entries."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    if pred.shape != target.shape:
        raise ValueError(f"Shapes differ: prediction {pred.shape}, target {target.shape}.")
    return float(np.mean((pred - target) ** 2))


def _flatten(scores: np.ndarray, truth: np.ndarray, exclude_diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    scores, truth = np.abs(np.asarray(scores, float)), np.asarray(truth) != 0
    if scores.shape != truth.shape:
        raise ValueError(f"Scores {scores.shape} and true network {truth.shape} differ in shape.")
    keep = np.ones(scores.shape, bool)
    if exclude_diagonal:
        n = min(scores.shape)
        keep[np.arange(n), np.arange(n)] = False
    return scores[keep], truth[keep]


def precision_recall(
    scores: np.ndarray, truth: np.ndarray, *, exclude_diagonal: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision at each distinct score threshold, strongest first (tied scores form one step).

    Returns ``(recall, precision)``: entry ``k`` counts every candidate scoring at least the
    ``k``-th largest distinct score as predicted.
    """
    s, y = _flatten(scores, truth, exclude_diagonal)
    if y.sum() == 0:
        raise ValueError("The true network has no edges.")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each block of tied scores
    tp = np.cumsum(y)[last]
    return tp / y.sum(), tp / (last + 1)


def auprc(scores: np.ndarray, truth: np.ndarray, *, exclude_diagonal: bool = False) -> float:
    """Area under the precision-recall curve (average precision; tied scores form one step)."""
    recall, precision = precision_recall(scores, truth, exclude_diagonal=exclude_diagonal)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auroc(scores: np.ndarray, truth: np.ndarray, *, exclude_diagonal: bool = False) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic; ties count one half)."""
    s, y = _flatten(scores, truth, exclude_diagonal)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both true edges and non-edges.")
    ranks = rankdata(s)  # average ranks of ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc_ratio(scores: np.ndarray, truth: np.ndarray, *, exclude_diagonal: bool = True) -> float:
    """AUPRC divided by the edge density (the AUPRC of a random ranking)."""
    _, y = _flatten(scores, truth, exclude_diagonal)
    return auprc(scores, truth, exclude_diagonal=exclude_diagonal) / y.mean()


def epr(scores: np.ndarray, truth: np.ndarray, *, exclude_diagonal: bool = True) -> float:
    """Early precision ratio: precision of the top-k predictions (k = true edges) over edge density.

    As BEELINE counts them: the predictions are the non-zero pairs scoring at least the k-th largest
    score, ties included (so with fewer than k non-zero pairs, all of them); no non-zero pair, no
    prediction: 0.
    """
    s, y = _flatten(scores, truth, exclude_diagonal)
    if not y.any():
        raise ValueError("The true network has no edges.")
    predicted = early_predictions(s, y)
    if not predicted.any():
        return 0.0
    return float(y[predicted].mean() / y.mean())


def early_predictions(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Return the pairs :func:`epr` counts as predicted: non-zero, scoring at least the k-th largest score.

    ``scores`` (non-negative) and ``truth`` are flat over the same candidate pairs; k is the number of
    true pairs. Ties at the k-th score are all included, whatever their order.
    """
    s, k = np.asarray(scores, float), int(np.asarray(truth).sum())
    nonzero = s > 0
    if k == 0 or not nonzero.any():
        return np.zeros(s.shape, bool)
    return s >= max(np.sort(s)[-k], s[nonzero].min())  # the k-th largest score (k <= pairs)


def shd(support: np.ndarray, truth: np.ndarray) -> int:
    """Structural Hamming distance of two directed supports: entries where they disagree."""
    a, b = np.asarray(support) != 0, np.asarray(truth) != 0
    if a.shape != b.shape:
        raise ValueError(f"Supports {a.shape} and {b.shape} differ in shape.")
    return int((a != b).sum())
