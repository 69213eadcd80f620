"""HCP-style layout: index counts, volume loading on one world grid, region mask, split."""
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from helpers import datasets, hcp, nifti, synthetic


def _affine(codes, voxel, centre=(0.0, -10.0, 5.0), shape=(24, 28, 22)):
    world = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    affine = np.eye(4)
    affine[:3, :3] = 0
    for k, code in enumerate(codes):
        axis, sign = world[code]
        affine[axis, k] = sign * voxel
    # place the grid centre at `centre`
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


def _brain(shape, affine, label):
    """An ellipsoid 'brain' (world mm) with a dark spot at x = -15 for class 1."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = nifti.apply_affine(affine, ijk)
    inside = (((world - [0, -10, 5]) / [30, 36, 28]) ** 2).sum(-1) <= 1
    volume = np.where(inside, 800.0, 0.0)
    if label == 1:
        volume[((world - [-15, -10, 5]) ** 2).sum(-1) <= 8**2] = 300.0
    return volume.astype(np.int16)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Eight subjects: mixed orientations, voxel sizes, formats; class 0, no row, corrupt files."""
    root = tmp_path_factory.mktemp("hcp_tiny")
    (root / "brain_nii").mkdir()
    specs = [("100001", "RAS", 3.0, ".nii", 1), ("100002", "LAS", 3.0, ".nii.gz", -1),
             ("100003", "PSR", 2.5, ".nii", 1), ("100004", "ILA", 3.0, ".nii.gz", -1),
             ("100005", "RAS", 3.0, ".nii.gz", 0), ("100006", "LPS", 3.0, ".nii", None),
             ("100007", "RAS", 3.0, ".nii", 1), ("100008", "RAS", 3.0, ".nii.gz", -1)]
    rows = []
    for subject, codes, voxel, ext, label in specs:
        shape = tuple(int(round(72 / voxel)) for _ in range(3))
        affine = _affine(codes, voxel, shape=shape)
        path = root / "brain_nii" / f"{subject}{ext}"
        nib.save(nib.Nifti1Image(_brain(shape, affine, label or -1), affine), str(path))
        if label is not None:
            rows.append(f"{subject},{label}")
    rows.append("999999,1")                                    # a row without a file
    (root / "subjects.csv").write_text("Subject,class\n" + "\n".join(rows) + "\n")
    bad = root / "brain_nii" / "100007.nii"                    # truncated: caught by the header check
    bad.write_bytes(bad.read_bytes()[:1000])
    gz = root / "brain_nii" / "100008.nii.gz"                  # damaged deflate data, intact size trailer
    data = bytearray(gz.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 4):       # the last 8 bytes (CRC, size) stay intact
        data[i] ^= 0xFF
    gz.write_bytes(bytes(data))
    (root / "brain_nii" / "notes.txt").write_text("not a volume")
    truth = {"region": {"center_mm": [-15.0, -10.0, 5.0], "radius_mm": 8.0}}
    (root / synthetic.GROUND_TRUTH).write_text(json.dumps(truth))
    return root


def test_index_counts_and_statuses(tiny):
    index = hcp.index_subjects(tiny)
    assert list(index["subject"]) == [f"10000{i}" for i in range(1, 9)]
    status = dict(zip(index["subject"], index["status"]))
    assert status["100005"] == "unlabelled" and status["100006"] == "unlabelled"
    assert status["100007"] == "unreadable"
    assert "truncated" in index.set_index("subject").loc["100007", "error"]
    assert dict(zip(index["subject"], index["label"]))["100002"] == -1
    assert index.attrs["n_missing_files"] == 1
    assert hcp.summary(index) == {"n_subjects": 8, "n_labelled": 5, "n_unreadable": 1, "n_unlabelled": 2}


def test_load_volumes_one_world_grid_and_load_time_failures(tiny):
    volumes, table, affine = hcp.load_volumes(tiny, volume_size=16, n_jobs=1)
    assert volumes.dtype == np.float32 and volumes.shape == (4, 16, 16, 16)
    assert list(table["subject"]) == ["100001", "100002", "100003", "100004"]
    assert list(table["label"]) == [1, -1, 1, -1]
    # the damaged .nii.gz passed the header check and failed at load time: recorded, counted
    assert table.attrs["n_unreadable"] == 2 and table.attrs["n_labelled"] == 4
    assert table.attrs["n_unlabelled"] == 2 and table.attrs["n_subjects"] == 8
    assert "100008" in table.attrs["unreadable"]
    # same anatomy stored in different orientations lands on the same cube voxels
    assert np.corrcoef(volumes[1].ravel(), volumes[3].ravel())[0, 1] > 0.97
    assert np.corrcoef(volumes[0].ravel(), volumes[2].ravel())[0, 1] > 0.9
    # intensities: the brain's median is 1
    assert 0.9 < np.median(volumes[1][volumes[1] > 0.5]) < 1.3
    # the affine maps the cube to world mm: the brain centre is at the centre of mass
    ijk = np.argwhere(volumes[1] > 0.5).mean(axis=0)
    assert np.allclose(nifti.apply_affine(affine, ijk), [0, -10, 5], atol=3.0)
    # the dark spot of class 1 sits where the region mask is
    mask = hcp.region_mask(tiny, 16, affine=affine)
    assert mask.shape == (16, 16, 16) and mask.any()
    assert volumes[0][mask].mean() < volumes[1][mask].mean() - 0.15
    # a second call is served from the cache and identical
    again, table2, affine2 = hcp.load_volumes(tiny, volume_size=16, n_jobs=1)
    assert np.array_equal(again, volumes) and np.array_equal(affine2, affine)
    assert table2.attrs["n_unreadable"] == 2


def test_crop_box_in_mm(tiny):
    box = ((-30, 30), (-40, 20), (-20, 30))
    volumes, _, affine = hcp.load_volumes(tiny, volume_size=12, crop_mm=box, n_jobs=1)
    assert volumes.shape[1:] == (12, 12, 12)
    corner_lo = nifti.apply_affine(affine, [0, 0, 0])
    corner_hi = nifti.apply_affine(affine, [11, 11, 11])
    assert np.all(corner_lo >= np.array(box)[:, 0] - 1e-6) and np.all(corner_hi <= np.array(box)[:, 1] + 1e-6)
    assert np.all(corner_lo - np.array(box)[:, 0] < 2.0)


def test_split_is_stratified_and_disjoint(tiny):
    import pandas as pd

    table = pd.DataFrame({"subject": [str(i) for i in range(40)], "label": [1, -1] * 20})
    train, test = hcp.split(table, test_size=0.3, seed=0)
    assert len(test) == 12 and len(train) == 28 and not set(train) & set(test)
    assert table["label"].iloc[test].value_counts().to_dict() == {1: 6, -1: 6}
    again = hcp.split(table, test_size=0.3, seed=0)
    assert np.array_equal(again[1], test)
    with pytest.raises(ValueError):
        hcp.split(pd.concat([table, table.iloc[:1]]), seed=0)


def test_matrix_roundtrip():
    rng = np.random.default_rng(0)
    volumes = rng.random((3, 5, 5, 5)).astype(np.float32)
    mask = np.zeros((5, 5, 5), bool)
    mask[1:4, 1:4, 1:4] = True
    X = hcp.to_matrix(volumes, mask)
    assert X.shape == (3, 27) and X.dtype == np.float32
    assert np.array_equal(hcp.from_matrix(X, mask)[:, mask], volumes[:, mask])


def test_missing_or_empty_folder_names_the_layout(tmp_path):
    with pytest.raises(datasets.DatasetLayoutError, match="subjects.csv"):
        hcp.index_subjects(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(datasets.DatasetLayoutError, match="brain_nii"):
        hcp.index_subjects(tmp_path / "empty")


def test_index_matches_the_generator_ground_truth():
    root = datasets.resolve("hcp", None, "smoke", 0)
    truth = synthetic.load_ground_truth(root)
    index = hcp.index_subjects(root)
    assert hcp.summary(index) == {k: truth[k] for k in ("n_subjects", "n_labelled", "n_unreadable", "n_unlabelled")}
    assert index.attrs["n_missing_files"] == truth["n_missing_files"]
    assert set(index.loc[index["status"] == "unreadable", "subject"]) == set(truth["corrupt"])
    assert {"nii", "nii.gz"} <= set(index["format"].dropna())
    assert index["orientation"].nunique() >= 3
    # storage metadata must not predict the class
    ok = index[index["status"] == "ok"]
    for column in ("format", "orientation"):
        shares = ok.groupby(column)["label"].mean().abs()
        assert (shares[ok.groupby(column).size() >= 6] < 0.75).all()
    assert Path(root, "subjects.csv").is_file()


def test_region_mask_without_ground_truth_is_none(tiny, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy, ignore=shutil.ignore_patterns(".medimg_cache", synthetic.GROUND_TRUTH))
    _, _, affine = hcp.load_volumes(tiny, volume_size=16, n_jobs=1)
    assert hcp.region_mask(copy, 16, affine=affine) is None     # a real download: nothing to score against


def test_grid_box_mm_puts_another_dataset_on_the_same_grid(tiny):
    _, _, affine = hcp.load_volumes(tiny, volume_size=16, n_jobs=1)
    box = hcp.grid_box_mm(affine, 16)
    again, table, affine2 = hcp.load_volumes(tiny, volume_size=16, crop_mm=box, n_jobs=1)
    np.testing.assert_allclose(affine2, affine, atol=1e-9)
    assert again.shape[1:] == (16, 16, 16) and len(table) == 4
