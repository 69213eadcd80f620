"""Site variants (helpers.synthetic.variants): each layout survives the transforms, and the
labels move with the images."""
import json
import os

import numpy as np
import pandas as pd
import pytest

from helpers import datasets, dicom, dsb2, hcp, luna16, metaimage
from helpers.synthetic import GENERATOR_ONLY, variants


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("variants")


def _no_generator_files(root):
    assert not [p for name in GENERATOR_ONLY for p in root.rglob(name)]
    info = json.loads((root / ".variant.json").read_text())
    assert "spacing_scale" in info and "source" in info


def test_luna16_nodules_stay_on_the_nodule_in_world_mm(out):
    source = datasets.resolve("luna16", None, "smoke", 0)
    root = variants.make_variant("luna16", source, out / "luna16", spacing_scale=1.5, noise_hu=20, max_items=4)
    _no_generator_files(root)
    before, after = luna16.index_series(source, use_cache=False), luna16.index_series(root, use_cache=False)
    assert len(after) == 4
    notes = luna16.join_annotations(after, luna16.load_annotations(root))
    ok = notes[notes["status"] == "ok"]
    assert len(ok) >= 1
    for _, row in ok.iterrows():
        s = after.set_index("seriesuid").loc[row["seriesuid"]]
        volume, spacing, origin, direction = metaimage.read_mhd(s["abs_path"])
        old = before.set_index("seriesuid").loc[row["seriesuid"]]
        _, old_spacing, _, _ = metaimage.read_mhd(old["abs_path"])
        np.testing.assert_allclose(spacing, np.asarray(old_spacing) * 1.5, rtol=0.1)   # coarser voxels
        mask = luna16.nodule_mask(volume.shape, spacing, origin, direction, row.to_frame().T)
        if mask.sum() >= 3:                       # the annotated sphere is denser than the lung around it
            assert volume[mask].mean() > -500, row["seriesuid"]


def test_dsb2_transpose_keeps_centroids_on_their_masks(out):
    source = datasets.resolve("dsb2", None, "smoke", 0)
    root = variants.make_variant("dsb2", source, out / "dsb2", transpose=True, spacing_scale=1.3, gain=2.0,
                                 noise=0.05, max_items=3)
    _no_generator_files(root)
    src, frames = dsb2.index_frames(source), dsb2.index_frames(root)
    assert frames["case"].nunique() == 3
    labelled = frames.dropna(subset=["lv_row"]) if "lv_row" in frames else frames
    first = labelled.iloc[0]
    image = dsb2.read_frame(root / first["path"])
    original = dsb2.read_frame(source / first["path"])
    assert image.shape[0] == round(original.shape[1] / 1.3) or abs(image.shape[0] - original.shape[1] / 1.3) <= 1
    centroids = pd.read_csv(root / "lv_centroids.csv")
    hits = 0
    for _, row in centroids.head(20).iterrows():
        mask_path = root / "lv_masks" / (row["path"][:-4] + ".png")
        if mask_path.is_file():
            mask = dsb2.read_mask(mask_path)
            r, c = int(round(row["row"])), int(round(row["col"]))
            hits += bool(mask[r, c])
    assert hits >= 15, "the moved centroid falls on the moved mask"
    assert len(src) >= len(frames)


def test_hcp_reoriented_and_resampled_volumes_reach_the_same_cube(out):
    source = datasets.resolve("hcp", None, "smoke", 0)
    root = variants.make_variant("hcp", source, out / "hcp", transpose=True, spacing_scale=1.25, gain=0.5,
                                 max_items=6)
    _no_generator_files(root)
    a, table_a, _ = hcp.load_volumes(source, volume_size=24)
    b, table_b, _ = hcp.load_volumes(root, volume_size=24)
    common = sorted(set(table_a["subject"]) & set(table_b["subject"]))
    assert len(common) >= 3
    for subject in common:
        x = a[np.flatnonzero(table_a["subject"] == subject)[0]].ravel()
        y = b[np.flatnonzero(table_b["subject"] == subject)[0]].ravel()
        assert np.corrcoef(x, y)[0, 1] > 0.9, subject      # same anatomy, same place, after RAS reorientation


def test_rsna_keeps_the_representation_defect(out):
    import pydicom

    source = datasets.resolve("rsna", None, "smoke", 0)
    root = variants.make_variant("rsna", source, out / "rsna", spacing_scale=1.3, noise_hu=10, max_items=3)
    _no_generator_files(root)
    files = sorted((root / "stage_2_train").glob("*.dcm"))
    assert files
    n_defective = n_read = 0
    for f in files:
        try:
            ds = pydicom.dcmread(f)
        except Exception:  # noqa: BLE001 - broken files are copied as they are
            continue
        n_read += 1
        n_defective += dicom.is_defective(ds)
        old = pydicom.dcmread(source / "stage_2_train" / f.name, stop_before_pixels=True)
        assert abs(int(ds.Rows) - int(old.Rows) / 1.3) <= 1
    originals = sum(dicom.is_defective(pydicom.dcmread(source / "stage_2_train" / f.name)) for f in files
                    if f.read_bytes()[128:132] == b"DICM")
    assert n_read > 0 and n_defective == originals > 0, "the defective slices stay defective"


def test_an_existing_variant_is_kept_only_when_built_with_the_same_knobs(out, tmp_path):
    source = datasets.resolve("luna16", None, "smoke", 0)
    root = variants.make_variant("luna16", source, tmp_path / "v", max_items=1)
    stamp = (root / ".variant.json").stat().st_mtime_ns
    variants.make_variant("luna16", source, root, max_items=1)                # same knobs: kept
    assert (root / ".variant.json").stat().st_mtime_ns == stamp
    variants.make_variant("luna16", source, root, max_items=2)                # other knobs: stale, rebuilt
    assert len(list(root.glob("subset*/*.mhd"))) == 2
    assert json.loads((root / ".variant.json").read_text())["max_items"] == 2
    stamp = (root / ".variant.json").stat().st_mtime_ns
    variants.make_variant("luna16", source, root, max_items=2, overwrite=True)
    assert (root / ".variant.json").stat().st_mtime_ns != stamp
    assert not list(tmp_path.glob(".v.tmp"))
    notes = source / "annotations.csv"                                       # a regenerated source ...
    before = notes.stat()
    try:
        os.utime(notes, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
        stamp = (root / ".variant.json").stat().st_mtime_ns
        variants.make_variant("luna16", source, root, max_items=2)            # ... is a new source: rebuilt
        assert (root / ".variant.json").stat().st_mtime_ns != stamp
    finally:
        os.utime(notes, ns=(before.st_atime_ns, before.st_mtime_ns))          # the shared set's caches stay valid


def test_combine_luna16_joins_two_datasets_and_refuses_shared_series(out):
    a, b = datasets.resolve("luna16", None, "smoke", 0), datasets.resolve("luna16", None, "smoke", 1)
    root = variants.combine("luna16", [a, b], out / "luna16-combined")
    series = [luna16.index_series(s, use_cache=False) for s in (a, b, root)]
    assert len(series[2]) == len(series[0]) + len(series[1])
    assert set(series[2]["seriesuid"]) == set(series[0]["seriesuid"]) | set(series[1]["seriesuid"])
    notes = [len(pd.read_csv(s / "annotations.csv")) for s in (a, b, root)]
    assert notes[2] == notes[0] + notes[1]
    assert not [p for name in GENERATOR_ONLY for p in root.rglob(name)]
    with pytest.raises(ValueError, match="share series"):
        variants.combine("luna16", [a, a], out / "luna16-twice")
    assert not (out / "luna16-twice").exists()
    with pytest.raises(ValueError, match="supports"):
        variants.combine("hcp", [a], out / "hcp-combined")
