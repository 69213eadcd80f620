import time

import numpy as np
import pandas as pd
import pytest

from helpers import datasets, luna16, metaimage, synthetic
from helpers.synthetic import luna16 as synth_luna16


@pytest.fixture(scope="module")
def luna(tmp_path_factory):
    root = tmp_path_factory.mktemp("luna") / "luna16"
    start = time.perf_counter()
    truth = synthetic.generate("luna16", root, "smoke", seed=3)
    return root, truth, time.perf_counter() - start


def test_generator_layout_budget_and_determinism(luna, tmp_path):
    root, truth, seconds = luna
    assert seconds < 7
    mhds = sorted(root.glob("subset*/*.mhd"))
    assert len(mhds) == truth["n_series"] and truth["n_broken"] >= 1
    assert all(p.with_suffix(".raw").exists() for p in mhds)
    assert truth["series_without_nodules"], "a series without nodules"
    ann = pd.read_csv(root / "annotations.csv")
    assert list(ann.columns) == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    assert ann["diameter_mm"].between(3, 25).all()
    header = metaimage.read_header(mhds[0])
    assert header["ElementType"] == "MET_SHORT" and header["NDims"] == "3"
    spacings = {tuple(s["spacing"]) for s in truth["series"]}
    assert len(spacings) > 1 and all(s[0] > s[1] for s in spacings), "anisotropic, varying spacing"
    again = synth_luna16.generate(tmp_path, "smoke", seed=3)
    assert again["nodules"] == truth["nodules"]


def test_index_join_and_counts(luna):
    root, truth, _ = luna
    series = luna16.index_series(root)
    assert len(series) == truth["n_series"]
    assert series["error"].notna().sum() == truth["n_broken"]
    nodules = luna16.join_annotations(series, luna16.load_annotations(root))
    ok = nodules[nodules["status"] == "ok"]
    assert len(ok) == truth["n_nodules"]
    got = ok[["voxel_z", "voxel_y", "voxel_x"]].to_numpy()
    np.testing.assert_allclose(got, [n["voxel_zyx"] for n in truth["nodules"]], atol=0.01)
    info = luna16.summary(series, nodules)
    assert info["n_unreadable"] == truth["n_broken"] and info["n_series_without_nodules"] >= 1
    again = luna16.index_series(root)   # from the cache
    assert again["seriesuid"].tolist() == series["seriesuid"].tolist()
    assert again["error"].notna().tolist() == series["error"].notna().tolist()


def test_missing_series_and_unreadable_status():
    series = pd.DataFrame([{"seriesuid": "a", "subset": "subset0", "shape": [10, 20, 20], "spacing": [2.0, 1.0, 1.0],
                            "origin": [0.0, 0.0, 0.0], "direction": list(np.eye(3).ravel()), "error": None},
                           {"seriesuid": "b", "subset": "subset0", "shape": None, "spacing": None, "origin": None,
                            "direction": None, "error": "truncated"}])
    ann = pd.DataFrame({"seriesuid": ["a", "a", "b", "c"], "coordX": [5.0, 500.0, 1, 1], "coordY": [6.0, 1, 1, 1],
                        "coordZ": [8.0, 1, 1, 1], "diameter_mm": [5.0, 5, 5, 5]})
    out = luna16.join_annotations(series, ann)
    assert out["status"].tolist() == ["ok", "outside volume", "series unreadable", "series not found"]
    np.testing.assert_allclose(out.loc[0, ["voxel_z", "voxel_y", "voxel_x"]].to_numpy(float), [4, 6, 5])


def test_nodule_mask_is_a_sphere_in_mm():
    spacing, origin = np.array([2.5, 0.5, 0.5]), np.array([-10.0, -10.0, -20.0])
    centre = {"coordX": 0.0, "coordY": 0.0, "coordZ": 0.0, "diameter_mm": 10.0}
    mask = luna16.nodule_mask((20, 41, 41), spacing, origin, None, [centre])
    volume = mask.sum() * spacing.prod()
    assert abs(volume - 4 / 3 * np.pi * 5**3) / (4 / 3 * np.pi * 5**3) < 0.15
    zs, ys, xs = np.nonzero(mask)
    assert (ys.max() - ys.min() + 1) * 0.5 == pytest.approx(10, abs=1.1)      # 10 mm wide in-plane
    assert (zs.max() - zs.min() + 1) * 2.5 == pytest.approx(10, abs=2.6)      # ~4 slices of 2.5 mm
    bug = luna16.nodule_mask((20, 41, 41), spacing, origin, None, [dict(centre, diameter_mm=20.0)])
    assert bug.sum() > 5 * mask.sum()
    labels = luna16.nodule_mask((20, 41, 41), spacing, origin, None, [dict(centre, nodule_id=7)], labels=True)
    assert set(np.unique(labels)) == {0, 7}


def test_lung_mask_finds_two_lungs():
    vol = np.full((20, 64, 64), -1000, np.int16)
    vol[:, 8:56, 6:58] = 40                     # body
    vol[3:17, 15:45, 10:28] = -850              # lungs
    vol[3:17, 15:45, 36:54] = -850
    vol[10, 30, 20] = 60                        # a nodule voxel inside a lung
    mask = luna16.lung_mask(vol)
    assert mask[5, 30, 15] and mask[5, 30, 45] and mask[10, 30, 20]
    assert not mask[5, 2, 2] and not mask[5, 30, 32] and not mask[0].any()


def test_build_slices(luna):
    root, truth, _ = luna
    data = luna16.build_slices(root, image_size=48, negatives_per_series=2)
    n = len(data["images"])
    assert data["images"].shape == (n, 48, 48) and data["masks"].shape == (n, 48, 48)
    images, masks, labels = (np.asarray(data[k]) for k in ("images", "masks", "labels"))   # read from disk
    assert 0 <= images.min() and images.max() <= 1
    assert set(np.unique(data["groups"])) <= {s["seriesuid"] for s in truth["series"]}
    assert masks.any(axis=(1, 2)).sum() > 0 and (~masks.any(axis=(1, 2))).sum() > 0
    np.testing.assert_array_equal(data["foreground_px"], masks.sum(axis=(1, 2)))
    assert len(np.unique(labels[labels > 0])) >= 0.8 * truth["n_nodules"]
    again = luna16.build_slices(root, image_size=48, negatives_per_series=2)       # the cached store
    assert again["images"].folder == data["images"].folder
    one_process = luna16.build_slices(root, image_size=48, negatives_per_series=2, use_cache=False, n_jobs=1)
    np.testing.assert_array_equal(np.asarray(one_process["images"]), images)     # same with 1 or 2 workers
    np.testing.assert_array_equal(one_process["groups"], data["groups"])


def test_missing_folder_names_layout(tmp_path):
    with pytest.raises(datasets.DatasetLayoutError, match="annotations.csv"):
        luna16.index_series(tmp_path / "nope")


def test_iter_scans_matches_training_slices_and_geometry(luna):
    root, truth, _ = luna
    data = luna16.build_slices(root, image_size=48, negatives_per_series=2, use_cache=False)
    uid = str(data["groups"][np.flatnonzero(data["foreground_px"] > 0)[0]])
    scans = luna16.iter_scans(root, image_size=48, seriesuids=[uid])
    assert not isinstance(scans, (list, tuple)), "a generator: one series at a time"
    (scan,) = list(scans)
    assert scan["seriesuid"] == uid and scan["images"].shape == scan["labels"].shape == (len(scan["slice_z"]), 48, 48)
    assert np.all(np.diff(scan["slice_z"]) == 1), "contiguous slices"
    mine = np.flatnonzero(data["groups"] == uid)
    assert set(data["slice_z"][mine]) <= set(scan["slice_z"]), "every training slice lies in the scan"
    for i in mine:                                       # same preprocessing at the same z
        j = int(np.flatnonzero(scan["slice_z"] == data["slice_z"][i])[0])
        np.testing.assert_array_equal(scan["images"][j], data["images"][i])
        np.testing.assert_array_equal(scan["labels"][j], data["labels"][i])
    # the nodule centres, converted to mm of the resized stack, fall on their own label
    assert len(scan["radii_mm"]) >= 1 and scan["spacing_zyx"][1] > truth["series"][0]["spacing"][1] / 2
    for centre, nid in zip(scan["nodules_zyx_mm"], scan["nodule_ids"]):     # stack index × spacing
        z, y, x = np.round(centre / scan["spacing_zyx"]).astype(int)
        assert scan["labels"][z, y, x] == nid
    everything = list(luna16.iter_scans(root, image_size=48))
    assert len(everything) == truth["n_series"] - truth["n_broken"]
    assert sum(len(s["radii_mm"]) for s in everything) == truth["n_nodules"]


def test_iter_scans_truth_as_prediction_is_a_perfect_detector(luna):
    from helpers import detection

    root, truth, _ = luna
    matches = []
    for scan in luna16.iter_scans(root, image_size=48):     # candidates and nodules share one mm frame
        cands = detection.candidates((scan["labels"] > 0) * 0.9, scan["spacing_zyx"])
        matches.append(detection.match(cands, scan["nodules_zyx_mm"], scan["radii_mm"]))
    assert detection.recall(matches) >= 0.8 and detection.cpm(matches) >= 0.8
    assert sum(len(m["fp_scores"]) for m in matches) <= 1
