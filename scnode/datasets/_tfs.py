from __future__ import annotations

import os

from ._files import fetch, github_raw

REPO, COMMIT = "aertslab/pySCENIC", "06bafba"
TF_LISTS: dict[str, tuple[str, str]] = {
    "human": ("hs_hgnc_tfs.txt", "b3d59559bc1c04df61954b4051f1a4e0c17c849f532cd6271f749d832a18509a"),
    "mouse": ("mm_mgi_tfs.txt", "69a5e70c0fcf16443e2c6dc77735c5b5118964f3caa6e03eead2b6e9cfce1870"),
    "lambert2018": ("lambert2018.txt", "373b64d3dbc058a7388b795b396cd28dddbf79480ad1cb21ec9fa7a8fc93c27d"),
}
"""File and SHA-256 of each list in the ``tfs`` data folder."""
ALIASES = {"hs": "human", "homo_sapiens": "human", "mm": "mouse", "mus_musculus": "mouse"}


def tf_list(organism: str = "human", *, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Transcription factors of an organism (gene symbols), the lists pySCENIC users pass as ``tf_names``.

    Pass the result as ``regulators=`` of :func:`scnode.tl.fit_sparse_ode`: only these genes may then
    drive other genes' rates. The lists are those of the pySCENIC resources folder (public repository
    aertslab/pySCENIC, commit 06bafba): ``"human"`` (1839 HGNC symbols of TFs with motifs),
    ``"mouse"`` (1721 MGI symbols) and ``"lambert2018"`` (1639 human TFs of Lambert et al., Cell 2018).

    Parameters
    ----------
    organism
        ``"human"``, ``"mouse"`` or ``"lambert2018"``.
    data_dir
        Folder holding ``tfs/<file>``; default ``SCNODE_DATA_DIR``, else the file is downloaded from
        GitHub once (and its SHA-256 checked).

    Returns
    -------
    The gene symbols, in the file's order, without repeats.
    """
    key = ALIASES.get(str(organism).lower(), str(organism).lower())
    if key not in TF_LISTS:
        raise ValueError(f"Unknown organism {organism!r}; choose one of {list(TF_LISTS)}.")
    name, digest = TF_LISTS[key]
    path = fetch("tfs", name, digest, github_raw(REPO, COMMIT, f"resources/{name}"), data_dir)
    symbols = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return list(dict.fromkeys(symbols))
