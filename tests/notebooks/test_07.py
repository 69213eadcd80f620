"""Notebook 07 (keypoint CNN on cardiac cine MRI), smoke profile: issue 8's thresholds and counts."""
import math
from pathlib import Path

import pytest

from helpers import datasets, synthetic

STEM = "07_keypoint_cnn"


@pytest.mark.notebook
def test_07_finds_the_left_ventricle(run_notebook):
    record = run_notebook(STEM)
    m = record["metrics"]
    truth = synthetic.load_ground_truth(datasets.synthetic_dir("dsb2", "smoke"))
    assert m["inside_lv_rate"] >= 0.6
    assert m["n_train_cases"] + m["n_val_cases"] + m["n_test_cases"] == truth["n_cases"]
    assert m["n_test_cases"] >= 2 and m["n_train_cases"] >= m["n_test_cases"]
    assert 0 < m["median_error_px"] <= m["p95_error_px"] and m["median_error_mm"] > m["median_error_px"]
    for key in ("image_only_median_error_px", "image_only_inside_lv_rate"):     # the ablation was run
        assert math.isfinite(m[key])
    assert (Path(record["output_dir"]) / "lv_cycle.gif").stat().st_size > 1000


@pytest.mark.notebook
def test_07_runs_unchanged_on_another_dsb2_folder(run_notebook, variant_dataset):
    root, truth = variant_dataset("dsb2")
    record = run_notebook(STEM, variant="seed1", data_dir=str(root))
    m = record["metrics"]
    assert m["n_train_cases"] + m["n_val_cases"] + m["n_test_cases"] == truth["n_cases"]
    assert m["inside_lv_rate"] >= 0.5 and math.isfinite(m["median_error_mm"])
