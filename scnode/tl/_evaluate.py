from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ..core.metrics import auprc, auroc, early_predictions, epr
from ._utils import fitted_genes, network


def truth_matrix(truth: pd.DataFrame | np.ndarray, adata: AnnData, genes: pd.Index) -> np.ndarray:
    """Build the true network as a signed ``genes x genes`` matrix (rows regulators, columns targets; 0 = no edge).

    Unsigned truths (an edge list without ``weight`` or ``sign``, a 0/1 matrix) give +1 on every edge.
    """
    out = np.zeros((len(genes), len(genes)))
    if isinstance(truth, pd.DataFrame) and {"source", "target"} <= set(truth.columns):
        src, tgt = genes.get_indexer(truth["source"].astype(str)), genes.get_indexer(truth["target"].astype(str))
        keep = (src >= 0) & (tgt >= 0)
        value = np.ones(len(truth))
        if "weight" in truth:
            value = np.sign(truth["weight"].to_numpy(float))
        if "sign" in truth:
            value = value * np.sign(truth["sign"].to_numpy(float))
        keep &= value != 0
        out[src[keep], tgt[keep]] = value[keep]
    elif isinstance(truth, pd.DataFrame):
        frame = truth.reindex(index=genes, columns=genes).fillna(0)
        out = np.sign(frame.to_numpy(float))
    else:
        mat = truth.toarray() if sparse.issparse(truth) else np.asarray(truth)
        if mat.shape != (adata.n_vars, adata.n_vars):
            raise ValueError(
                f"A true network given as a matrix must be n_vars x n_vars = {(adata.n_vars, adata.n_vars)} "
                f"(rows regulators, columns targets, in var_names order); got {mat.shape}."
            )
        idx = adata.var_names.get_indexer(genes)
        out = np.sign(mat[np.ix_(idx, idx)].astype(float))
    return out


def candidate_scores(
    adata: AnnData,
    truth: pd.DataFrame | np.ndarray,
    *,
    key: str,
    regulators: Sequence[str] | None,
    signs: bool = False,
) -> tuple[np.ndarray, ...]:
    """Return the learned ``|score|`` and the truth (bool) of every candidate pair (as in :func:`evaluate_grn`).

    With ``signs``, also the true signs and the learned ones (``varp[key + "_sign"]``, zeros without).
    """
    scores = network(adata, key).toarray()
    genes = pd.Index(fitted_genes(adata, key))
    idx = adata.var_names.get_indexer(genes)
    learned_sign = np.sign(scores[np.ix_(idx, idx)])
    if f"{key}_sign" in adata.varp:
        learned_sign = network(adata, f"{key}_sign").toarray()[np.ix_(idx, idx)]
    scores = np.abs(scores[np.ix_(idx, idx)])
    true_sign = truth_matrix(truth, adata, genes)
    true = true_sign != 0
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
    if signs:
        return s, y, true_sign[candidate], learned_sign[candidate]
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
    of the top k, k = number of true edges, over edge density; as BEELINE counts it, the top k are
    the nonzero scores at least as large as the k-th, ties included), ``n_true_edges``,
    ``n_candidates``, ``density``, ``n_predicted`` (candidates with a nonzero score) and
    ``sign_accuracy``: among the true edges in the top k (as EPR counts them), the share whose
    learned sign (``varp[key + "_sign"]``, else the score's sign) is the true one (NaN when the truth
    is unsigned, i.e. has no negative edge, or no true edge is in the top k).
    """
    s, y, true_sign, learned_sign = candidate_scores(adata, truth, key=key, regulators=regulators, signs=True)
    density = float(y.mean())
    hits = np.flatnonzero(early_predictions(s, y) & y)  # EPR's top k: ties at the k-th included
    signed = (true_sign < 0).any() and len(hits) > 0
    sign_accuracy = float(np.mean(learned_sign[hits] == true_sign[hits])) if signed else float("nan")
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
            "sign_accuracy": sign_accuracy,
        }
    )
