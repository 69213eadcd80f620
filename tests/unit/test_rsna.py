"""The RSNA generator, labels adapter and cleaning (helpers.synthetic.rsna, helpers.rsna)."""
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import dicom, rsna, synthetic


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsna") / "rsna"
    truth = synthetic.generate("rsna", root, "smoke", seed=0)
    return root, truth


def _stat(root: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and ".medimg_cache" not in p.parts}


def test_layout_is_the_public_one(smoke):
    root, truth = smoke
    files = sorted((root / "stage_2_train").iterdir())
    assert len(files) == truth["n_files"]
    assert all(re.fullmatch(r"ID_[0-9a-f]{9}\.dcm", f.name) for f in files)
    csv = pd.read_csv(root / "stage_2_train.csv")
    assert list(csv.columns) == ["ID", "Label"]
    assert len(csv) == truth["n_csv_rows"] and csv.duplicated().sum() == truth["n_duplicate_rows"] > 0
    subtypes = csv["ID"].str.rsplit("_", n=1).str[1]
    assert set(subtypes) == set(rsna.LABELS)
    assert csv.drop_duplicates()["ID"].str.rsplit("_", n=1).str[0].value_counts().eq(6).all()


def test_generation_is_deterministic(smoke, tmp_path):
    root, truth = smoke
    again = synthetic.generate("rsna", tmp_path / "again", "smoke", seed=0)
    assert again == truth
    assert (tmp_path / "again" / "stage_2_train.csv").read_bytes() == (root / "stage_2_train.csv").read_bytes()


def test_ground_truth_matches_an_independent_read(smoke):
    root, truth = smoke
    index = dicom.index_dicoms(root / "stage_2_train", n_jobs=1, cache=False)
    ok = index[index["error"].isna()]
    assert len(ok) == truth["n_images"] and len(index) - len(ok) == truth["n_broken"]
    assert ok["PatientID"].nunique() == truth["n_patients"]
    assert sum(dicom.is_defective(r) for _, r in ok.iterrows()) == truth["n_defective"]
    low = sum(rsna.brain_fraction(dicom.read_hu(p)) < 0.02 for p in ok["path"])
    assert low == truth["n_low_brain"]
    groups = ok.groupby(["BitsStored", "PixelRepresentation"]).size()
    assert {(12, 0), (12, 1), (16, 1)} <= set(groups.index)
    assert ok["WindowCenter1"].notna().any() and ok["WindowCenter1"].isna().any()   # sometimes multi-valued


def test_defective_slices_have_background_mode_3096_and_repair_to_air(smoke):
    root, _ = smoke
    index = dicom.index_dicoms(root / "stage_2_train", n_jobs=1)
    row = next(r for _, r in index[index["error"].isna()].iterrows() if dicom.is_defective(r))
    import pydicom

    stored = pydicom.dcmread(row["path"]).pixel_array
    values, counts = np.unique(stored, return_counts=True)
    assert values[np.argmax(counts)] == 3096
    hu = dicom.read_hu(row["path"])
    assert np.median(hu[:4]) == pytest.approx(-1000, abs=30)     # the top rows are air
    assert rsna.brain_fraction(hu) > rsna.brain_fraction(dicom.read_hu(row["path"], repair=False))


def test_lesion_boxes_lie_inside_the_images(smoke):
    root, truth = smoke
    boxes = pd.read_csv(root / truth["lesions_csv"])
    assert set(boxes["subtype"]) == set(rsna.SUBTYPES)
    assert (boxes["row1"] > boxes["row0"]).all() and (boxes["col1"] > boxes["col0"]).all()
    assert boxes[["row0", "col0"]].min().min() >= 0 and boxes[["row1", "col1"]].max().max() <= 1.25 * truth["image_size"]


def test_load_labels_pivots_and_drops_duplicates(smoke):
    root, truth = smoke
    labels = rsna.load_labels(root)
    assert list(labels.columns) == ["image_id", *rsna.LABELS]
    assert len(labels) == truth["n_files"] - 1             # every slice, not the impostor
    assert labels.attrs["n_duplicate_rows"] == truth["n_duplicate_rows"]
    assert labels.attrs["n_incomplete"] == 0
    assert labels["any"].equals(labels[list(rsna.SUBTYPES)].max(axis=1))


def test_join_labels_uses_the_image_id_not_the_row_order():
    index = pd.DataFrame({"path": ["/d/ID_a.dcm", "/d/ID_b.dcm", "/d/ID_c.dcm"], "error": [None, None, "x"],
                          "SOPInstanceUID": ["ID_a", "ID_b", None]})
    labels = pd.DataFrame({"image_id": ["ID_c", "ID_b", "ID_a"], **{k: [1, 0, 1] for k in rsna.LABELS}})
    labels.loc[labels["image_id"] == "ID_b", "epidural"] = np.nan
    joined = rsna.join_labels(index, labels)
    assert joined["image_id"].tolist() == ["ID_a", "ID_b", "ID_c"]       # the stem when the header is unreadable
    assert joined["any"].tolist() == [1, 0, 1]
    assert joined["labelled"].tolist() == [True, False, True]
    shuffled = rsna.join_labels(index, labels.sample(frac=1, random_state=0))
    pd.testing.assert_frame_equal(joined, shuffled)


def test_brain_fraction_counts_strictly_inside():
    hu = np.array([[0.0, 80.0, 40.0, -5.0], [79.9, 0.1, 1000.0, -1000.0]])
    assert rsna.brain_fraction(hu) == pytest.approx(3 / 8)
    assert rsna.brain_fraction(hu, lo=-10, hi=100) == pytest.approx(6 / 8)


def test_head_crop_is_a_square_around_the_largest_object():
    hu = np.full((100, 120), -1000.0, np.float32)
    rr, cc = np.mgrid[:100, :120]
    hu[((rr - 40) / 30) ** 2 + ((cc - 70) / 20) ** 2 < 1] = 30.0      # the head
    hu[95:98, 5:15] = 40.0                                              # a detached head-rest
    r0, c0, size = rsna.head_crop(hu)
    assert size >= 60 and size < 80
    assert r0 <= 10 and r0 + size >= 70 and c0 <= 50 and c0 + size >= 90
    crop = rsna.crop_square(hu, (r0, c0, size))
    assert crop.shape == (size, size)
    assert rsna.head_crop(np.full((50, 50), -1000.0)) == (0, 0, 50)


def test_crop_square_fills_outside_with_air_and_resize():
    hu = np.arange(16, dtype=np.float32).reshape(4, 4)
    crop = rsna.crop_square(hu, (-1, 2, 3))
    assert crop[0].tolist() == [-1000.0] * 3
    assert crop[1].tolist() == [2.0, 3.0, -1000.0]
    assert rsna.resize(np.ones((40, 30)), 16).shape == (16, 16)


def test_naive_rule_breaks_the_signed_12_bit_group(smoke):
    root, _ = smoke
    index = dicom.index_dicoms(root / "stage_2_train", n_jobs=1)
    signed = index[(index["PixelRepresentation"] == 1) & (index["BitsStored"] == 12) & index["error"].isna()]
    path = signed.loc[signed.index[len(signed) // 2], "path"]
    correct, naive = dicom.read_hu(path), rsna.naive_rule_hu(path)
    assert rsna.brain_fraction(correct) > 0.1 and rsna.brain_fraction(naive) < 0.01


def test_pixel_groups_table(smoke):
    root, _ = smoke
    table = rsna.join_labels(dicom.index_dicoms(root / "stage_2_train", n_jobs=1), rsna.load_labels(root))
    groups = rsna.pixel_groups(table)
    assert groups["n_slices"].sum() == table["error"].isna().sum()
    assert groups["defective"].sum() == 1
    assert {"any_rate", "n_patients", "intercepts"} <= set(groups.columns)


def test_load_clean_counts_alignment_cache_and_raw_files(smoke, tmp_path):
    root, truth = smoke
    before = _stat(root)
    images, table = rsna.load_clean(root, image_size=64, n_jobs=1, cache_dir=tmp_path)
    report = rsna.summary(root, image_size=64, n_jobs=1, cache_dir=tmp_path)
    assert report["n_files"] == truth["n_files"] and report["n_unreadable"] == truth["n_broken"]
    assert report["n_images"] == truth["n_images"] and report["n_repaired"] == truth["n_defective"]
    assert report["n_dropped_low_brain"] == truth["n_low_brain"]
    assert report["n_positive_dropped"] == truth["n_positive_low_brain"]
    assert report["n_kept"] == len(table) == len(images) == truth["n_images"] - truth["n_low_brain"]
    assert images.shape[1:] == (64, 64) and images.dtype == np.float32
    pixels = np.asarray(images)                                               # read from the shards
    assert pixels.min() >= -1024 and pixels.max() < 4000                      # HU
    for col in ("image_id", "patient_id", "study_id", "series_id", "z", *rsna.LABELS, "brain_fraction",
                "repaired", "crop_row0", "crop_col0", "crop_size", "BitsStored", "RescaleIntercept"):
        assert col in table.columns
    assert (table["brain_fraction"] >= 0.02).all()
    labels = rsna.load_labels(root).set_index("image_id")
    assert (labels.loc[table["image_id"], "any"].to_numpy() == table["any"].to_numpy()).all()
    # row i of images is the slice of table row i
    i = int(np.argmax(table["repaired"].to_numpy()))
    path = root / "stage_2_train" / table.loc[i, "file"]
    expected, _ = rsna.clean_slice(path, 64)
    np.testing.assert_allclose(images[i], np.rint(expected), atol=0.5)
    # a second call reads the cache; raw files untouched
    cached = sorted(tmp_path.glob("clean-*"))
    stamp = [p.stat().st_mtime_ns for p in cached]
    images2, table2 = rsna.load_clean(root, image_size=64, brain_threshold=0.1, n_jobs=1, cache_dir=tmp_path)
    assert [p.stat().st_mtime_ns for p in cached] == stamp
    assert len(table2) < len(table) and (table2["brain_fraction"] >= 0.1).all()
    assert _stat(root) == before


def test_killed_cleaning_build_resumes_from_its_last_complete_shard(smoke, tmp_path):
    """SIGKILL a cleaning build halfway: the restart redoes only the shards that were not finished."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root, _ = smoke
    cache_dir = tmp_path / "cache"
    slow = ("import time, sys; from helpers import rsna; clean = rsna.clean_slice\n"
            "rsna.clean_slice = lambda p, s: (time.sleep(0.05), clean(p, s))[1]\n"
            f"rsna.load_clean({str(root)!r}, image_size=32, n_jobs=1, cache_dir={str(cache_dir)!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", slow], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + 120
        while len(list(cache_dir.glob("clean-*/shard-*.parquet"))) < 3 and time.time() < deadline:
            assert proc.poll() is None, "the build finished before it could be interrupted"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = next(p for p in cache_dir.glob("clean-*") if p.is_dir())
    done = len(list(store.glob("shard-*.parquet")))
    assert done >= 3 and not (store / "manifest.json").exists()           # stopped halfway
    images, table = rsna.load_clean(root, image_size=32, n_jobs=1, cache_dir=cache_dir)
    report = rsna.build_report(root, 32, cache_dir)
    assert report["n_reused"] == done and report["n_built"] == report["n_shards"] - done > 0
    fresh, fresh_table = rsna.load_clean(root, image_size=32, n_jobs=1, cache_dir=tmp_path / "fresh")
    np.testing.assert_array_equal(np.asarray(images), np.asarray(fresh))
    pd.testing.assert_frame_equal(table, fresh_table)


def test_lesion_boxes_map_into_cleaned_pixels(smoke, tmp_path):
    root, _ = smoke
    images, table = rsna.load_clean(root, image_size=64, n_jobs=1, cache_dir=tmp_path)
    boxes = rsna.lesion_boxes(root, table, 64)
    assert len(boxes) > 0 and set(boxes["image_id"]) <= set(table["image_id"])
    assert boxes["clean_row0"].min() >= 0 and boxes["clean_col1"].max() <= 64
    assert (table.loc[boxes["row"], "any"] == 1).all()
    b = boxes.iloc[0]
    patch = images[int(b["row"]), int(b["clean_row0"]):int(np.ceil(b["clean_row1"])),
                   int(b["clean_col0"]):int(np.ceil(b["clean_col1"]))]
    assert patch.max() > 50                                  # the blood is inside its box


def test_corrupted_copy_counts(smoke, tmp_path):
    """Truncate a file, drop a non-DICOM in, delete a CSV row: the readers count each."""
    root, truth = smoke
    copy = tmp_path / "rsna"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".medimg_cache"))
    base_images, base = rsna.load_clean(copy, image_size=32, n_jobs=1, cache_dir=tmp_path / "c0")
    # 1. truncate a kept slice in the pixel data, 2. a text file named .dcm, 3. delete one CSV row of another
    victim, unlabelled = base.loc[0, "file"], base.loc[1, "image_id"]
    data = (copy / "stage_2_train" / victim).read_bytes()
    (copy / "stage_2_train" / victim).write_bytes(data[: len(data) // 2])
    (copy / "stage_2_train" / "ID_0000000ff.dcm").write_text("<html>not found</html>")
    csv = (copy / "stage_2_train.csv").read_text().splitlines()
    csv = [line for line in csv if line != f"{unlabelled}_subdural,0" and line != f"{unlabelled}_subdural,1"]
    (copy / "stage_2_train.csv").write_text("\n".join(csv) + "\n")
    report = rsna.summary(copy, image_size=32, n_jobs=1, cache_dir=tmp_path / "c1")
    assert report["n_files"] == truth["n_files"] + 1
    assert report["n_unreadable"] == truth["n_broken"] + 2
    assert report["n_images"] == truth["n_images"] - 1
    assert report["n_unlabelled"] == 1
    assert report["n_kept"] == len(base) - 2
    assert victim in report["unreadable"] and "ID_0000000ff.dcm" in report["unreadable"]
    assert rsna.load_labels(copy).attrs["n_incomplete"] == 1
    _, table = rsna.load_clean(copy, image_size=32, n_jobs=1, cache_dir=tmp_path / "c1")
    assert unlabelled not in set(table["image_id"]) and len(table) == len(base) - 2


def test_missing_dataset_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="stage_2_train"):
        rsna.load_clean(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="stage_2_train"):
        rsna.load_labels(tmp_path / "empty")
