"""Where data files come from: ``data_dir=``, ``SCNODE_DATA_DIR``, or a verified download."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import urllib.request
from pathlib import Path


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _new_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def _download(url: str, path: Path, expected: str, name: str) -> None:
    """Download ``url`` to ``path`` through a temporary file, checking its SHA-256.

    Whatever stops it (no network, a short read, a wrong file, Ctrl-C) leaves nothing behind: neither
    the partial file nor the folders made for it.
    """
    created = _new_folders(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    try:
        try:
            urllib.request.urlretrieve(url, tmp)
        except Exception as err:  # URLError, socket errors, ContentTooShortError, http.client.IncompleteRead
            raise OSError(
                f"Could not download {name} from {url} ({err}). Without network access, point data_dir= or the "
                f"SCNODE_DATA_DIR environment variable at a folder holding {name}."
            ) from err
        digest = sha256(tmp)
        if digest != expected:
            raise ValueError(
                f"The download of {name} from {url} has SHA-256 {digest}, expected {expected}: the file there has "
                "changed or the transfer was damaged. Nothing was kept."
            )
        tmp.rename(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        for folder in created:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def fetch(dataset: str, relpath: str, expected: str, url: str, data_dir: str | os.PathLike | None) -> Path:
    """Path of ``<root>/<dataset>/<relpath>``, checked against its SHA-256.

    ``root`` is ``data_dir``, else the ``SCNODE_DATA_DIR`` environment variable; with neither, the
    file is downloaded from ``url`` into ``~/.cache/scnode`` once (a failed or interrupted download
    leaves no file and no empty folder there).
    """
    root = data_dir if data_dir is not None else os.environ.get("SCNODE_DATA_DIR")
    if root is not None:
        path = Path(root) / dataset / relpath
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist (data_dir / SCNODE_DATA_DIR = {root}); it should hold {dataset}/{relpath}."
            )
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scnode" / dataset / relpath
        if not path.exists():
            _download(url, path, expected, f"{dataset}/{relpath}")
            return path
    digest = sha256(path)
    if digest != expected:
        raise ValueError(
            f"{path} has SHA-256 {digest}, expected {expected}: the file is corrupt or a different version."
        )
    return path


def github_raw(repo: str, commit: str, path: str) -> str:
    """Public raw-file URL of ``path`` in a GitHub repository at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{urllib.parse.quote(path)}"
