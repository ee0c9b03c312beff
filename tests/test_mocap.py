import os
import re
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import scnode as scn
from scnode.datasets._kinematics import (
    AmcMotion,
    asf_forward_kinematics,
    axis_rotation,
    bvh_forward_kinematics,
    read_amc,
    read_asf,
    read_bvh,
)
from scnode.datasets._mocap import _frame_step

DATA = Path(os.environ.get("SCNODE_DATA_DIR", "/nonexistent")) / "mocap"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="SCNODE_DATA_DIR has no mocap/")

WALK07 = ["07_01", "07_02", "07_09", "07_10", "07_11"]
AMC_TRIALS = {t: ("asfamc/subject07_walk/07.asf", f"asfamc/subject07_walk/{t}.amc") for t in WALK07}
AMC_TRIALS["35_01"] = ("asfamc/subject35_walk/35.asf", "asfamc/subject35_walk/35_01.amc")
BVH_TRIALS = {"111_37": "bvh/111_37.bvh", "63_07": "bvh/63_07.bvh"}
FRAMES = {"07_01": 316, "07_02": 329, "07_09": 306, "07_10": 301, "07_11": 315, "35_01": 358}
FRAMES.update({"111_37": 325, "63_07": 377})


@pytest.fixture(scope="module")
def asf_amc():
    """Trial -> (skeleton, motion, float64 positions), each file parsed once."""
    if not DATA.is_dir():
        pytest.skip("SCNODE_DATA_DIR has no mocap/")
    skeletons, out = {}, {}
    for trial, (asf, amc) in AMC_TRIALS.items():
        if asf not in skeletons:
            skeletons[asf] = read_asf(DATA / asf)
        motion = read_amc(DATA / amc, skeletons[asf])
        out[trial] = (skeletons[asf], motion, asf_forward_kinematics(skeletons[asf], motion))
    return out


@pytest.fixture(scope="module")
def bvh():
    """Trial -> (skeleton, motion, frame time, float64 positions)."""
    if not DATA.is_dir():
        pytest.skip("SCNODE_DATA_DIR has no mocap/")
    out = {}
    for trial, rel in BVH_TRIALS.items():
        skeleton, motion, frame_time = read_bvh(DATA / rel)
        out[trial] = (skeleton, motion, frame_time, bvh_forward_kinematics(skeleton, motion))
    return out


def _asf_rest_pose(skeleton):
    rest = np.zeros((len(skeleton.joints), 3))
    rest[0] = skeleton.root_position
    for j, (joint, parent) in enumerate(zip(skeleton.joints, skeleton.parents, strict=True)):
        if parent >= 0:
            bone = skeleton.bones[joint]
            rest[j] = rest[parent] + bone.direction * bone.length
    return rest


def _zero_motion(skeleton, n=3):
    values = {j: np.zeros((n, len(skeleton.dof(j)))) for j in skeleton.joints if skeleton.dof(j)}
    return AmcMotion(path=Path("zeros.amc"), frames=np.arange(1, n + 1), values=values)


# ---------------------------------------------------------------------------------------------- parsing
@needs_data
def test_files_parse_with_the_documented_sizes(asf_amc, bvh):
    for trial, (skeleton, motion, positions) in asf_amc.items():
        assert len(skeleton.joints) == 31 and skeleton.joints[0] == "root"
        assert len(motion.values) == 29  # root + the 28 bones with dof (not lhipjoint, rhipjoint)
        assert sum(v.shape[1] for v in motion.values.values()) == 62
        assert positions.shape == (FRAMES[trial], 31, 3)
        assert skeleton.angle_unit == "deg" and skeleton.length_unit == 0.45
        assert skeleton.root_order == ("tx", "ty", "tz", "rx", "ry", "rz")
    for trial, (skeleton, motion, frame_time, positions) in bvh.items():
        assert skeleton.joints[0] == "Hips" and len(skeleton.joints) == 31
        assert motion.shape == (FRAMES[trial], 96) and positions.shape == (FRAMES[trial], 31, 3)
        assert frame_time == pytest.approx(1 / 120, rel=1e-5)
        assert skeleton.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
        assert all(c == ("Zrotation", "Yrotation", "Xrotation") for c in skeleton.channels[1:])


@needs_data
def test_subjects_share_joint_names_not_lengths(asf_amc):
    s07, s35 = asf_amc["07_01"][0], asf_amc["35_01"][0]
    assert s07.joints == s35.joints and s07.parents == s35.parents
    assert s07.bones["lfemur"].length != pytest.approx(s35.bones["lfemur"].length)


# --------------------------------------------------------------------------------------- kinematics
@needs_data
@pytest.mark.parametrize("trial", list(AMC_TRIALS))
def test_asf_bones_keep_their_length_in_every_frame(asf_amc, trial):
    skeleton, _, positions = asf_amc[trial]
    for j, (joint, parent) in enumerate(zip(skeleton.joints, skeleton.parents, strict=True)):
        if parent < 0:
            continue
        length = np.linalg.norm(positions[:, j] - positions[:, parent], axis=1)
        np.testing.assert_allclose(length, skeleton.bones[joint].length, rtol=1e-6, err_msg=joint)


@needs_data
@pytest.mark.parametrize("trial", list(BVH_TRIALS))
def test_bvh_bones_keep_their_length_in_every_frame(bvh, trial):
    skeleton, _, _, positions = bvh[trial]
    for j, parent in enumerate(skeleton.parents):
        if parent < 0:
            continue
        length = np.linalg.norm(positions[:, j] - positions[:, parent], axis=1)
        expected = np.linalg.norm(skeleton.offsets[j])
        np.testing.assert_allclose(length, expected, rtol=1e-6, atol=1e-9, err_msg=skeleton.joints[j])


@needs_data
def test_zero_angles_give_the_rest_pose(asf_amc, bvh):
    for asf in ("07_01", "35_01"):
        skeleton = asf_amc[asf][0]
        positions = asf_forward_kinematics(skeleton, _zero_motion(skeleton))
        np.testing.assert_allclose(positions, np.broadcast_to(_asf_rest_pose(skeleton), positions.shape), atol=1e-12)
    for skeleton, *_ in bvh.values():
        positions = bvh_forward_kinematics(skeleton, np.zeros((2, skeleton.n_channels)))
        rest = np.zeros((len(skeleton.joints), 3))
        for j, parent in enumerate(skeleton.parents):
            rest[j] = skeleton.offsets[j] + (rest[parent] if parent >= 0 else 0)
        np.testing.assert_allclose(positions, np.broadcast_to(rest, positions.shape), atol=1e-12)


@needs_data
def test_root_follows_the_translation_channels(asf_amc, bvh):
    for skeleton, motion, positions in asf_amc.values():
        translation = motion.values["root"][:, [skeleton.root_order.index(t) for t in ("tx", "ty", "tz")]]
        np.testing.assert_array_equal(positions[:, 0], translation)
    for _, motion, _, positions in bvh.values():
        np.testing.assert_array_equal(positions[:, 0], motion[:, :3])


@needs_data
def test_root_rotation_turns_the_whole_body(asf_amc):
    skeleton = asf_amc["07_01"][0]
    motion = _zero_motion(skeleton, n=1)
    motion.values["root"][0, skeleton.root_order.index("ry")] = np.pi / 2
    positions = asf_forward_kinematics(skeleton, motion)[0]
    rest = _asf_rest_pose(skeleton)
    np.testing.assert_allclose(positions, rest @ axis_rotation("y", np.pi / 2).T, atol=1e-12)


def test_asf_rotation_conventions(tmp_path):
    """Axis C = Rz(90) turns the bone's rx into a rotation about global y; fixed-axis rx then ry."""
    asf = tmp_path / "t.asf"
    asf.write_text(
        ":units\n  length 1\n  angle deg\n:root\n  order TX TY TZ RX RY RZ\n  axis XYZ\n  position 0 0 0\n"
        "  orientation 0 0 0\n:bonedata\n  begin\n    id 1\n    name a\n    direction 0 0 1\n    length 2\n"
        "    axis 0 0 90 XYZ\n    dof rx\n  end\n  begin\n    id 2\n    name b\n    direction 0 1 0\n    length 1\n"
        "    axis 0 0 0 XYZ\n    dof rx ry\n  end\n:hierarchy\n  begin\n    root a\n    a b\n  end\n"
    )
    skeleton = read_asf(asf)
    amc = tmp_path / "t.amc"
    amc.write_text(":FULLY-SPECIFIED\n:DEGREES\n1\nroot 1 2 3 0 0 0\na 90\nb -90 90\n")
    positions = asf_forward_kinematics(skeleton, read_amc(amc, skeleton))[0]
    np.testing.assert_allclose(positions[0], [1, 2, 3], atol=1e-12)
    # a: rotation about global y by 90 deg takes (0, 0, 2) to (2, 0, 0)
    np.testing.assert_allclose(positions[1], [3, 2, 3], atol=1e-12)
    # b: its own Ry(90) @ Rx(-90) takes (0, 1, 0) to (0, 0, -1) -> (-1, 0, 0); then a's Ry(90) -> (0, 0, 1)
    np.testing.assert_allclose(positions[2] - positions[1], [0, 0, 1], atol=1e-12)


def test_bvh_rotation_convention_is_intrinsic(tmp_path):
    path = tmp_path / "t.bvh"
    path.write_text(
        "HIERARCHY\nROOT r\n{\n  OFFSET 0 0 0\n"
        "  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation\n"
        "  JOINT a\n  {\n    OFFSET 0 1 0\n    CHANNELS 3 Zrotation Yrotation Xrotation\n    JOINT b\n    {\n"
        "      OFFSET 0 1 0\n      CHANNELS 3 Zrotation Yrotation Xrotation\n      End Site\n      {\n"
        "        OFFSET 0 1 0\n      }\n    }\n  }\n}\nMOTION\nFrames: 1\nFrame Time: 0.5\n"
        "1 2 3 0 0 0 0 90 90 0 0 0\n"
    )
    skeleton, motion, frame_time = read_bvh(path)
    assert frame_time == 0.5 and skeleton.joints == ["r", "a", "b"] and len(skeleton.end_sites) == 1
    positions = bvh_forward_kinematics(skeleton, motion)[0]
    np.testing.assert_allclose(positions, [[1, 2, 3], [1, 3, 3], [2, 3, 3]], atol=1e-12)  # Ry(90) Rx(90) (0,1,0)


# ----------------------------------------------------------------------------------------- malformed
def _copy(src: Path, dst: Path, edit) -> Path:
    with open(src, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    dst.write_text("".join(edit(lines)), newline="")
    return dst


def _line_of(lines, pattern, start=0):
    return next(i for i in range(start, len(lines)) if re.match(pattern, lines[i]))


def _raises_at(func, path: Path, line: int, what: str):
    with pytest.raises(ValueError, match=rf"{re.escape(path.name)}, line {line}\b.*{what}"):
        func()


@needs_data
def test_malformed_amc(tmp_path):
    asf_path = DATA / AMC_TRIALS["07_01"][0]
    skeleton = read_asf(asf_path)
    src = DATA / AMC_TRIALS["07_01"][1]
    lines = src.read_text().splitlines(keepends=True)
    frame2 = _line_of(lines, r"2\s*$")

    bad = _copy(src, tmp_path / "truncated.amc", lambda ls: ls[:-3])
    _raises_at(lambda: read_amc(bad, skeleton), bad, len(lines) - 3, "ends inside frame 316.*lfoot")

    target = _line_of(lines, "lhumerus", frame2)
    bad = _copy(src, tmp_path / "unknown.amc", lambda ls: [*ls[:target], "lelbow 1 2 3\n", *ls[target + 1 :]])
    _raises_at(lambda: read_amc(bad, skeleton), bad, target + 1, "unknown bone 'lelbow'")

    target = _line_of(lines, "rradius", frame2)
    bad = _copy(src, tmp_path / "count.amc", lambda ls: [*ls[:target], "rradius 1 2\n", *ls[target + 1 :]])
    _raises_at(lambda: read_amc(bad, skeleton), bad, target + 1, "channel count mismatch.*'rradius' has 1 dof")

    target = _line_of(lines, "thorax", frame2)
    bad = _copy(src, tmp_path / "nan.amc", lambda ls: [*ls[:target], "thorax 1 x2 3\n", *ls[target + 1 :]])
    _raises_at(lambda: read_amc(bad, skeleton), bad, target + 1, "non-numeric value 'x2'")

    # a bone the ASF gives no degrees of freedom, and a frame missing a bone in the middle of the file
    bad = _copy(src, tmp_path / "nodof.amc", lambda ls: [*ls[: frame2 + 1], "lhipjoint 0 0 0\n", *ls[frame2 + 1 :]])
    _raises_at(lambda: read_amc(bad, skeleton), bad, frame2 + 2, "no degrees of freedom")
    bad = _copy(src, tmp_path / "gap.amc", lambda ls: [*ls[:target], *ls[target + 1 :]])
    _raises_at(lambda: read_amc(bad, skeleton), bad, frame2 + 1, "frame 2 lacks thorax")


@needs_data
def test_malformed_bvh(tmp_path):
    src = DATA / BVH_TRIALS["111_37"]
    lines = src.read_text().splitlines()
    first = _line_of(lines, r"Frame Time") + 1  # index of the first motion line (T-pose)

    bad = _copy(src, tmp_path / "truncated.bvh", lambda ls: ls[:-1])
    _raises_at(lambda: read_bvh(bad), bad, len(lines) - 1, "ends after 324 of 325 frames")

    def cut_last(ls):
        return [*ls[:-1], " ".join(ls[-1].split()[:50]) + "\r\n"]

    bad = _copy(src, tmp_path / "cut.bvh", cut_last)
    _raises_at(lambda: read_bvh(bad), bad, len(lines), "channel count mismatch.*50 values.*96 channels")

    def drop_value(ls):
        return [*ls[: first + 5], " ".join(ls[first + 5].split()[1:]) + "\r\n", *ls[first + 6 :]]

    bad = _copy(src, tmp_path / "count.bvh", drop_value)
    _raises_at(lambda: read_bvh(bad), bad, first + 6, "frame 6 has 95 values")

    def letter(ls):
        values = ls[first + 2].split()
        values[10] = "1.2.3"
        return [*ls[: first + 2], " ".join(values) + "\r\n", *ls[first + 3 :]]

    bad = _copy(src, tmp_path / "nan.bvh", letter)
    _raises_at(lambda: read_bvh(bad), bad, first + 3, "non-numeric value '1.2.3'")

    target = _line_of(lines, r"\s*CHANNELS 3", 0)
    bad = _copy(
        src,
        tmp_path / "channel.bvh",
        lambda ls: [*ls[:target], "CHANNELS 3 Zrotation Wrotation Xrotation\r\n", *ls[target + 1 :]],
    )
    _raises_at(lambda: read_bvh(bad), bad, target + 1, "unknown channel 'Wrotation'")


# ---------------------------------------------------------------------------------------------- AnnData
@needs_data
def test_walk_anndata():
    adata = scn.datasets.mocap("walk")
    assert adata.shape == (sum(FRAMES[t] for t in WALK07), 93)
    assert adata.X.dtype == np.float32
    assert list(adata.obs["trial"].cat.categories) == WALK07
    assert adata.obs["trial"].value_counts().to_dict() == {t: FRAMES[t] for t in WALK07}
    assert adata.var_names[:4].tolist() == ["root_x", "root_y", "root_z", "lhipjoint_x"]
    assert "lhumerus_x" in adata.var_names
    assert (adata.var["joint"] + "_" + adata.var["axis"]).tolist() == adata.var_names.tolist()
    skeleton = adata.uns["skeleton"]
    assert len(skeleton["joints"]) == 31 and skeleton["parents"][0] == -1 and len(skeleton["bones"]) == 30
    for trial, group in adata.obs.groupby("trial", observed=True):
        assert group["time"].iloc[0] == 0
        np.testing.assert_allclose(np.diff(group["time"]), 1 / 120)
        assert group["frame"].tolist() == list(range(1, FRAMES[trial] + 1))


@needs_data
def test_options_fps_root_and_scale(asf_amc):
    positions = asf_amc["07_02"][2]
    adata = scn.datasets.mocap("walk", trial="07_02", fps=30, keep_root_translation=False, unit_scale=2.0)
    assert adata.uns["mocap"]["frame_step"] == 4
    kept = positions[::4]
    assert adata.shape == (len(kept), 93)
    np.testing.assert_allclose(np.diff(adata.obs["time"]), 4 / 120)
    np.testing.assert_array_equal(adata.X[:, :3], 0)
    expected = 2.0 * (kept - kept[:, :1]).reshape(len(kept), -1)
    np.testing.assert_allclose(adata.X, expected, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(adata.obsm["root_position"], 2.0 * kept[:, 0], rtol=1e-6)
    assert _frame_step(120, 45) == 3 and _frame_step(120, 7) == 17 and _frame_step(120, 500) == 1
    with pytest.raises(ValueError, match="positive"):
        _frame_step(120, 0)


@needs_data
def test_bvh_anndata(tmp_path):
    wave = scn.datasets.mocap("wave")
    assert wave.shape == (324, 93)
    assert wave.obs["frame"].iloc[0] == 2  # the converter's T-pose (frame 1) is dropped
    np.testing.assert_allclose(np.diff(wave.obs["time"]), 1 / 120, rtol=1e-9)
    assert "LeftArm_x" in wave.var_names and wave.uns["skeleton"]["joints"][0] == "Hips"
    golf = scn.datasets.mocap("golf", drop_first_bvh_frame=False)
    assert golf.shape == (377, 93) and list(golf.obs["trial"].cat.categories) == ["63_07"]
    golf.write_h5ad(tmp_path / "golf.h5ad")
    back = ad.read_h5ad(tmp_path / "golf.h5ad")
    assert list(back.uns["skeleton"]["joints"]) == golf.uns["skeleton"]["joints"]
    np.testing.assert_array_equal(np.asarray(back.uns["skeleton"]["bones"]), golf.uns["skeleton"]["bones"])


@needs_data
def test_explicit_paths(tmp_path):
    shutil.copy(DATA / "asfamc/subject35_walk/35.asf", tmp_path / "35.asf")
    shutil.copy(DATA / "asfamc/subject35_walk/35_01.amc", tmp_path / "35_01.amc")
    by_path = scn.datasets.mocap(path=tmp_path / "35_01.amc")
    by_name = scn.datasets.mocap("walk35")
    np.testing.assert_array_equal(by_path.X, by_name.X)
    assert list(by_path.obs["trial"].cat.categories) == ["35_01"]
    bvh = scn.datasets.mocap(path=[DATA / BVH_TRIALS["111_37"]], fps=60)
    assert bvh.shape == (162, 93) and bvh.uns["mocap"]["frame_step"] == 2


def test_bad_names():
    with pytest.raises(ValueError, match="Unknown motion 'run'; known motions: walk, walk35, wave, golf"):
        scn.datasets.mocap("run", data_dir="/nonexistent")
    with pytest.raises(ValueError, match="Unknown trial"):
        scn.datasets.mocap("walk", trial="07_03", data_dir="/nonexistent")
    with pytest.raises(ValueError, match="known motions"):
        scn.datasets.mocap()
