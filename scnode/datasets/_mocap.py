from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ._files import fetch, github_raw
from ._kinematics import AsfSkeleton, asf_forward_kinematics, bvh_forward_kinematics, read_amc, read_asf, read_bvh

AMC_FPS = 120.0
"""Frame rate of the CMU AMC files (AMC files do not record their rate)."""

_TANGKAI = ("TangKai-HIT/GP_Human_Motion", "614327c02c29ed5c3f0bc79964c950bdc2e5775c", "GPDM_example")
_GPMAT = ("SheffieldML/GPmat", "4b5914a38ecbad9fb7a13a3392970bfc28c9d911", "datasets/data/mocap/cmu/35")
_CGSPEED = "una-dinosauria/cmu-mocap"
SOURCES = {
    # relpath under <data_dir>/mocap -> (sha256, download URL)
    "asfamc/subject07_walk/07.asf": (
        "f1fbd8abcd9073d24189d5f33b7220974b0ac4b5223fabbb0cc07799ec7a93b3",
        github_raw(_TANGKAI[0], _TANGKAI[1], f"{_TANGKAI[2]}/07-walk.asf"),
    ),
    **{
        f"asfamc/subject07_walk/07_{t}.amc": (
            digest,
            github_raw(_TANGKAI[0], _TANGKAI[1], f"{_TANGKAI[2]}/data_sets/07_{t}.amc"),
        )
        for t, digest in {
            "01": "97cdb8296c5a9a37a2eaca7ce214b9dbaef49016f7e28c22c5b74688fcd8e0e3",
            "02": "8cd7cbba57ed6675dd647c9427ba6f7b676d514c4e7e4ad6d27c7d10a665df68",
            "09": "bf88877c6536b3be688b3ca86c1caffeb91162ccd3fbde56e7ef1c73ab149196",
            "10": "523d0dd6d58c66eb9ba301193cbbcb6f4bf006f196f7edffde83d1965f0902fc",
            "11": "7c6245129270f6f378745f41631ba6dcdc45969d3c05e1e7386c4dc534457c24",
        }.items()
    },
    "asfamc/subject35_walk/35.asf": (
        "2a8e2eda3c0d7d828566b2a9a8ab36b2b8b3864110574e8b73c8f069fded416c",
        github_raw(_GPMAT[0], _GPMAT[1], f"{_GPMAT[2]}/35.asf"),
    ),
    "asfamc/subject35_walk/35_01.amc": (
        "0743f4ea48e7e199cd56b2810b5ce81f8ede08d32ff79aa4e363c44cc4fe33aa",
        github_raw(_GPMAT[0], _GPMAT[1], f"{_GPMAT[2]}/35_01.amc"),
    ),
    "bvh/111_37.bvh": (
        "96578c5750c486a25b6cd2b39beae88fd04829e925992f9e6f3e3629b95b046f",
        github_raw(_CGSPEED, "f50fdd380214418ff240056a728a34adaf7bd1b0", "111/111_37.bvh"),
    ),
    "bvh/63_07.bvh": (
        "d36a3006870e574b8aebeecee24636ee031b5cd99d9c09984b43b43b361ec277",
        github_raw(_CGSPEED, "62ac0fb0ec43cff2bf66426928f4fa6682d4bbdc", "063/63_07.bvh"),
    ),
}


@dataclass(frozen=True)
class _Motion:
    description: str
    trials: dict[str, str]  # trial id -> relpath of the .amc / .bvh
    asf: str | None = None  # relpath of the skeleton for AMC trials


MOTIONS = {
    "walk": _Motion(
        "CMU subject 07, five walking trials (ASF/AMC)",
        {f"07_{t}": f"asfamc/subject07_walk/07_{t}.amc" for t in ("01", "02", "09", "10", "11")},
        "asfamc/subject07_walk/07.asf",
    ),
    "walk35": _Motion(
        "CMU subject 35, walking trial 01 (ASF/AMC)",
        {"35_01": "asfamc/subject35_walk/35_01.amc"},
        "asfamc/subject35_walk/35.asf",
    ),
    "wave": _Motion("CMU subject 111, trial 37, waving (cgspeed BVH)", {"111_37": "bvh/111_37.bvh"}),
    "golf": _Motion("CMU subject 63, trial 07, golf swing (cgspeed BVH)", {"63_07": "bvh/63_07.bvh"}),
}
"""Motions available by name."""


def _fetch(relpath: str, data_dir: str | os.PathLike | None) -> Path:
    digest, url = SOURCES[relpath]
    return fetch("mocap", relpath, digest, url, data_dir)


def _frame_step(source_fps: float, fps: float | None) -> int:
    """Keep every k-th frame, k chosen so that ``source_fps / k`` is closest to ``fps``."""
    if fps is None:
        return 1
    if not fps > 0:
        raise ValueError(f"fps should be positive, got {fps}.")
    ratio = source_fps / fps
    candidates = {max(1, int(np.floor(ratio))), max(1, int(np.ceil(ratio)))}
    return min(sorted(candidates), key=lambda k: abs(source_fps / k - fps))


def _clean_frame_time(frame_time: float) -> float:
    """``1/n`` for a frame time written with few digits (cgspeed: ``.0083333`` for 1/120 s)."""
    rate = 1.0 / frame_time
    return 1.0 / round(rate) if abs(rate - round(rate)) < 1e-4 * rate else frame_time


def _find_asf(amc: Path) -> Path:
    folder = amc.parent
    candidates = [folder / f"{amc.stem.split('_')[0]}.asf", folder / f"{amc.stem}.asf"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    found = sorted(folder.glob("*.asf"))
    if len(found) == 1:
        return found[0]
    raise ValueError(
        f"Cannot tell which skeleton goes with {amc}: found {[f.name for f in found] or 'no .asf files'} "
        f"in {folder}; pass asf=."
    )


def _subject(path: Path) -> str | None:
    """Return the CMU subject a file is named after (``"07"`` for ``07_01.amc``, ``07.asf``, ``07-walk.asf``)."""
    match = re.match(r"(\d+)(?:[_-]|$)", path.stem)
    return None if match is None else match.group(1)


def _check_subject(amc: Path, asf: Path) -> None:
    """Raise a ValueError when an AMC file and its skeleton are named after different CMU subjects.

    The subjects' skeletons have the same bones, so the motion would load, with another body's bone
    lengths and axes: the file names are the only sign.
    """
    motion, skeleton = _subject(amc), _subject(asf)
    if motion is not None and skeleton is not None and int(motion) != int(skeleton):
        raise ValueError(
            f"{amc} is a motion of subject {motion} but {asf} is the skeleton of subject {skeleton}: its bone "
            f"lengths and axes would pose another body. Pass subject {motion}'s own ASF with asf=."
        )


def _load_trial(
    path: Path, asf: Path | None, amc_fps: float, drop_first_bvh_frame: bool, skeletons: dict[Path, AsfSkeleton]
) -> tuple[list[str], list[int], np.ndarray, np.ndarray, float]:
    """Joints, parents, positions (float64), frame numbers and frame time of one file."""
    suffix = path.suffix.lower()
    if suffix == ".amc":
        asf = asf if asf is not None else _find_asf(path)
        _check_subject(path, asf)
        if asf not in skeletons:
            skeletons[asf] = read_asf(asf)
        skeleton = skeletons[asf]
        motion = read_amc(path, skeleton)
        positions = asf_forward_kinematics(skeleton, motion)
        return skeleton.joints, skeleton.parents, positions, motion.frames, 1.0 / amc_fps
    if suffix == ".bvh":
        skeleton, motion, frame_time = read_bvh(path)
        frames = np.arange(1, len(motion) + 1)
        if drop_first_bvh_frame:
            motion, frames = motion[1:], frames[1:]
        positions = bvh_forward_kinematics(skeleton, motion)
        return skeleton.joints, skeleton.parents, positions, frames, _clean_frame_time(frame_time)
    raise ValueError(f"{path}: expected an .amc (with its .asf) or a .bvh file.")


def mocap(
    name: str | None = None,
    *,
    path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    trial: str | Sequence[str] | None = None,
    fps: float | None = None,
    keep_root_translation: bool = True,
    unit_scale: float = 1.0,
    drop_first_bvh_frame: bool = True,
    data_dir: str | os.PathLike | None = None,
    asf: str | os.PathLike | None = None,
    amc_fps: float = AMC_FPS,
) -> ad.AnnData:
    """3-D joint positions of CMU motion-capture trials, one row per frame.

    Joint angles from the files are turned into joint positions by forward kinematics (see
    :mod:`scnode.datasets._kinematics` for the conventions). Data: CMU Graphics Lab Motion Capture Database,
    mocap.cs.cmu.edu ("The database was created with funding from NSF EIA-0196217").

    Parameters
    ----------
    name
        ``"walk"`` (subject 07, trials 07_01, 07_02, 07_09, 07_10, 07_11, one skeleton ``07.asf``),
        ``"walk35"`` (subject 35, trial 35_01), ``"wave"`` (111_37.bvh) or ``"golf"`` (63_07.bvh).
    path
        Instead of ``name``: an ``.amc`` file (its skeleton is ``asf``, else the ``.asf`` next to it named
        after the subject, e.g. ``07.asf`` for ``07_01.amc``, else the only ``.asf`` in its folder), a ``.bvh``
        file, or a list of such files sharing one joint set (each becomes a trial named after its file).
    trial
        With ``name``: the trial id(s) to load, e.g. ``"07_01"``; default all.
    fps
        Target frame rate: every k-th frame is kept, k chosen so that the rate is closest to ``fps``
        (source rate 120 frames/s; never upsampled).
    keep_root_translation
        ``False`` subtracts the root position from every joint in every frame (the root becomes 0); the
        pose's rotation is kept. The root trajectory stays in ``obsm["root_position"]`` either way.
    unit_scale
        Factor applied to all coordinates. File units are kept by default: for the CMU ASF files one unit is
        1/0.45 inch, so ``unit_scale=0.0254 / 0.45`` gives metres; the cgspeed BVH files use the same scale.
    drop_first_bvh_frame
        Drop frame 1 of BVH files: in the cgspeed conversion it is a T-pose added by the converter.
    data_dir
        Folder holding ``mocap/asfamc/`` and ``mocap/bvh/``; default ``SCNODE_DATA_DIR``, else the files are
        downloaded from public GitHub copies (and their SHA-256 checked).
    asf
        Skeleton for ``path`` ``.amc`` files. Files named after CMU subjects (``35_01.amc``, ``07.asf``) must
        name the same subject: the subjects' skeletons share their bones, so another subject's would load
        without complaint and pose the motion with the wrong bone lengths.
    amc_fps
        Frame rate of ``.amc`` files (which do not record it); BVH files give their ``Frame Time``.

    Returns
    -------
    AnnData with ``X`` (float32, frames x 3 * joints: ``<joint>_x``, ``<joint>_y``, ``<joint>_z``; 93 columns
    for the CMU skeletons; y is up), ``var`` columns ``joint`` and ``axis``, ``obs`` columns ``time``
    (seconds from the trial's first kept frame), ``trial`` (categorical) and ``frame`` (frame number in the
    file), ``obsm["root_position"]``, ``uns["skeleton"]`` (``joints``, ``parents`` with -1 for the root,
    ``bones`` as ``[parent, child]`` index pairs) and ``uns["mocap"]`` (source files, rates, units).

    Notes
    -----
    ASF/AMC joints are the root and the end point of each of the 30 bones. BVH joints are the root and the
    30 JOINTs (End Sites left out), placed at the joint's origin, so the 10 zero-offset joints of the cgspeed
    skeleton (LHipJoint, RHipJoint, LowerBack, Neck, LeftShoulder, RightShoulder, LeftFingerBase,
    RightFingerBase, LThumb, RThumb) duplicate their parent's coordinates.
    """
    if (name is None) == (path is None):
        raise ValueError(f"Give a motion name or path= (one of them); known motions: {', '.join(MOTIONS)}.")
    if name is not None:
        if name not in MOTIONS:
            raise ValueError(f"Unknown motion {name!r}; known motions: {', '.join(MOTIONS)}.")
        spec = MOTIONS[name]
        wanted = list(spec.trials) if trial is None else [trial] if isinstance(trial, str) else list(trial)
        unknown = [t for t in wanted if t not in spec.trials]
        if unknown or not wanted:
            raise ValueError(f"Unknown trial(s) {unknown} of {name!r}; choose from {list(spec.trials)}.")
        if asf is not None:
            raise ValueError("asf= goes with path=, not with a motion name.")
        skeleton_path = _fetch(spec.asf, data_dir) if spec.asf is not None else None
        files = {t: _fetch(spec.trials[t], data_dir) for t in wanted}
    else:
        if trial is not None:
            raise ValueError("trial= selects among the trials of a named motion; with path= each file is a trial.")
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        files = {}
        for p in map(Path, paths):
            key = p.stem if p.stem not in files else str(p)
            files[key] = p
        skeleton_path = Path(asf) if asf is not None else None

    parts, joints, parents, steps, rates, skeletons = [], None, None, set(), set(), {}
    for trial_id, file in files.items():
        trial_joints, trial_parents, positions, frames, frame_time = _load_trial(
            file, skeleton_path, amc_fps, drop_first_bvh_frame, skeletons
        )
        if joints is None:
            joints, parents = trial_joints, trial_parents
        elif trial_joints != joints or trial_parents != parents:
            first = next(iter(files.values()))
            raise ValueError(f"{file} has a different skeleton (joints or hierarchy) from {first}.")
        source_fps = 1.0 / frame_time
        step = _frame_step(source_fps, fps)
        steps.add(step)
        rates.add(source_fps)
        keep = np.arange(0, len(positions), step)
        positions, frames = positions[keep] * unit_scale, frames[keep]
        root = positions[:, 0].copy()
        if not keep_root_translation:
            positions = positions - root[:, None, :]
        obs = pd.DataFrame(
            {"time": np.arange(len(keep)) * step * frame_time, "trial": trial_id, "frame": frames.astype(np.int64)},
            index=[f"{trial_id}_{f}" for f in frames],
        )
        parts.append((positions.reshape(len(keep), -1), obs, root))

    var = pd.DataFrame(
        {"joint": np.repeat(joints, 3), "axis": np.tile(["x", "y", "z"], len(joints))},
        index=[f"{j}_{a}" for j in joints for a in "xyz"],
    )
    obs = pd.concat([p[1] for p in parts])
    obs["trial"] = pd.Categorical(obs["trial"], categories=list(files))
    adata = ad.AnnData(
        np.concatenate([p[0] for p in parts]).astype(np.float32),
        obs=obs,
        var=var,
        obsm={"root_position": np.concatenate([p[2] for p in parts]).astype(np.float32)},
    )
    adata.uns["skeleton"] = {
        "joints": list(joints),
        "parents": [int(p) for p in parents],
        "bones": [[int(p), c] for c, p in enumerate(parents) if p >= 0],
    }
    adata.uns["mocap"] = {
        "motion": name if name is not None else "",
        "files": [f.name for f in files.values()],
        "source_fps": float(next(iter(rates))) if len(rates) == 1 else [float(r) for r in sorted(rates)],
        "frame_step": int(next(iter(steps))) if len(steps) == 1 else [int(s) for s in sorted(steps)],
        "unit_scale": float(unit_scale),
        "keep_root_translation": bool(keep_root_translation),
        "citation": "mocap.cs.cmu.edu; the database was created with funding from NSF EIA-0196217.",
    }
    return adata
