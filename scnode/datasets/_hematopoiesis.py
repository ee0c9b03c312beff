from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from ._files import fetch, github_raw

REPO, COMMIT, FOLDER = "theislab/PathReg", "46263bb7695054dc0d2733203fefbd6ae1d453b6", "data/data"
LINEAGES = {"erythroid": "eryth", "monocyte": "mono", "B": "B"}
"""Lineage name -> file prefix."""
DONORS = {"s1d1": "11", "s1d2": "12", "s2d1": "21", "s2d4": "24", "s3d6": "36"}
"""Donor name -> file code."""
MISSING = {("erythroid", "s2d4")}
"""Trajectories that exist upstream but are not available (eryth_24 is over 4 MiB)."""
SHA256 = {
    "trajectories/B_11_norm.csv": "28b41cf1b8b22431458c9e6f62d6f506d4536cb602e568588c2f739fff9e6e7b",
    "trajectories/B_12_norm.csv": "74719640cc33efe85b791a6a6d52e3a54201a851162ec906793432677e6cb888",
    "trajectories/B_21_norm.csv": "216a969a0fc1094acf53439ae6095746ef9eada21e4a578b7bc56ca708c5230a",
    "trajectories/B_24_norm.csv": "7c73affa5beafd41bf24e5f6441c787df314c6dc21f08b72bdcd57d6e7a3114d",
    "trajectories/B_36_norm.csv": "d1b0f7c49e3da98def9098f70de720bde3a4e514154cd189aa241708105e8acd",
    "trajectories/eryth_11_norm.csv": "eb44c4476d942d4bb12aa3affefb57c0dab058677bff4213e9b02470d707d014",
    "trajectories/eryth_12_norm.csv": "7bb069ff75ef8098ed1082b0a5e9d94b35e53708aa21605c68965c58b9a5d746",
    "trajectories/eryth_21_norm.csv": "571e971267fe2991627c69ba3699abf763fc21a238f8dc3e730b5976c8b0b055",
    "trajectories/eryth_36_norm.csv": "33277c3c32431552dc7a85f8fdf3e34b3a4514cbe6181e55bd8ec1a6a783cdc8",
    "trajectories/mono_11_norm.csv": "f15840f266e0fd4c907b147795e7cf9564be41561416bbcd716c54c45b65453d",
    "trajectories/mono_12_norm.csv": "db55a76bff6e09ba6bae391a79a15b49c4f6dd11398368dbd5580e4a5079c216",
    "trajectories/mono_21_norm.csv": "20518770b17a8f4c774e9143ef8818ff72fe027ed5cb01ced2d856646ed03560",
    "trajectories/mono_24_norm.csv": "25120ec65650a2f662e301b982c5bf8a6a256676f6996860a69db4e107c8eac7",
    "trajectories/mono_36_norm.csv": "b01b5a199a6ad636ab49e61b3283a508888a320980db742dab5498466bf63445",
    "TFs_Targets/tf_targets_baseGRN_human_matrix.csv.gz": (
        "2fca06f6d4db8d717996c05893afc640b77b98d3c15e9e81011a3a86a3b0dd81"
    ),
}


def _path(relpath: str, data_dir: str | os.PathLike | None):
    return fetch("hematopoiesis", relpath, SHA256[relpath], github_raw(REPO, COMMIT, f"{FOLDER}/{relpath}"), data_dir)


def _as_list(value: str | Sequence[str] | None, allowed: dict[str, str], what: str) -> list[str]:
    values = list(allowed) if value is None else [value] if isinstance(value, str) else list(value)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"Unknown {what} {unknown}; choose from {list(allowed)}.")
    return values


def hematopoiesis(
    lineage: str | Sequence[str] | None = None,
    donor: str | Sequence[str] | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
) -> ad.AnnData:
    """Human bone-marrow trajectories curated by the PathReg authors (NeurIPS 2021 Open Problems data).

    Size-factor-normalised counts (not log) of 529 genes along diffusion pseudotime, per donor and
    lineage. Rows are returned in file order (not sorted by pseudotime).

    Parameters
    ----------
    lineage
        ``"erythroid"``, ``"monocyte"``, ``"B"`` or a list; default all three.
    donor
        ``"s1d1"``, ``"s1d2"``, ``"s2d1"``, ``"s2d4"``, ``"s3d6"`` or a list; default all five.
        The erythroid trajectory of s2d4 is not available and is skipped with a warning.
    data_dir
        Folder holding ``hematopoiesis/trajectories/``; default ``SCNODE_DATA_DIR``, else the files are
        downloaded from the authors' repository (and their SHA-256 checked).

    Returns
    -------
    AnnData with ``obs`` columns ``dpt_pseudotime``, ``donor`` and ``lineage`` (categorical).
    """
    lineages = _as_list(lineage, LINEAGES, "lineage(s)")
    donors = _as_list(donor, DONORS, "donor(s)")
    pairs = [(li, do) for do in donors for li in lineages if (li, do) not in MISSING]
    skipped = [(li, do) for do in donors for li in lineages if (li, do) in MISSING]
    if not pairs:
        raise ValueError(f"No trajectory available for {skipped} (the erythroid trajectory of s2d4 is missing).")
    if skipped:
        warnings.warn(f"Skipping unavailable trajectories {skipped}.", stacklevel=2)
    parts = []
    for li, do in pairs:
        path = _path(f"trajectories/{LINEAGES[li]}_{DONORS[do]}_norm.csv", data_dir)
        frame = pd.read_csv(path, sep="\t")
        if frame.columns[0] != "dpt_pseudotime":
            raise ValueError(f"{path}: the first column should be dpt_pseudotime, found {frame.columns[0]!r}.")
        obs = pd.DataFrame(
            {"dpt_pseudotime": frame.iloc[:, 0].to_numpy(float), "donor": do, "lineage": li},
            index=[f"{li}_{do}_{i}" for i in range(len(frame))],
        )
        parts.append(
            ad.AnnData(frame.iloc[:, 1:].to_numpy(np.float32), obs=obs, var=pd.DataFrame(index=frame.columns[1:]))
        )
    genes = parts[0].var_names
    for p in parts[1:]:
        if not p.var_names.equals(genes):
            raise ValueError("The trajectory files do not share one gene list.")
    adata = ad.concat(parts)
    adata.obs["donor"] = pd.Categorical(adata.obs["donor"], categories=[d for d in DONORS if d in donors])
    adata.obs["lineage"] = pd.Categorical(adata.obs["lineage"], categories=lineages)
    return adata


def hematopoiesis_base_grn(
    genes: Sequence[str] | None = None, *, data_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Load the authors' binary base GRN (prior knowledge, not ground truth): TFs x targets.

    Parameters
    ----------
    genes
        Restrict rows and columns to these genes (e.g. ``adata.var_names``); TFs and targets not in the
        network are left out.
    data_dir
        See :func:`hematopoiesis`.

    Returns
    -------
    A 0/1 DataFrame, rows = TFs, columns = targets.
    """
    path = _path("TFs_Targets/tf_targets_baseGRN_human_matrix.csv.gz", data_dir)
    grn = pd.read_csv(path, index_col=0)
    if genes is not None:
        keep = pd.Index(genes)
        grn = grn.loc[grn.index.intersection(keep), grn.columns.intersection(keep)]
    return grn.astype(np.int8)
