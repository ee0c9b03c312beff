from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ..core.metrics import auprc, auroc, epr
from ._utils import fitted_genes, network


def _truth_matrix(truth: pd.DataFrame | np.ndarray, adata: AnnData, genes: pd.Index) -> np.ndarray:
    """Build the true network as a 0/1 ``genes x genes`` matrix (rows regulators, columns targets)."""
    out = np.zeros((len(genes), len(genes)), bool)
    if isinstance(truth, pd.DataFrame) and {"source", "target"} <= set(truth.columns):
        src, tgt = genes.get_indexer(truth["source"].astype(str)), genes.get_indexer(truth["target"].astype(str))
        keep = (src >= 0) & (tgt >= 0)
        if "weight" in truth:
            keep &= truth["weight"].to_numpy() != 0
        out[src[keep], tgt[keep]] = True
    elif isinstance(truth, pd.DataFrame):
        frame = truth.reindex(index=genes, columns=genes).fillna(0)
        out = frame.to_numpy() != 0
    else:
        mat = truth.toarray() if sparse.issparse(truth) else np.asarray(truth)
        if mat.shape != (adata.n_vars, adata.n_vars):
            raise ValueError(
                f"A true network given as a matrix must be n_vars x n_vars = {(adata.n_vars, adata.n_vars)} "
                f"(rows regulators, columns targets, in var_names order); got {mat.shape}."
            )
        idx = adata.var_names.get_indexer(genes)
        out = mat[np.ix_(idx, idx)] != 0
    return out


def candidate_scores(
    adata: AnnData, truth: pd.DataFrame | np.ndarray, *, key: str, regulators: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the learned ``|score|`` and the truth (bool) of every candidate pair (as in :func:`evaluate_grn`)."""
    scores = network(adata, key).toarray()
    genes = pd.Index(fitted_genes(adata, key))
    idx = adata.var_names.get_indexer(genes)
    scores = np.abs(scores[np.ix_(idx, idx)])
    true = _truth_matrix(truth, adata, genes)
    rows = np.ones(len(genes), bool)
    if regulators is not None:
        regulators = [str(r) for r in regulators]
        rows = genes.isin(regulators)
        if not rows.any():
            raise ValueError("None of the regulators are among the fitted genes.")
    candidate = rows[:, None] & ~np.eye(len(genes), dtype=bool)
    s, y = scores[candidate], true[candidate]
    if y.sum() == 0:
        raise ValueError("The true network has no edges among the candidate pairs (check gene names).")
    if y.all():
        raise ValueError("Every candidate pair is a true edge; the scores cannot be evaluated.")
    return s, y


def evaluate_grn(
    adata: AnnData,
    truth: pd.DataFrame | np.ndarray,
    *,
    key: str = "scnode",
    regulators: Sequence[str] | None = None,
) -> pd.Series:
    """Score the learned network against a known one (BEELINE conventions; self-loops excluded).

    Candidate edges are every ordered pair of fitted genes (``regulators`` x fitted genes when
    ``regulators`` is given), without self-loops; the learned scores in ``varp[key]`` rank them.

    Parameters
    ----------
    adata
        AnnData with a fitted network in ``varp[key]``.
    truth
        The known network: an edge table with columns ``source`` and ``target`` (a ``weight`` column
        of zeros marks non-edges), a DataFrame matrix (index regulators, columns targets, nonzero =
        edge), or an ``n_vars x n_vars`` array in ``var_names`` order. Genes outside the fitted ones
        are ignored.
    key
        Key of the learned network in ``varp``.
    regulators
        Restrict the candidate regulators (e.g. the transcription factors of a prior network).

    Returns
    -------
    Series with ``auprc``, ``auprc_ratio`` (AUPRC / edge density), ``auroc``, ``epr`` (precision
    among the top-k scores, k = number of true edges, over edge density), ``n_true_edges``,
    ``n_candidates``, ``density`` and ``n_predicted`` (candidates with a nonzero score).
    """
    s, y = candidate_scores(adata, truth, key=key, regulators=regulators)
    density = float(y.mean())
    return pd.Series(
        {
            "auprc": auprc(s, y),
            "auprc_ratio": auprc(s, y) / density,
            "auroc": auroc(s, y),
            "epr": epr(s, y, exclude_diagonal=False),
            "n_true_edges": int(y.sum()),
            "n_candidates": int(y.size),
            "density": density,
            "n_predicted": int((s != 0).sum()),
        }
    )
