"""What a user knows before the fit: which genes may regulate (a TF list) and a prior network."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

logger = logging.getLogger("scnode")


def resolve_regulators(adata: AnnData, regulators: Sequence[str] | str | None, genes: list[str]) -> dict | None:
    """Find the fitted genes that may regulate others: their indices among ``genes``, the overlap's record.

    ``regulators``: gene names (e.g. :func:`scnode.datasets.tf_list`; names that are not among the
    fitted genes are ignored and counted), or the name of a boolean ``var`` column (e.g. ``"is_tf"``).
    Returns ``None`` for ``None`` (every gene may regulate).
    """
    if regulators is None:
        return None
    if isinstance(regulators, str):
        if regulators not in adata.var:
            raise KeyError(
                f"regulators={regulators!r} is neither a list of genes nor a column of adata.var "
                f"(columns: {list(adata.var.columns)})."
            )
        col = adata.var[regulators]
        if col.dtype != bool:
            raise ValueError(f"adata.var[{regulators!r}] must be boolean to name the regulators, got {col.dtype}.")
        names = [str(g) for g in adata.var_names[col.to_numpy()]]
        source, empty = f"adata.var[{regulators!r}]", "marks no gene as a regulator (every value is False)"
    else:
        if isinstance(regulators, pd.Index | np.ndarray | pd.Series):
            regulators = list(regulators)
        names = list(dict.fromkeys(str(g) for g in regulators))
        source, empty = "the regulator list", "is empty"
    if not names:
        raise ValueError(f"{source} {empty}.")
    position = {g: i for i, g in enumerate(genes)}
    found = [g for g in names if g in position]
    if not found:
        example = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        raise ValueError(
            f"None of the {len(names)} names in {source} ({example}) is among the {len(genes)} fitted genes: "
            "check the organism (human symbols are upper case, mouse ones capitalised) and the gene selection "
            "(genes=)."
        )
    index = sorted(position[g] for g in found)
    logger.info("scnode: %d of %d regulators are among the %d fitted genes.", len(found), len(names), len(genes))
    return {
        "index": index,
        "record": {"n_given": len(names), "n_found": len(found), "n_genes": len(genes), "source": source},
    }


def _prior_matrix(prior: pd.DataFrame, genes: list[str]) -> pd.DataFrame:
    """Turn a prior (edge list or matrix) into a regulators x targets DataFrame of weights."""
    if not isinstance(prior, pd.DataFrame):
        raise TypeError(
            f"prior must be a pandas DataFrame (an edge list with columns source, target[, weight], or a "
            f"regulators x targets matrix), got {type(prior).__name__}."
        )
    cols = [str(c).lower() for c in prior.columns]
    if "source" in cols and "target" in cols:
        frame = prior.rename(columns=dict(zip(prior.columns, cols, strict=True)))
        weight = frame["weight"].astype(float) if "weight" in frame else pd.Series(1.0, index=frame.index)
        if not np.isfinite(weight).all() or (weight < 0).any():
            raise ValueError("The prior's weights must be finite and non-negative.")
        edges = pd.DataFrame(
            {"source": frame["source"].astype(str), "target": frame["target"].astype(str), "w": weight}
        )
        edges = edges.groupby(["source", "target"], sort=False)["w"].max()
        matrix = edges.unstack(fill_value=0.0)
    else:
        matrix = prior.astype(float)
        matrix.index, matrix.columns = matrix.index.astype(str), matrix.columns.astype(str)
        if not np.isfinite(matrix.to_numpy()).all() or (matrix.to_numpy() < 0).any():
            raise ValueError("The prior's weights must be finite and non-negative.")
    return matrix


def prior_penalty_factors(
    prior: pd.DataFrame, genes: list[str], strength: float, regulators: list[int] | None
) -> tuple[np.ndarray, dict]:
    """Penalty factors ``(targets, genes)`` of a prior: ``1 - strength * w / max(w)`` on its edges, 1 elsewhere.

    Prior edges are penalised less, so the fit keeps them more readily; it can still drop them and
    add edges outside the prior. Edges whose genes are not fitted (or whose source may not regulate)
    are ignored and counted in the returned record.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"prior_strength must be in [0, 1], got {strength}.")
    matrix = _prior_matrix(prior, genes)
    position = {g: i for i, g in enumerate(genes)}
    allowed = set(range(len(genes))) if regulators is None else set(regulators)
    stacked = matrix.stack()
    stacked = stacked[stacked > 0]
    if stacked.empty:
        raise ValueError("The prior has no edge with a positive weight.")
    top = float(stacked.max())
    factors = np.ones((len(genes), len(genes)), dtype=np.float32)  # rows targets, columns regulators
    used = 0
    for (source, target), w in stacked.items():
        s, t = position.get(source), position.get(target)
        if s is None or t is None or s not in allowed:
            continue
        factors[t, s] = 1.0 - strength * float(w) / top
        used += 1
    if used == 0:
        raise ValueError(
            f"None of the prior's {len(stacked)} edges joins two fitted genes (with an allowed regulator as source)."
        )
    logger.info("scnode: %d of %d prior edges are among the fitted genes.", used, len(stacked))
    return factors, {"n_edges": len(stacked), "n_used": used, "strength": float(strength)}
