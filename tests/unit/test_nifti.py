"""NIfTI reading: canonical orientation, resampling in world mm, bad files."""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers import nifti

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def _oriented_affine(codes: str, voxel=(2.0, 3.0, 2.5), origin=(10.0, -20.0, 5.0)) -> np.ndarray:
    """An affine whose voxel axes point towards ``codes`` (e.g. "PSR")."""
    world = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    affine = np.eye(4)
    affine[:3, :3] = 0
    for k, code in enumerate(codes):
        axis, sign = world[code]
        affine[axis, k] = sign * voxel[k]
    affine[:3, 3] = origin
    return affine


def _save(tmp_path, name, array, affine):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


@pytest.mark.parametrize("codes", ["LAS", "PSR", "ILP", "RAS"])
def test_canonical_keeps_each_value_at_its_world_position(tmp_path, codes):
    rng = np.random.default_rng(0)
    array = rng.normal(size=(7, 9, 11)).astype(np.float32)
    affine = _oriented_affine(codes)
    path = _save(tmp_path, f"s.{'nii.gz' if codes != 'RAS' else 'nii'}", array, affine)
    canon, canon_affine = nifti.load_canonical(path)
    assert canon.dtype == np.float32
    assert "".join(nib.aff2axcodes(canon_affine)) == "RAS"
    assert np.all(np.diag(canon_affine)[:3] > 0)
    for ijk in rng.integers(0, array.shape, size=(20, 3)):
        world = nifti.apply_affine(affine, ijk)
        new = np.round(nifti.apply_affine(np.linalg.inv(canon_affine), world)).astype(int)
        assert canon[tuple(new)] == pytest.approx(array[tuple(ijk)])


def _blob(shape, affine, centre_mm, sigma_mm=6.0):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = nifti.apply_affine(affine, ijk)
    return np.exp(-((world - centre_mm) ** 2).sum(-1) / (2 * sigma_mm**2)).astype(np.float32)


def _centroid_mm(array, affine):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in array.shape], indexing="ij"), axis=-1)
    weights = array / array.sum()
    return (nifti.apply_affine(affine, ijk) * weights[..., None]).sum(axis=(0, 1, 2))


@pytest.mark.parametrize("codes", ["RAS", "LPI"])
def test_resample_keeps_world_positions(codes):
    affine = _oriented_affine(codes, voxel=(1.0, 1.0, 1.5), origin=(-30.0, 40.0, -25.0))
    shape = (60, 60, 40)
    centre = nifti.apply_affine(affine, [31.3, 24.6, 17.2])
    array = _blob(shape, affine, centre)
    out, out_affine = nifti.resample(array, affine, 2.5)
    assert np.allclose(nifti.voxel_sizes(out_affine), 2.5, atol=0.1)
    assert out.dtype == np.float32 and out.shape == (24, 24, 24)
    assert np.allclose(_centroid_mm(out, out_affine), centre, atol=0.3)
    # the field of view is kept: first and last voxel edges stay in place
    edge_old = nifti.apply_affine(affine, [-0.5, -0.5, -0.5])
    edge_new = nifti.apply_affine(out_affine, [-0.5, -0.5, -0.5])
    assert np.allclose(edge_old, edge_new, atol=1e-6)


def test_resample_to_grid_identity_and_oblique_target():
    affine = _oriented_affine("RAS", voxel=(2.0, 2.0, 2.0), origin=(-40, -40, -40))
    centre = np.array([3.0, -5.0, 8.0])
    array = _blob((41, 41, 41), affine, centre)
    same = nifti.resample_to_grid(array, affine, affine, array.shape, antialias=False)
    assert np.allclose(same, array, atol=1e-6)
    angle = np.deg2rad(20)
    rot = np.eye(4)
    rot[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    target = rot @ _oriented_affine("PSR", voxel=(2.0, 2.0, 2.0), origin=(-45, 45, -45))
    tilted = nifti.resample_to_grid(array, affine, target, (46, 46, 46))
    assert np.allclose(_centroid_mm(tilted, target), centre, atol=0.5)


def test_corrupt_files_raise_one_clear_error(tmp_path):
    array = np.arange(20 * 20 * 20, dtype=np.int16).reshape(20, 20, 20)
    for name in ("cut.nii", "cut.nii.gz"):
        path = _save(tmp_path, name, array, np.eye(4))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(nifti.NiftiReadError, match=name):
            nifti.read_header(path)
        with pytest.raises(nifti.NiftiReadError, match=name):
            nifti.load_canonical(path)
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"this is not a NIfTI file" * 10)
    with pytest.raises(nifti.NiftiReadError, match="junk.nii"):
        nifti.read_header(junk)
    assert issubclass(nifti.NiftiReadError, ValueError)


def test_read_header_reports_facts_without_loading(tmp_path):
    path = _save(tmp_path, "x.nii.gz", np.zeros((5, 6, 7), np.int16), _oriented_affine("LAS"))
    header = nifti.read_header(path)
    assert header["shape"] == (5, 6, 7)
    assert header["orientation"] == "LAS"
    assert header["voxel_size_mm"] == (2.0, 3.0, 2.5)
    assert header["format"] == "nii.gz"
    assert nifti.stem(path) == "x" and nifti.stem("a/b.NII") == "b"


@pytest.mark.skipif(not NIBABEL_DATA.is_dir(), reason="nibabel's test data is not installed")
def test_real_files_shipped_with_nibabel_read_or_give_a_reason():
    files = sorted(p for p in NIBABEL_DATA.iterdir() if nifti.is_nifti(p))
    assert files
    read = 0
    for path in files:
        try:
            header = nifti.read_header(path)
        except nifti.NiftiReadError as err:
            assert path.name in str(err) and len(str(err)) > len(str(path))
            continue
        array, affine = nifti.load_canonical(path)
        assert array.shape == tuple(header["shape"]) or sorted(array.shape) == sorted(header["shape"])
        assert "".join(nib.aff2axcodes(affine)) == "RAS"
        read += 1
    assert read >= 2, "nibabel's anatomical.nii and friends should load"


def test_foreground_box_and_slices_figure():
    array = np.zeros((30, 30, 30), np.float32)
    array[5:20, 8:25, 10:15] = 1.0
    lo, hi = nifti.bounding_box(nifti.foreground_mask(array))
    assert np.all(np.abs(lo - [5, 8, 10]) <= 1) and np.all(np.abs(hi - [19, 24, 14]) <= 1)
    assert nifti.bounding_box(np.zeros((4, 4, 4), bool)) is None
    fig = nifti.orthogonal_slices(array, title="box")
    assert len(fig.axes) == 3
