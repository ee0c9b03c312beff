"""The model object :class:`SparseODE` and its configuration."""

from ._config import DEFAULT_LAM, DEFAULT_PATHREG_LAM1, ModelConfig, resolve_device
from ._sparse_ode import SparseODE

__all__ = ["DEFAULT_LAM", "DEFAULT_PATHREG_LAM1", "ModelConfig", "SparseODE", "resolve_device"]
