"""helpers.dsb2 on the synthetic DSB2 folder: the layout's rules, against the generator's ground truth."""
import shutil

import numpy as np
import pytest

from helpers import datasets, dsb2, synthetic


@pytest.fixture(scope="module")
def smoke():
    root = datasets.resolve("dsb2", None, "smoke")
    return root, synthetic.load_ground_truth(root), dsb2.index_frames(root)


def test_counts_match_the_ground_truth(smoke):
    root, truth, frames = smoke
    s = dsb2.summary(frames)
    assert s["n_files"] == truth["n_files"] and s["n_unreadable"] == truth["n_unreadable"]
    assert s["n_superseded"] == truth["n_superseded"] and s["n_frames"] == truth["n_frames"]
    assert s["n_cases"] == truth["n_cases"] and s["n_labelled"] == truth["n_labelled"]
    assert s["n_with_mask"] == s["n_labelled"]
    assert not frames["slice"].str.lower().str.startswith(("2ch", "4ch")).any()
    assert len(dsb2.ignored_folders(root)) > 0


def test_series_are_ordered_and_complete(smoke):
    root, truth, frames = smoke
    usable = dsb2.usable_frames(frames)
    for _key, series in usable.groupby(["case", "series_id"]):
        assert list(series["frame"]) == list(range(len(series)))
        assert series["InstanceNumber"].is_monotonic_increasing
        assert series["SliceLocation"].round(1).nunique() == 1
    per_case = usable.groupby("case")["series_id"].nunique()
    for case, info in truth["cases"].items():
        assert per_case[case] == info["n_slices"], case
    four = usable[usable["case"] == truth["four_part_case"]]
    assert (four["series_id"].str.contains("@")).any()             # one folder, two locations


def test_labels_are_in_the_native_grid(smoke):
    root, truth, frames = smoke
    usable = dsb2.usable_frames(frames)
    first = usable[(usable["frame"] == 0) & usable["lv_row"].notna()].iloc[0]
    image = dsb2.read_frame(first["abs_path"])
    assert image.shape == (first["rows"], first["cols"]) and image.dtype == np.float32
    mask = dsb2.read_mask(root / first["mask_path"])
    assert mask.shape == image.shape and mask[int(round(first["lv_row"])), int(round(first["lv_col"]))]
    assert image[mask].mean() > 2 * image.mean()                    # the blood pool is bright
    series = usable[(usable["case"] == first["case"]) & (usable["series_id"] == first["series_id"])]
    assert dsb2.load_series(series).shape == (len(series), first["rows"], first["cols"])
    assert dsb2.load_series_masks(series, root).shape == (len(series), first["rows"], first["cols"])


def test_bad_files_and_long_axis_folders_never_crash(smoke, tmp_path):
    src, truth, frames = smoke
    broken = {p.split("/")[1] for p in truth["broken_files"]}
    case = next(c for c in sorted(frames["case"].unique(), key=int) if c not in broken)
    root = tmp_path / "dsb2"
    shutil.copytree(src / "train" / case, root / "train" / case)
    sax = sorted((root / "train" / case / "study").glob("sax_*"))[0]
    (sax / "IM-9999-0001.dcm").write_bytes(b"not a dicom file")
    (root / "train" / case / "study" / "2ch_99").mkdir()
    shutil.copy(next(sax.glob("IM-*")), root / "train" / case / "study" / "2ch_99" / "IM-0001-0001.dcm")
    table = dsb2.index_frames(root)                                   # no lv_centroids.csv: no labels
    assert table["error"].notna().sum() == 1 and table.loc[table["error"].notna(), "path"].str.contains("9999").all()
    assert not table["slice"].str.startswith("2ch").any() and table["lv_row"].isna().all()
    n = len(table)
    shutil.copy(next(sax.glob("IM-*")), sax / "IM-9999-0002.dcm")      # a new file: the cached index is rebuilt
    assert len(dsb2.index_frames(root)) == n + 1
    with pytest.raises(datasets.DatasetLayoutError):
        dsb2.index_frames(tmp_path / "missing")


# ------------------------------------------------------------------ what the generator matches
def test_volumes_span_reduced_and_normal_ejection_fractions():
    """The full synthetic set spans the heart-failure guideline classes: EF < 0.40 (reduced)
    and ≥ 0.50 (preserved), and the dilated hearts are the ones with the reduced EF."""
    from helpers.synthetic import dsb2 as generator

    designs = [generator._case_design(np.random.default_rng(s), 1, generator.SIZES["full"]) for s in range(400)]
    reduced = np.array([d["ef_class"] == "reduced" for d in designs])
    target = np.array([1 - (1 - d["ejection"]) ** 2 for d in designs])   # EF of the blood-pool radius shrink
    assert 0.15 < reduced.mean() < 0.35
    assert target[reduced].max() < 0.40 and target[~reduced].min() >= 0.45
    assert np.mean([d["lv_radius"] for d, r in zip(designs, reduced) if r]) > \
        np.mean([d["lv_radius"] for d, r in zip(designs, reduced) if not r])


def test_the_cycle_ejects_fast_and_fills_slowly(smoke):
    """Real LV volume curves are not sinusoids: ejection takes about a third of the RR
    interval, filling (rapid filling, diastasis, atrial kick) the rest."""
    from helpers.synthetic.dsb2 import contraction

    for t_es in (0.32, 0.40):
        curve = np.array([contraction(u, t_es) for u in np.linspace(0, 1, 201)])
        assert curve[0] == 0 and np.argmax(curve) == round(t_es * 200) and curve.min() >= 0
        assert abs(curve[round((t_es + 0.22) * 200)] - 0.25) < 1e-9       # rapid filling: 3/4 back
    root, truth, _ = smoke
    for case, info in truth["cases"].items():
        v = np.array(info["volume_curve_ml"])
        n = len(v)
        systole = (np.argmin(v) - np.argmax(v)) % n                    # frames from ED to ES
        assert 0 < systole < n / 2, (case, systole, n)                  # shorter than diastole


def test_masks_give_the_ground_truth_volumes(smoke):
    """Σ mask pixels × pixel area × slice gap of each frame where every slice has a mask is the
    analytic volume of train.csv's curve: without bias (mean ratio within 1 %), and each frame
    within the pixel grid's error (a 5 mm apex at 1.7 mm pixels: up to ~10 %)."""
    root, truth, frames = smoke
    usable = dsb2.usable_frames(frames)
    ratios = []
    for case, info in truth["cases"].items():
        rows = usable[usable["case"] == case]
        for frame, group in rows.groupby("frame"):
            if len(group) != info["n_slices"] or group["mask_path"].isna().any():
                continue
            px = sum(int(dsb2.read_mask(root / m).sum()) for m in group["mask_path"])
            volume = px * info["pixel_spacing_mm"] ** 2 * info["slice_gap_mm"] / 1000
            assert volume == pytest.approx(info["volume_curve_ml"][frame], rel=0.10), (case, frame)
            ratios.append(volume / info["volume_curve_ml"][frame])
    assert len(ratios) >= 20 and abs(np.mean(ratios) - 1) < 0.01
