"""Tools on AnnData (scanpy style)."""

from ._fit import fit_sparse_ode

__all__ = ["fit_sparse_ode"]
