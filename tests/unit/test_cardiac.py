"""The cardiac chain's arithmetic on inputs with known answers: Simpson's volume of a cylinder
and a cone, slice order from positions (not file order), missing and duplicated slices,
resampling the cycle, DSB2's CRPS against hand-computed values, calibration, crops."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import cardiac
from helpers.keypoints import crop_physical


def test_simpson_volume_of_a_cylinder_is_exact():
    r, d, n = 20.0, 8.0, 10                              # mm, mm between slices, slices
    areas = np.full(n, np.pi * r**2)
    positions = 37.0 + d * np.arange(n)
    assert cardiac.simpson_volume(areas, positions) == pytest.approx(np.pi * r**2 * n * d / 1000, rel=1e-12)


def test_simpson_volume_of_a_cone_matches_the_midpoint_rule_and_converges():
    radius, height = 30.0, 100.0
    for n in (5, 10, 40):
        d = height / n
        z = (np.arange(n) + 0.5) * d                     # slice centres; the cone's tip at z = 0
        areas = np.pi * (radius * z / height) ** 2
        exact_midpoint = np.pi * radius**2 * d**3 / height**2 * (n**3 / 3 - n / 12) / 1000   # Σ (i + ½)² = n³/3 − n/12
        cone = np.pi * radius**2 * height / 3 / 1000
        v = cardiac.simpson_volume(areas, z)
        assert v == pytest.approx(exact_midpoint, rel=1e-12)
        assert abs(v - cone) / cone == pytest.approx(1 / (4 * n**2), rel=1e-9)   # error falls as 1/n²


def test_order_of_the_slices_does_not_matter_positions_do():
    areas = np.array([100.0, 400.0, 900.0, 400.0])
    positions = np.array([0.0, 10.0, 20.0, 40.0])        # a 20 mm gap between the last two
    perm = np.array([2, 0, 3, 1])
    assert cardiac.simpson_volume(areas[perm], positions[perm]) == pytest.approx(cardiac.simpson_volume(areas, positions))
    np.testing.assert_allclose(cardiac.slice_weights(positions), [10, 10, 15, 20])


def test_a_missing_slice_is_covered_by_its_neighbours():
    n, d = 8, 10.0
    areas, positions = np.full(n, 500.0), d * np.arange(n)
    full = cardiac.simpson_volume(areas, positions)
    keep = np.arange(n) != 3
    assert cardiac.simpson_volume(areas[keep], positions[keep]) == pytest.approx(full)


def test_a_duplicated_position_counts_once_the_last_given_wins():
    positions = np.array([0.0, 10.0, 10.2, 20.0])
    weights = cardiac.slice_weights(positions)
    np.testing.assert_allclose(weights, [10.2, 0, 10, 9.8])   # slabs of the kept 0, 10.2, 20 mm
    assert cardiac.simpson_volume([1000, 5000, 1000, 1000], positions) == pytest.approx(30.0)
    assert cardiac.slice_weights([5.0], thickness_mm=8.0).tolist() == [8.0]


def _frames(case: str, slices: list[tuple[str, float, int]], normal=(0.0, 0.0, 1.0), tilt=(0.0, 0.0, 0.0)):
    """Index rows (one per frame) for slices (series_id, position along the normal, n_frames)."""
    rows = []
    for sid, pos, n_frames in slices:
        ipp = np.asarray(tilt) + pos * np.asarray(normal)
        for f in range(n_frames):
            rows.append({"case": case, "series_id": sid, "frame": f, "n_frames": n_frames, "rows": 64, "cols": 48,
                         "row_spacing_mm": 1.5, "col_spacing_mm": 1.5, "SliceThickness": 8.0,
                         "SliceLocation": -pos if sid != "sax_9" else 999.0,     # a SliceLocation that lies
                         "SeriesNumber": 1, "position_x": ipp[0], "position_y": ipp[1], "position_z": ipp[2],
                         "normal_x": normal[0], "normal_y": normal[1], "normal_z": normal[2]})
    return pd.DataFrame(rows)


def test_slice_table_orders_by_image_position_along_the_normal_not_by_folder_or_location():
    normal = np.array([0.3, -0.4, 0.866])
    normal = normal / np.linalg.norm(normal)
    frames = _frames("1", [("sax_9", 20.0, 3), ("sax_2", 0.0, 3), ("sax_5", 10.0, 3)], normal, (-120.0, 80.0, 5.0))
    table = cardiac.slice_table(frames)
    assert table["series_id"].tolist() == ["sax_2", "sax_5", "sax_9"]
    np.testing.assert_allclose(np.diff(table["position_mm"]), [10.0, 10.0], atol=1e-9)
    no_orientation = frames.drop(columns=["normal_x", "normal_y", "normal_z"])
    fallback = cardiac.slice_table(no_orientation)        # without ImageOrientationPatient: SliceLocation
    assert fallback["series_id"].tolist() == ["sax_5", "sax_2", "sax_9"]


def test_resampling_the_cycle_aligns_slices_with_other_frame_counts_and_fills_a_missing_frame():
    def area(phase):
        return 1000 + 400 * np.cos(2 * np.pi * phase)

    f30, f20 = np.arange(30), np.arange(20)
    on30 = cardiac.resample_cycle(f30, area(f30 / 30), 30, 30)
    on20 = cardiac.resample_cycle(f20, area(f20 / 20), 20, 30)
    np.testing.assert_allclose(on30, area(np.arange(30) / 30))
    assert np.max(np.abs(on20 - on30)) < 15                # linear interpolation of a smooth cycle
    values = area(f30 / 30)
    values[[0, 7]] = np.nan                                # frame 0 missing: interpolated across the wrap
    filled = cardiac.resample_cycle(f30, values, 30, 30)
    assert np.isfinite(filled).all() and abs(filled[0] - area(0)) < 20
    assert np.isnan(cardiac.resample_cycle(f30, np.full(30, np.nan), 30, 30)).all()


def test_volume_curve_and_ejection_fraction_of_a_beating_cylinder():
    frames = _frames("1", [("a", 0.0, 20), ("b", 10.0, 20), ("c", 20.0, 30)])
    slices = cardiac.slice_table(frames)
    phase = frames["frame"] / frames["n_frames"]
    frames["area_mm2"] = 1000 * (1 - 0.5 * (1 - np.cos(2 * np.pi * phase)) / 2)   # 1000 at ED, 500 at ES
    frames.loc[(frames["series_id"] == "c") & (frames["frame"] == 4), "area_mm2"] = np.nan
    curve = cardiac.volume_curve(frames, slices)
    assert len(curve) == 20                                # the most common frame count
    stats = cardiac.ed_es(curve)
    assert stats["edv_ml"] == pytest.approx(30.0) and stats["esv_ml"] == pytest.approx(15.0, rel=0.01)
    assert stats["ef"] == pytest.approx(0.5, rel=0.02)
    frames.loc[frames["series_id"] == "b", "area_mm2"] = np.nan   # a slice never measured: interpolated along the stack
    assert cardiac.ed_es(cardiac.volume_curve(frames, slices))["edv_ml"] == pytest.approx(30.0)


def test_crps_of_a_perfect_and_of_a_step_cdf_equal_the_hand_computed_values():
    assert cardiac.crps(cardiac.step_cdf(120), [120]).tolist() == [0.0]
    # a step at 150 mL for a true 120 mL: the two CDFs differ at n = 120..149, i.e. 30 of 600 steps
    assert cardiac.crps(cardiac.step_cdf(150), [120])[0] == pytest.approx(30 / 600)
    assert cardiac.crps(cardiac.step_cdf(100.5), [120])[0] == pytest.approx(19 / 600)   # n = 101..119
    # a uniform CDF P(n) = (n + 1) / 600 for a true 0 mL: mean of (k / 600)², k = 0..599
    uniform = (np.arange(600) + 1) / 600
    assert cardiac.crps(uniform, [0])[0] == pytest.approx(sum((k / 600) ** 2 for k in range(600)) / 600)
    # a narrow normal centred 30 mL off costs what the wrong step costs; a wider one is cheaper when wrong
    assert cardiac.crps(cardiac.normal_cdf(150.5, 0.01), [120])[0] == pytest.approx(31 / 600, abs=1e-6)   # n = 120..150
    assert cardiac.crps(cardiac.normal_cdf(150, 20), [120])[0] < 30 / 600


def test_calibration_learns_a_bias_and_the_spread_from_validation():
    pred = np.array([50.0, 80.0, 120.0, 160.0])
    cal = cardiac.fit_calibration(pred, 1.1 * pred)
    assert cal["scale"] == pytest.approx(1.1) and cal["rel_sd"] == pytest.approx(0.0, abs=1e-12)
    cdf = cardiac.predict_cdf([100.0, np.nan], cal)
    assert cdf[0, 109] < 0.5 < cdf[0, 111]                  # centred on 1.1 × 100 mL
    assert cdf[0, 104] < 0.1 and cdf[0, 116] > 0.9           # the 3 mL floor, not a step
    np.testing.assert_allclose(cdf[1], (np.arange(600) + 1) / 600)   # no estimate: uniform


def test_a_point_in_a_physical_crop_maps_back_to_the_native_frame():
    image = np.zeros((120, 90), np.float32)
    image[70:75, 30:35] = 1.0                               # centre (72, 32)
    spacing, centre = (1.4, 1.7), (55.0, 40.0)
    crop = crop_physical(image, centre, spacing, 100.0, 64)
    back = cardiac.crop_to_native(cardiac.mask_centre(crop > 0.5), centre, spacing, 100.0, 64)
    np.testing.assert_allclose(back, (72, 32), atol=0.5)
    assert cardiac.mask_centre(np.zeros((4, 4))) is None
    two = np.zeros((20, 20))
    two[1:3, 1:3], two[10:16, 10:16] = 1, 1                 # the largest component's centre
    assert cardiac.mask_centre(two) == (12.5, 12.5)


def test_an_unreadable_frame_leaves_a_gap_in_the_cycle_and_is_counted():
    frames = _frames("1", [("a", 0.0, 6), ("b", 10.0, 6), ("c", 10.2, 6), ("d", 20.0, 4)])
    frames["InstanceNumber"] = frames["frame"] + 1 + np.where(frames["series_id"] == "d", 30, 0)
    frames["mask_path"] = None
    broken = (frames["series_id"] == "a") & (frames["frame"] == 2)          # its file could not be read:
    frames = frames[~broken].copy()
    frames.loc[frames["series_id"] == "a", "frame"] = range(5)              # the index ranks what is left
    frames.loc[frames["series_id"] == "a", "n_frames"] = 5
    cycle = pd.DataFrame(cardiac.cycle_index(frames)).assign(series_id=frames["series_id"])
    a = cycle[cycle["series_id"] == "a"]
    assert a["frame"].tolist() == [0, 1, 3, 4, 5] and set(a["n_frames"]) == {6}   # the gap stays a gap
    d = cycle[cycle["series_id"] == "d"]                                     # numbering that starts at 31
    assert d["frame"].tolist() == [0, 1, 2, 3] and set(d["n_frames"]) == {4}
    slices = cardiac.slice_table(frames)
    assert dict(zip(slices["series_id"], slices["n_frames"])) == {"a": 6, "b": 6, "c": 6, "d": 4}
    report = cardiac.stack_report(frames, slices)
    assert report == {"n_studies": 1, "n_slices": 4, "slices_with_a_gap_in_the_cycle": 1,
                      "slices_with_another_frame_count": 1, "slices_at_a_duplicated_position": 1,
                      "studies_without_masks": 1}
    phase = cycle["frame"] / cycle["n_frames"]                               # areas at the true phases
    frames["area_mm2"] = 1000 * (1 - 0.25 * (1 - np.cos(2 * np.pi * phase)))
    assert cardiac.ed_es(cardiac.volume_curve(frames.assign(frame=cycle["frame"]), slices))["edv_ml"] == \
        pytest.approx(30.0, rel=0.01)          # slabs of 10.2 + 10 + 9.8 mm at 1000 mm²
