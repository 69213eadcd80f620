"""Notebook 07 (keypoint CNN on cardiac cine MRI), smoke profile: thresholds and counts, the
case-level intervals, and a run on unseen data without generator files, validated externally."""
import math
from pathlib import Path

import pytest

from helpers import datasets, keypoints, synthetic

STEM = "07_keypoint_cnn"


def check_intervals(m: dict, prefix: str = ""):
    for key in keypoints.HEADLINE:   # every headline metric with its case-level bootstrap interval
        value, ci = m[f"{prefix}{key}"], m[f"{prefix}{key}_ci"]
        assert ci is not None and ci[0] <= value <= ci[1], (prefix + key, value, ci)


@pytest.mark.notebook
def test_07_finds_the_left_ventricle(run_notebook):
    record = run_notebook(STEM)
    m = record["metrics"]
    truth = synthetic.load_ground_truth(datasets.synthetic_dir("dsb2", "smoke"))
    assert m["inside_lv_rate"] >= 0.6
    assert m["n_train_cases"] + m["n_val_cases"] + m["n_test_cases"] == truth["n_cases"]
    assert m["n_test_cases"] >= 2 and m["n_train_cases"] >= m["n_test_cases"]
    assert 0 < m["median_error_px"] <= m["p95_error_px"] and m["median_error_mm"] > m["median_error_px"]
    check_intervals(m)
    check_intervals(m, "image_only_")                       # both inputs were trained, with intervals
    check_intervals(m, "with_motion_")
    reported = "with_motion_" if m["use_motion"] else "image_only_"   # the input `use_motion` names
    for key in keypoints.HEADLINE:
        assert m[key] == m[reported + key], key
    low, high = m["motion_gain_mm_ci"]                       # paired: image-only minus frame + motion
    assert low <= m["motion_gain_mm"] <= high
    assert m["motion_gain_mm"] == pytest.approx(
        m["image_only_median_error_mm"] - m["with_motion_median_error_mm"], abs=0.02)
    assert not any(k.startswith("external_") for k in m)
    assert (Path(record["output_dir"]) / "lv_cycle.gif").stat().st_size > 1000


@pytest.mark.notebook
def test_07_unseen_generator_free_data_with_external_validation(run_notebook, variant_dataset,
                                                                 generator_free_dataset):
    # trained on another DSB2-layout folder (seed 1, no ground_truth.json), tested on our smoke set as "another site"
    source, truth = variant_dataset("dsb2")
    root = generator_free_dataset("dsb2", source)
    external = datasets.synthetic_dir("dsb2", "smoke")
    record = run_notebook(STEM, variant="seed1-generator-free", data_dir=str(root), external_data_dir=str(external))
    m = record["metrics"]
    assert m["n_train_cases"] + m["n_val_cases"] + m["n_test_cases"] == truth["n_cases"]
    assert m["inside_lv_rate"] >= 0.5 and math.isfinite(m["median_error_mm"])
    check_intervals(m)
    ext_truth = synthetic.load_ground_truth(external)
    assert 0 < m["external_n_cases"] <= ext_truth["n_cases"] and m["external_n_test_frames"] > 0
    check_intervals(m, "external_")
    assert m["external_inside_lv_rate"] >= 0.3
