from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from anndata import AnnData

logger = logging.getLogger("scnode")


def split_lineages(
    adata: AnnData,
    key: str,
    *,
    threshold: float | None = None,
    key_added: str = "lineage",
    cell_key: str = "cell",
) -> AnnData:
    """One copy of each cell per lineage it belongs to, for lineages that share cells.

    Trajectory tools describe branching with a cells × lineages membership in ``obsm``: Palantir's
    ``obsm["branch_masks"]`` (booleans), or fate probabilities such as Palantir's
    ``obsm["palantir_fate_probabilities"]`` and CellRank's ``obsm["lineages_fwd"]`` (lineage
    names in ``uns["lineages_fwd_names"]``). A progenitor belongs to several lineages, while
    ``lineage_key`` of :func:`scnode.tl.fit_sparse_ode` gives each cell one. This returns a new
    AnnData in which each cell appears once per lineage it belongs to, so that every lineage's
    trajectory starts from the shared progenitors; pass ``lineage_key=key_added`` to the fit.

    Parameters
    ----------
    adata
        Cells in ``obs``, with the membership in ``obsm[key]``.
    key
        Key of ``obsm``: a cells × lineages DataFrame or array, boolean (or 0/1), or probabilities
        with ``threshold``. Lineage names are the DataFrame's columns, else ``uns[key + "_names"]``
        (CellRank's convention), else ``"0"``, ``"1"``, ….
    threshold
        For probabilities: a cell belongs to each lineage whose probability is at least
        ``threshold``. A value at or below ``1 / n_lineages`` keeps undecided progenitors in every
        lineage. Not used for a boolean membership.
    key_added
        ``obs`` column of the returned AnnData naming each copy's lineage (categorical).
    cell_key
        ``obs`` column of the returned AnnData naming the cell each copy came from.

    Returns
    -------
    A new AnnData with one row per (cell, lineage) membership, named ``"{cell}-{lineage}"``, and
    every field of ``adata`` taken along except ``obsp`` (pairwise graphs do not extend to copies).
    Cells of no lineage are left out (logged). ``adata`` is not modified.

    Examples
    --------
    >>> import scnode as scn
    >>> cells = scn.pp.split_lineages(adata, "branch_masks")  # Palantir's boolean branch masks
    >>> scn.tl.fit_sparse_ode(cells, time_key="palantir_pseudotime", lineage_key="lineage")
    """
    member, names = _membership(adata, key, threshold)
    for column in (key_added, cell_key):
        if column in adata.obs:
            raise ValueError(
                f"adata.obs already has a column {column!r}; pass another key_added= or cell_key= for the copies."
            )
    if key_added == cell_key:
        raise ValueError(f"key_added and cell_key are both {key_added!r}; they name two columns.")
    lineage, cell = np.nonzero(member.T)  # lineage by lineage, cells in their order
    if len(cell) == 0:
        raise ValueError(f"No cell belongs to any lineage of obsm[{key!r}]" + _hint(threshold) + ".")
    empty = [names[k] for k in range(len(names)) if not member[:, k].any()]
    if empty:
        logger.info("scnode: lineage(s) %s of obsm[%r] have no cells and are left out.", ", ".join(empty), key)
    if (outside := int((~member.any(axis=1)).sum())) > 0:
        msg = "scnode: %d of %d cells belong to no lineage of obsm[%r] and are left out."
        logger.info(msg, outside, adata.n_obs, key)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Observation names are not unique")  # renamed below
        out = adata[cell].copy()
    for k in list(out.obsp):
        del out.obsp[k]
    kept = [n for n in names if n not in empty]
    out.obs_names = [f"{c}-{names[k]}" for c, k in zip(adata.obs_names[cell], lineage, strict=True)]
    out.obs[key_added] = pd.Categorical([names[k] for k in lineage], categories=kept)
    out.obs[cell_key] = adata.obs_names[cell].to_numpy()
    return out


def _membership(adata: AnnData, key: str, threshold: float | None) -> tuple[np.ndarray, list[str]]:
    """Return the cells × lineages boolean membership of ``obsm[key]`` and the lineages' names."""
    if key not in adata.obsm:
        raise KeyError(f"adata.obsm has no key {key!r}; available: {list(adata.obsm)}.")
    raw = adata.obsm[key]
    if isinstance(raw, pd.DataFrame):
        names = [str(c) for c in raw.columns]
        values = raw.to_numpy()
    else:
        values = np.asarray(raw)
        given = adata.uns.get(f"{key}_names", getattr(raw, "names", None))
        names = [str(n) for n in given] if given is not None else [str(k) for k in range(values.shape[-1])]
    if values.ndim != 2 or values.shape[1] != len(names):
        raise ValueError(f"obsm[{key!r}] must be cells x lineages with one name per lineage; got shape {values.shape}.")
    if len(set(names)) != len(names):
        raise ValueError(f"obsm[{key!r}] names a lineage twice: {names}.")
    if values.dtype == bool:
        return values, names
    if not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"obsm[{key!r}] is neither boolean nor numeric (dtype {values.dtype}).")
    values = values.astype(float)
    if not np.isfinite(values).all():
        raise ValueError(f"obsm[{key!r}] has NaN or infinite values.")
    if np.isin(values, (0.0, 1.0)).all():  # 0/1 masks
        return values == 1.0, names
    if threshold is None:
        raise ValueError(
            f"obsm[{key!r}] holds values other than 0 and 1 (probabilities?): pass threshold=, the probability "
            f"from which a cell belongs to a lineage (at most 1/{len(names)} keeps undecided progenitors in every one)."
        )
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}.")
    return values >= threshold, names


def _hint(threshold: float | None) -> str:
    """Return the note on ``threshold`` for the error that no cell belongs to a lineage."""
    return "" if threshold is None else f" at threshold={threshold} (a lower one admits more cells)"
