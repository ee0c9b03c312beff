"""Preprocessing: AnnData -> trajectories."""

from ._trajectories import trajectories

__all__ = ["trajectories"]
