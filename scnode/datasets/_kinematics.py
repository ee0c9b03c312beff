"""Readers for Acclaim ASF/AMC and Biovision BVH motion capture files, and forward kinematics.

Written from the format descriptions: an ASF file describes a skeleton (units, root, bones with a rest
direction, length, local axis and degrees of freedom, and a hierarchy); an AMC file lists, per frame, the
values of every bone's degrees of freedom; a BVH file holds both a joint hierarchy (offsets and channels)
and one line of channel values per frame.

Rotation conventions
--------------------
* ASF/AMC orders (``axis ... XYZ``, ``dof rx ry rz``, the root's ``order``) are applied first-listed-first
  about fixed axes: ``XYZ`` gives the matrix ``Rz @ Ry @ Rx`` acting on column vectors.
* BVH channel orders are intrinsic: ``Zrotation Yrotation Xrotation`` gives ``Rz @ Ry @ Rx``.

For the CMU data both conventions give the same matrix, ``Rz @ Ry @ Rx``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ASF_DOFS = ("rx", "ry", "rz", "tx", "ty", "tz", "l")
"""Degrees of freedom an ASF bone may list."""
BVH_CHANNELS = ("xposition", "yposition", "zposition", "xrotation", "yrotation", "zrotation")
"""BVH channel names (compared case-insensitively)."""


def _fail(path: Path, line: int | None, problem: str) -> ValueError:
    where = f"{path}, line {line}" if line is not None else f"{path}"
    return ValueError(f"{where}: {problem}")


def _lines(path: Path) -> list[str]:
    # Text mode turns CRLF (the CMU BVH and the subject-35 files) into LF.
    with open(path, encoding="latin-1") as f:
        return f.read().splitlines()


def _floats(path: Path, line: int, tokens: list[str], what: str) -> list[float]:
    values = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise _fail(path, line, f"non-numeric value {token!r} in {what}.") from None
        if not math.isfinite(value):  # "nan", "inf", or a number beyond float range such as 1e999
            raise _fail(path, line, f"non-finite value {token!r} in {what}.")
        values.append(value)
    return values


# --------------------------------------------------------------------------------------------- rotations
def axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices about one coordinate axis.

    Parameters
    ----------
    axis
        ``"x"``, ``"y"`` or ``"z"`` (case-insensitive).
    angle
        Angles in radians, any shape ``S``.

    Returns
    -------
    Array of shape ``S + (3, 3)`` acting on column vectors (right-handed, counter-clockwise).
    """
    angle = np.asarray(angle, dtype=np.float64)
    i = "xyz".index(axis.lower())
    j, k = (i + 1) % 3, (i + 2) % 3
    c, s = np.cos(angle), np.sin(angle)
    rot = np.zeros((*angle.shape, 3, 3))
    rot[..., i, i] = 1.0
    rot[..., j, j] = c
    rot[..., k, k] = c
    rot[..., j, k] = -s
    rot[..., k, j] = s
    return rot


def euler_rotation(axes: str, angles: np.ndarray, *, intrinsic: bool) -> np.ndarray:
    """Compose rotations about the listed axes.

    Parameters
    ----------
    axes
        Axis letters in the order listed, e.g. ``"xyz"``.
    angles
        Radians, shape ``(..., len(axes))``.
    intrinsic
        ``True``: rotations about the moving axes, ``R = R_1 @ R_2 @ ...`` (BVH). ``False``: the first listed
        rotation is applied first about the fixed axes, ``R = ... @ R_2 @ R_1`` (ASF/AMC).

    Returns
    -------
    Array of shape ``angles.shape[:-1] + (3, 3)``.
    """
    angles = np.asarray(angles, dtype=np.float64)
    rot = np.broadcast_to(np.eye(3), (*angles.shape[:-1], 3, 3)).copy()
    for n, axis in enumerate(axes):
        step = axis_rotation(axis, angles[..., n])
        rot = rot @ step if intrinsic else step @ rot
    return rot


# ------------------------------------------------------------------------------------------------- ASF
@dataclass
class AsfBone:
    """One bone of an ASF skeleton.

    Attributes
    ----------
    name
        Bone name.
    direction
        Unit vector of the bone at rest, in global coordinates (normalised on reading).
    length
        Bone length in file units.
    axis
        Rotation angles (radians) of the bone's local frame relative to the global frame.
    axis_order
        Order of ``axis`` as written, e.g. ``"XYZ"`` (first letter applied first).
    dof
        Degrees of freedom in the order the AMC lists their values (subset of ``rx ry rz tx ty tz l``).
    limits
        ``(min, max)`` per degree of freedom, in file units, or empty.
    id
        The bone's ``id``, if given.
    """

    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray = field(default_factory=lambda: np.zeros(3))
    axis_order: str = "XYZ"
    dof: tuple[str, ...] = ()
    limits: list[tuple[float, float]] = field(default_factory=list)
    id: int | None = None


@dataclass
class AsfSkeleton:
    """Skeleton read from an ASF file.

    Attributes
    ----------
    path
        The file read.
    name
        The ``:name`` entry.
    angle_unit
        ``"deg"`` or ``"rad"`` (the ``:units angle`` entry), the unit of the ASF angles.
    length_unit
        The ``:units length`` entry (CMU: 0.45, i.e. one file unit is 1/0.45 inch); lengths are kept in file
        units.
    mass
        The ``:units mass`` entry.
    root_order
        The root's degrees of freedom in AMC order, lower-case (e.g. ``("tx", "ty", "tz", "rx", "ry", "rz")``).
    root_axis
        Order of ``root_orientation``.
    root_position, root_orientation
        Rest position (file units) and orientation (radians) of the root.
    bones
        Bones by name.
    joints
        ``"root"`` then the bones in depth-first hierarchy order (parents before children).
    parents
        Index of each joint's parent in ``joints``; -1 for the root.
    """

    path: Path
    name: str
    angle_unit: str
    length_unit: float
    mass: float
    root_order: tuple[str, ...]
    root_axis: str
    root_position: np.ndarray
    root_orientation: np.ndarray
    bones: dict[str, AsfBone]
    joints: list[str]
    parents: list[int]

    @property
    def edges(self) -> list[tuple[int, int]]:
        """``(parent, child)`` joint index pairs, one per bone."""
        return [(p, c) for c, p in enumerate(self.parents) if p >= 0]

    def dof(self, name: str) -> tuple[str, ...]:
        """Degrees of freedom of a joint (``"root"`` or a bone) in AMC order."""
        return self.root_order if name == "root" else self.bones[name].dof


def _asf_order(path: Path, line: int, token: str) -> str:
    if len(token) != 3 or sorted(token.upper()) != ["X", "Y", "Z"]:
        raise _fail(path, line, f"rotation order {token!r} is not a permutation of XYZ.")
    return token.upper()


def read_asf(path: str | os.PathLike) -> AsfSkeleton:
    """Read an Acclaim skeleton file (ASF).

    Parameters
    ----------
    path
        The ``.asf`` file.

    Returns
    -------
    The skeleton; joints are ``"root"`` and every bone (a joint's position is the end point of its bone).

    Raises
    ------
    ValueError
        Naming the file and line for malformed content (non-numeric or non-finite values, unknown keywords in
        the root section, hierarchy entries naming unknown bones, bones missing from the hierarchy, ...).
    """
    path = Path(path)
    units = {"mass": 1.0, "length": 1.0, "angle": "deg"}
    name = ""
    root_order: tuple[str, ...] = ("tx", "ty", "tz", "rx", "ry", "rz")
    root_axis = "XYZ"
    root_position = np.zeros(3)
    root_orientation_raw = np.zeros(3)
    bones_raw: list[dict] = []
    children: dict[str, list[str]] = {}
    child_line: dict[str, int] = {}
    section = None
    bone: dict | None = None
    in_hierarchy_block = False
    saw_hierarchy = False

    for lineno, raw in enumerate(_lines(path), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        tokens = text.split()
        if text.startswith(":"):
            if bone is not None:
                raise _fail(path, lineno, f"bone begun on line {bone['line']} has no 'end'.")
            section = tokens[0][1:].lower()
            if section == "name":
                name = " ".join(tokens[1:])
            elif section == "hierarchy":
                saw_hierarchy = True
            continue
        key = tokens[0].lower()
        if section == "units":
            if len(tokens) != 2:
                raise _fail(path, lineno, f"expected 'keyword value' in :units, found {text!r}.")
            if key == "angle":
                unit = tokens[1].lower()
                if unit not in ("deg", "rad"):
                    raise _fail(path, lineno, f"angle unit {tokens[1]!r} is neither deg nor rad.")
                units["angle"] = unit
            else:
                units[key] = _floats(path, lineno, tokens[1:], f":units {key}")[0]
        elif section == "root":
            if key == "order":
                order = tuple(t.lower() for t in tokens[1:])
                bad = [t for t in order if t not in ASF_DOFS[:6]]
                if bad or len(set(order)) != len(order):
                    raise _fail(path, lineno, f"root order {' '.join(tokens[1:])!r} has unknown or repeated entries.")
                root_order = order
            elif key == "axis":
                if len(tokens) != 2:
                    raise _fail(path, lineno, "root axis should be one rotation order such as XYZ.")
                root_axis = _asf_order(path, lineno, tokens[1])
            elif key in ("position", "orientation"):
                if len(tokens) != 4:
                    raise _fail(path, lineno, f"root {key} needs 3 values, found {len(tokens) - 1}.")
                values = np.array(_floats(path, lineno, tokens[1:], f"root {key}"))
                if key == "position":
                    root_position = values
                else:
                    root_orientation_raw = values
            else:
                raise _fail(path, lineno, f"unknown root keyword {tokens[0]!r}.")
        elif section == "bonedata":
            if key == "begin":
                if bone is not None:
                    raise _fail(path, lineno, f"'begin' inside the bone begun on line {bone['line']}.")
                bone = {"line": lineno, "limits": []}
            elif bone is None:
                raise _fail(path, lineno, f"{tokens[0]!r} outside a begin/end bone block.")
            elif key == "end":
                bones_raw.append(bone)
                bone = None
            elif key == "id":
                bone["id"] = int(_floats(path, lineno, tokens[1:2], "bone id")[0])
            elif key == "name":
                if len(tokens) != 2:
                    raise _fail(path, lineno, "a bone name is one word.")
                bone["name"] = tokens[1]
            elif key == "direction":
                if len(tokens) != 4:
                    raise _fail(path, lineno, f"direction needs 3 values, found {len(tokens) - 1}.")
                bone["direction"] = np.array(_floats(path, lineno, tokens[1:], "direction"))
            elif key == "length":
                if len(tokens) != 2:
                    raise _fail(path, lineno, f"length needs 1 value, found {len(tokens) - 1}.")
                bone["length"] = _floats(path, lineno, tokens[1:], "length")[0]
            elif key == "axis":
                if len(tokens) != 5:
                    raise _fail(path, lineno, "axis needs 3 angles and a rotation order, e.g. 'axis 0 0 20 XYZ'.")
                bone["axis"] = np.array(_floats(path, lineno, tokens[1:4], "axis"))
                bone["axis_order"] = _asf_order(path, lineno, tokens[4])
            elif key == "dof":
                dof = tuple(t.lower() for t in tokens[1:])
                bad = [t for t in dof if t not in ASF_DOFS]
                if bad or len(set(dof)) != len(dof):
                    raise _fail(path, lineno, f"dof {' '.join(tokens[1:])!r} has unknown or repeated entries.")
                bone["dof"] = dof
            elif key == "limits" or text.startswith("("):
                spec = text[len(tokens[0]) :] if key == "limits" else text
                pairs = re.findall(r"\(([^()]*)\)", spec)
                if not pairs or re.sub(r"\([^()]*\)", "", spec).strip():
                    raise _fail(path, lineno, f"limits should read '(min max)', found {spec.strip()!r}.")
                for pair in pairs:
                    values = _floats(path, lineno, pair.split(), "limits")
                    if len(values) != 2:
                        raise _fail(path, lineno, f"a limit needs 2 values, found {len(values)}.")
                    bone["limits"].append((values[0], values[1]))
            # other bone keywords (bodymass, cofmass, ...) carry nothing the kinematics needs
        elif section == "hierarchy":
            if key == "begin":
                in_hierarchy_block = True
            elif key == "end":
                in_hierarchy_block = False
            elif not in_hierarchy_block:
                raise _fail(path, lineno, f"hierarchy entry {text!r} outside begin/end.")
            else:
                for child in tokens[1:]:
                    if child == "root":
                        raise _fail(path, lineno, "the root cannot be a child.")
                    if child in child_line:
                        raise _fail(path, lineno, f"bone {child!r} already has a parent (line {child_line[child]}).")
                    child_line[child] = lineno
                children.setdefault(tokens[0], []).extend(tokens[1:])
                child_line.setdefault(f"parent:{tokens[0]}", lineno)
    if bone is not None:
        raise _fail(path, bone["line"], "bone block has no 'end'.")
    if not saw_hierarchy:
        raise _fail(path, None, "no :hierarchy section.")

    angle_scale = np.pi / 180.0 if units["angle"] == "deg" else 1.0
    bones: dict[str, AsfBone] = {}
    for b in bones_raw:
        if "name" not in b:
            raise _fail(path, b["line"], "bone without a name.")
        for needed in ("direction", "length"):
            if needed not in b:
                raise _fail(path, b["line"], f"bone {b['name']!r} has no {needed}.")
        if b["name"] in bones or b["name"] == "root":
            raise _fail(path, b["line"], f"bone name {b['name']!r} is used twice.")
        dof = b.get("dof", ())
        if b["limits"] and len(b["limits"]) != len(dof):
            raise _fail(path, b["line"], f"bone {b['name']!r} has {len(dof)} dof but {len(b['limits'])} limits.")
        norm = float(np.linalg.norm(b["direction"]))
        bones[b["name"]] = AsfBone(
            name=b["name"],
            direction=b["direction"] / norm if norm > 0 else b["direction"],
            length=float(b["length"]),
            axis=b.get("axis", np.zeros(3)) * angle_scale,
            axis_order=b.get("axis_order", "XYZ"),
            dof=dof,
            limits=b["limits"],
            id=b.get("id"),
        )
    for parent, kids in children.items():
        line = child_line[f"parent:{parent}"]
        for n in [parent, *kids]:
            if n != "root" and n not in bones:
                raise _fail(path, child_line.get(n, line), f"hierarchy names unknown bone {n!r}.")
    joints, parents = ["root"], [-1]
    stack = [(kid, 0) for kid in reversed(children.get("root", []))]
    while stack:
        joint, parent = stack.pop()
        if joint in joints:
            raise _fail(path, child_line[joint], f"the hierarchy has a cycle through {joint!r}.")
        joints.append(joint)
        parents.append(parent)
        stack.extend((kid, len(joints) - 1) for kid in reversed(children.get(joint, [])))
    unreached = [b for b in bones if b not in joints]
    if unreached:
        raise _fail(path, None, f"bones not connected to the root by the hierarchy: {unreached}.")
    return AsfSkeleton(
        path=path,
        name=name,
        angle_unit=units["angle"],
        length_unit=float(units["length"]),
        mass=float(units["mass"]),
        root_order=root_order,
        root_axis=root_axis,
        root_position=root_position,
        root_orientation=root_orientation_raw * angle_scale,
        bones=bones,
        joints=joints,
        parents=parents,
    )


# ------------------------------------------------------------------------------------------------- AMC
@dataclass
class AmcMotion:
    """Motion read from an AMC file.

    Attributes
    ----------
    path
        The file read.
    frames
        Frame numbers as written (CMU: 1, 2, ...).
    values
        Joint name (``"root"`` or a bone with degrees of freedom) -> array ``(n_frames, n_dof)`` in the order of
        :meth:`AsfSkeleton.dof`; rotations in radians, translations in file length units.
    """

    path: Path
    frames: np.ndarray
    values: dict[str, np.ndarray]

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.frames)


def read_amc(path: str | os.PathLike, skeleton: AsfSkeleton) -> AmcMotion:
    """Read an Acclaim motion file (AMC) for a skeleton.

    Every frame must list every joint that has degrees of freedom (as in ``:FULLY-SPECIFIED`` files), with
    one value per degree of freedom. Angles are in degrees after a ``:DEGREES`` header line, radians after
    ``:RADIANS``, else in the ASF's angle unit.

    Parameters
    ----------
    path
        The ``.amc`` file.
    skeleton
        Its skeleton (:func:`read_asf`).

    Returns
    -------
    The motion, angles converted to radians.

    Raises
    ------
    ValueError
        Naming the file and line: unknown bone, a value count different from the bone's dof, non-numeric or
        non-finite value (``nan``, ``inf``, ``1e999``), a frame missing bones (a truncated last frame
        included), repeated bone, non-consecutive frame numbers, no frames.
    """
    path = Path(path)
    expected = {"root": skeleton.root_order}
    expected.update({n: b.dof for n, b in skeleton.bones.items() if b.dof})
    angle_unit = skeleton.angle_unit
    frames: list[int] = []
    rows: dict[str, list[list[float]]] = {n: [] for n in expected}
    current: dict[str, int] | None = None  # bone -> line, for the frame being read
    current_line = 0
    last_line = 0

    def close_frame(at_end: bool) -> None:
        missing = [n for n in expected if n not in current]
        if missing:
            if at_end:
                problem = (
                    f"the file ends inside frame {frames[-1]} (begun on line {current_line}), which lacks "
                    f"{', '.join(missing)} (truncated file?)."
                )
                raise _fail(path, last_line, problem)
            raise _fail(path, current_line, f"frame {frames[-1]} lacks {', '.join(missing)}.")

    for lineno, raw in enumerate(_lines(path), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        last_line = lineno
        if text.startswith(":"):
            if frames:
                raise _fail(path, lineno, f"header line {text!r} after the first frame.")
            keyword = text.split()[0].upper()
            if keyword == ":DEGREES":
                angle_unit = "deg"
            elif keyword == ":RADIANS":
                angle_unit = "rad"
            continue
        tokens = text.split()
        if len(tokens) == 1 and tokens[0].isdigit():
            number = int(tokens[0])
            if frames:
                close_frame(at_end=False)
                if number != frames[-1] + 1:
                    raise _fail(path, lineno, f"frame number {number} follows frame {frames[-1]}.")
            frames.append(number)
            current, current_line = {}, lineno
            continue
        joint = tokens[0]
        if current is None:
            raise _fail(path, lineno, f"{joint!r} before the first frame number.")
        if joint not in expected:
            if joint in skeleton.bones:
                raise _fail(
                    path,
                    lineno,
                    f"channel count mismatch: bone {joint!r} has no degrees of freedom in {skeleton.path.name} "
                    f"but the line has {len(tokens) - 1} values.",
                )
            raise _fail(path, lineno, f"unknown bone {joint!r} (not in {skeleton.path.name}).")
        if joint in current:
            raise _fail(path, lineno, f"bone {joint!r} appears twice in frame {frames[-1]} (line {current[joint]}).")
        dof = expected[joint]
        if len(tokens) - 1 != len(dof):
            raise _fail(
                path,
                lineno,
                f"channel count mismatch: bone {joint!r} has {len(dof)} dof ({' '.join(dof)}) in "
                f"{skeleton.path.name}, the line has {len(tokens) - 1} values.",
            )
        rows[joint].append(_floats(path, lineno, tokens[1:], f"bone {joint!r}"))
        current[joint] = lineno
    if not frames:
        raise _fail(path, last_line or None, "no frames.")
    close_frame(at_end=True)

    angle_scale = np.pi / 180.0 if angle_unit == "deg" else 1.0
    values = {}
    for joint, dof in expected.items():
        array = np.array(rows[joint], dtype=np.float64).reshape(len(frames), len(dof))
        rotational = [i for i, d in enumerate(dof) if d.startswith("r")]
        array[:, rotational] *= angle_scale
        values[joint] = array
    return AmcMotion(path=path, frames=np.array(frames), values=values)


def _asf_parts(dof: tuple[str, ...], values: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Motion rotation, translation and length change of one joint, per frame."""
    rotation = np.broadcast_to(np.eye(3), (n, 3, 3))
    translation = np.zeros((n, 3))
    stretch = np.zeros(n)
    if values is None or not dof:
        return rotation, translation, stretch
    rot = [i for i, d in enumerate(dof) if d.startswith("r")]
    if rot:
        rotation = euler_rotation("".join(dof[i][1] for i in rot), values[:, rot], intrinsic=False)
    for i, d in enumerate(dof):
        if d.startswith("t"):
            translation[:, "xyz".index(d[1])] = values[:, i]
        elif d == "l":
            stretch = values[:, i]
    return rotation, translation, stretch


def asf_forward_kinematics(skeleton: AsfSkeleton, motion: AmcMotion, *, scale: float = 1.0) -> np.ndarray:
    """Global joint positions of an ASF/AMC motion.

    For a bone with local axis rotation ``C`` and motion rotation ``M`` (from its dof values), the global
    rotation is ``G = G_parent @ C @ M @ C.T`` and its end point is
    ``end_parent + G @ (direction * (length + l) + C @ t)`` (``l``, ``t``: the optional length and translation
    dofs, zero for CMU). The root is at ``position + (tx, ty, tz)`` with rotation ``C_root @ M_root @ C_root.T``
    (``C_root`` from ``orientation`` in the root's ``axis`` order).

    Parameters
    ----------
    skeleton
        From :func:`read_asf`.
    motion
        From :func:`read_amc`.
    scale
        Factor applied to all lengths and translations.

    Returns
    -------
    float64 array ``(n_frames, n_joints, 3)`` in ``skeleton.joints`` order: the root position, then the end
    point of every bone.
    """
    n = motion.n_frames
    positions = np.empty((n, len(skeleton.joints), 3))
    rotations = np.empty((n, len(skeleton.joints), 3, 3))
    for j, (joint, parent) in enumerate(zip(skeleton.joints, skeleton.parents, strict=True)):
        dof = skeleton.dof(joint)
        rotation, translation, stretch = _asf_parts(dof, motion.values.get(joint), n)
        if parent < 0:
            c = euler_rotation(skeleton.root_axis.lower(), skeleton.root_orientation, intrinsic=False)
            rotations[:, j] = c @ rotation @ c.T
            positions[:, j] = skeleton.root_position + translation
            continue
        bone = skeleton.bones[joint]
        c = euler_rotation(bone.axis_order.lower(), bone.axis, intrinsic=False)
        rotations[:, j] = rotations[:, parent] @ c @ rotation @ c.T
        local = bone.direction * (bone.length + stretch)[:, None] + translation @ c.T
        positions[:, j] = positions[:, parent] + np.einsum("nab,nb->na", rotations[:, j], local)
    return positions * scale


# ------------------------------------------------------------------------------------------------- BVH
@dataclass
class BvhSkeleton:
    """Joint hierarchy read from a BVH file.

    Attributes
    ----------
    path
        The file read.
    joints
        ROOT and JOINT names in file order (parents before children); End Sites are not joints.
    parents
        Index of each joint's parent; -1 for the root.
    offsets
        ``(n_joints, 3)`` offset of each joint from its parent, in the parent's frame.
    channels
        Channel names of each joint, as written.
    channel_start
        Column of each joint's first channel in the motion array.
    end_sites
        ``(joint index, offset)`` of every End Site.
    """

    path: Path
    joints: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    channel_start: list[int]
    end_sites: list[tuple[int, np.ndarray]]

    @property
    def n_channels(self) -> int:
        """Values per motion line."""
        return sum(len(c) for c in self.channels)

    @property
    def edges(self) -> list[tuple[int, int]]:
        """``(parent, child)`` joint index pairs."""
        return [(p, c) for c, p in enumerate(self.parents) if p >= 0]


def _bvh_tokens(lines: list[str]) -> tuple[list[tuple[str, int]], int | None]:
    tokens = []
    for lineno, line in enumerate(lines, 1):
        if line.strip().upper() == "MOTION":
            return tokens, lineno
        tokens.extend((tok, lineno) for tok in re.findall(r"[{}]|[^\s{}]+", line))
    return tokens, None


def read_bvh(path: str | os.PathLike) -> tuple[BvhSkeleton, np.ndarray, float]:
    """Read a Biovision hierarchy file (BVH).

    Parameters
    ----------
    path
        The ``.bvh`` file (one ROOT).

    Returns
    -------
    skeleton
        The joint hierarchy.
    motion
        float64 array ``(n_frames, n_channels)`` of channel values as written (angles in degrees).
    frame_time
        Seconds per frame, as written.

    Raises
    ------
    ValueError
        Naming the file and line: malformed hierarchy, unknown channel, a motion line with the wrong number
        of values, non-numeric or non-finite value (``nan``, ``inf``, ``1e999``), fewer (truncated file) or
        more motion lines than ``Frames:``.
    """
    path = Path(path)
    lines = _lines(path)
    tokens, motion_line = _bvh_tokens(lines)
    pos = 0

    def take(expect: str | None = None) -> tuple[str, int]:
        nonlocal pos
        if pos >= len(tokens):
            raise _fail(path, tokens[-1][1] if tokens else None, "the hierarchy ends early.")
        tok, line = tokens[pos]
        if expect is not None and tok.upper() != expect.upper():
            raise _fail(path, line, f"expected {expect!r}, found {tok!r}.")
        pos += 1
        return tok, line

    def take_vector(what: str) -> np.ndarray:
        values = []
        for _ in range(3):
            tok, line = take()
            values.append(_floats(path, line, [tok], what)[0])
        return np.array(values)

    take("HIERARCHY")
    joints: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    channels: list[tuple[str, ...]] = []
    end_sites: list[tuple[int, np.ndarray]] = []

    def read_joint(parent: int) -> None:
        name_parts = []
        while pos < len(tokens) and tokens[pos][0] != "{":
            name_parts.append(take()[0])
        if not name_parts:
            raise _fail(path, tokens[pos - 1][1], "joint without a name.")
        take("{")
        index = len(joints)
        joints.append(" ".join(name_parts))
        parents.append(parent)
        take("OFFSET")
        offsets.append(take_vector("OFFSET"))
        chans: tuple[str, ...] = ()
        if pos < len(tokens) and tokens[pos][0].upper() == "CHANNELS":
            take()
            tok, line = take()
            if not tok.isdigit():
                raise _fail(path, line, f"CHANNELS count {tok!r} is not a whole number.")
            names = []
            for _ in range(int(tok)):
                ch, ch_line = take()
                if ch.lower() not in BVH_CHANNELS:
                    raise _fail(path, ch_line, f"unknown channel {ch!r} (CHANNELS {tok} declared on line {line}).")
                names.append(ch)
            if len({c.lower() for c in names}) != len(names):
                raise _fail(path, line, "repeated channel.")
            chans = tuple(names)
        channels.append(chans)
        while True:
            tok, line = take()
            if tok == "}":
                return
            if tok.upper() == "JOINT":
                read_joint(index)
            elif tok.upper() == "END":
                take("Site")
                take("{")
                take("OFFSET")
                end_sites.append((index, take_vector("End Site OFFSET")))
                take("}")
            else:
                raise _fail(path, line, f"expected JOINT, End Site or '}}', found {tok!r}.")

    take("ROOT")
    read_joint(-1)
    if pos < len(tokens):
        raise _fail(path, tokens[pos][1], f"unexpected {tokens[pos][0]!r} after the root joint (one ROOT only).")
    if motion_line is None:
        raise _fail(path, None, "no MOTION section.")

    header: dict[str, tuple[str, int]] = {}
    lineno = motion_line
    while len(header) < 2:
        lineno += 1
        if lineno > len(lines):
            raise _fail(path, lineno - 1, "the MOTION section lacks 'Frames:' or 'Frame Time:'.")
        text = lines[lineno - 1].strip()
        if not text:
            continue
        key, _, value = text.partition(":")
        key = key.strip().lower()
        if key not in ("frames", "frame time"):
            raise _fail(path, lineno, f"expected 'Frames:' or 'Frame Time:', found {text!r}.")
        header[key] = (value.strip(), lineno)
    header_end = lineno
    value, line = header["frames"]
    if not value.isdigit():
        raise _fail(path, line, f"Frames: {value!r} is not a whole number.")
    n_frames = int(value)
    value, line = header["frame time"]
    frame_time = _floats(path, line, [value], "Frame Time")[0]
    if not frame_time > 0:
        raise _fail(path, line, f"Frame Time {value} is not positive.")

    offsets_array = np.array(offsets).reshape(-1, 3)
    starts = np.concatenate([[0], np.cumsum([len(c) for c in channels])[:-1]]).astype(int).tolist()
    skeleton = BvhSkeleton(path, joints, parents, offsets_array, channels, starts, end_sites)
    n_channels = skeleton.n_channels
    motion = np.empty((n_frames, n_channels))
    frame = 0
    for lineno in range(header_end + 1, len(lines) + 1):
        values = lines[lineno - 1].split()
        if not values:
            continue
        if frame == n_frames:
            raise _fail(path, lineno, f"more motion lines than 'Frames: {n_frames}'.")
        if len(values) != n_channels:
            raise _fail(
                path,
                lineno,
                f"channel count mismatch: frame {frame + 1} has {len(values)} values, the hierarchy declares "
                f"{n_channels} channels.",
            )
        motion[frame] = _floats(path, lineno, values, f"frame {frame + 1}")
        frame += 1
    if frame < n_frames:
        last = max((i for i, t in enumerate(lines, 1) if t.strip()), default=len(lines))
        raise _fail(path, last, f"the file ends after {frame} of {n_frames} frames (truncated file?).")
    return skeleton, motion, frame_time


def bvh_forward_kinematics(skeleton: BvhSkeleton, motion: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    """Global joint positions of a BVH motion.

    Each joint's local rotation is the intrinsic composition of its rotation channels in the listed order
    (degrees), its local translation is its offset plus its position channels;
    ``position = parent_position + parent_rotation @ translation`` and
    ``rotation = parent_rotation @ local_rotation``.

    Parameters
    ----------
    skeleton, motion
        From :func:`read_bvh`.
    scale
        Factor applied to all offsets and translations.

    Returns
    -------
    float64 array ``(n_frames, n_joints, 3)`` in ``skeleton.joints`` order (End Sites are left out). Joints
    with a zero offset (CMU: the hip, lower-back, neck, shoulder, finger-base and thumb joints) coincide with
    their parent.
    """
    motion = np.asarray(motion, dtype=np.float64)
    if motion.ndim != 2 or motion.shape[1] != skeleton.n_channels:
        raise ValueError(f"motion should have shape (n_frames, {skeleton.n_channels}), got {motion.shape}.")
    n = len(motion)
    positions = np.empty((n, len(skeleton.joints), 3))
    rotations = np.empty((n, len(skeleton.joints), 3, 3))
    for j, parent in enumerate(skeleton.parents):
        start = skeleton.channel_start[j]
        rot_axes, rot_cols = "", []
        translation = np.broadcast_to(skeleton.offsets[j], (n, 3)).copy()
        for i, name in enumerate(skeleton.channels[j]):
            kind = name.lower()
            if kind.endswith("rotation"):
                rot_axes += kind[0]
                rot_cols.append(start + i)
            else:
                translation[:, "xyz".index(kind[0])] += motion[:, start + i]
        local = euler_rotation(rot_axes, np.deg2rad(motion[:, rot_cols]), intrinsic=True)
        if parent < 0:
            rotations[:, j] = local
            positions[:, j] = translation
        else:
            rotations[:, j] = rotations[:, parent] @ local
            positions[:, j] = positions[:, parent] + np.einsum("nab,nb->na", rotations[:, parent], translation)
    return positions * scale
