import numpy as np
import pytest

from helpers import metaimage


def _rotation(axis_angle=0.4):
    c, s = np.cos(axis_angle), np.sin(axis_angle)
    rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return rz @ rx


def test_read_mhd_orders_and_values(tmp_path):
    array = (np.arange(4 * 5 * 6, dtype=np.int16) - 60).reshape(4, 5, 6)   # (z, y, x), non-cubic
    spacing, origin = (2.5, 0.7, 0.6), (-120.5, 33.0, -300.25)
    path = metaimage.write_mhd(tmp_path / "a.mhd", array, spacing, origin)
    vol, sp, org, d = metaimage.read_mhd(path)
    assert vol.shape == (4, 5, 6) and vol.dtype == np.int16
    np.testing.assert_array_equal(vol, array)
    np.testing.assert_allclose(sp, spacing)          # (z, y, x)
    np.testing.assert_allclose(org, origin)          # (x, y, z)
    np.testing.assert_allclose(d, np.eye(3))
    info = metaimage.read_info(path)
    assert info["shape"] == (4, 5, 6) and info["element_type"] == "MET_SHORT"


def test_world_voxel_identity_direction():
    spacing, origin = (2.0, 0.5, 0.8), (10.0, -20.0, -100.0)
    # voxel (z=3, y=4, x=5) sits at x = 10 + 5*0.8, y = -20 + 4*0.5, z = -100 + 3*2
    world = metaimage.voxel_to_world([3, 4, 5], origin, spacing)
    np.testing.assert_allclose(world, [14.0, -18.0, -94.0])
    np.testing.assert_allclose(metaimage.world_to_voxel(world, origin, spacing), [3, 4, 5])


def test_world_voxel_round_trip_rotated_anisotropic(tmp_path):
    import SimpleITK as sitk

    d = _rotation()
    spacing, origin = (2.5, 0.7, 0.6), (-12.0, 40.0, 7.5)
    path = metaimage.write_mhd(tmp_path / "r.mhd", np.zeros((4, 5, 6), np.int16), spacing, origin, d)
    vol, sp, org, direction = metaimage.read_mhd(path)
    np.testing.assert_allclose(direction, d, atol=1e-12)
    zyx = np.array([[1.0, 2.0, 3.0], [0.0, 4.5, 5.0], [3.0, 0.0, 0.0]])
    world = metaimage.voxel_to_world(zyx, org, sp, direction)
    image = sitk.ReadImage(str(path))   # SimpleITK's own index -> physical point (index in x, y, z)
    for v, w in zip(zyx, world):
        np.testing.assert_allclose(image.TransformContinuousIndexToPhysicalPoint(v[::-1].tolist()), w, atol=1e-9)
    np.testing.assert_allclose(metaimage.world_to_voxel(world, org, sp, direction), zyx, atol=1e-9)


@pytest.mark.parametrize("damage", ["truncate", "header", "missing"])
def test_broken_files_raise_value_error_naming_file(tmp_path, damage):
    path = metaimage.write_mhd(tmp_path / "b.mhd", np.ones((3, 4, 5), np.int16), (1, 1, 1), (0, 0, 0))
    raw = path.with_suffix(".raw")
    if damage == "truncate":
        raw.write_bytes(raw.read_bytes()[:10])
    elif damage == "header":
        path.write_bytes(b"\x00garbage\n")
    else:
        raw.unlink()
    with pytest.raises(ValueError, match="b.mhd"):
        metaimage.read_mhd(path)
    with pytest.raises(ValueError, match="b.mhd"):
        metaimage.read_info(path)
