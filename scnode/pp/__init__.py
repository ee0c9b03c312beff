"""Preprocessing: AnnData -> trajectories."""

from ._lineages import split_lineages
from ._prepare import TrajectorySet, prepare_trajectories
from ._trajectories import trajectories

__all__ = ["TrajectorySet", "prepare_trajectories", "split_lineages", "trajectories"]
