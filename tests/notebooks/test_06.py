"""Notebook 06 (U-Net segmentation) in the smoke profile, and on a generator-free copy of the
data with another LUNA16-layout folder as the external dataset."""
from pathlib import Path

import numpy as np
import pytest

from helpers import datasets, synthetic

STEM = "06_unet_segmentation"
FP_RATES = ["0.125", "0.25", "0.5", "1", "2", "4", "8"]


def check_interval(value, ci):
    assert ci is not None and ci[0] <= value <= ci[1], (value, ci)


def check_detection(m, prefix=""):
    sens = m[f"{prefix}nodule_sensitivity_at_fp"]
    assert list(sens) == FP_RATES
    values = [sens[r] for r in FP_RATES]
    assert all(0 <= v <= 1 for v in values) and np.all(np.diff(values) >= 0), values
    assert 0 <= m[f"{prefix}cpm"] <= 1 and m[f"{prefix}cpm"] == pytest.approx(np.mean(values), abs=1e-3)
    check_interval(m[f"{prefix}cpm"], m[f"{prefix}cpm_ci"])


def check_lessons(m):
    """The notebook's written-out soft Dice loss and small U-Net = unet.LOSSES["dice"] and unet.build_unet."""
    assert 0 <= m["dice_loss_hand_vs_helper_max_abs_diff"] < 1e-6
    assert 0 <= m["unet_hand_vs_helper_max_abs_diff"] < 1e-6
    assert m["unet_hand_vs_helper_same_params"] is True


@pytest.mark.notebook
def test_06_smoke_thresholds(run_notebook):
    record = run_notebook(STEM)
    m = record["metrics"]
    assert m["dataset"] == "luna16"
    assert m["n_train_slices"] > 0 and m["n_test_slices"] > 0 and m["n_test_series"] >= 2
    assert m["foreground_dice"] >= 0.4                      # whole held-out scans
    check_interval(m["foreground_dice"], m["foreground_dice_ci"])
    assert m["foreground_dice"] <= m["sample_foreground_dice"] + 1e-4, "whole scans add only false-positive chances"
    assert 0 <= m["foreground_iou"] <= m["foreground_dice"] <= 1
    assert m["overall_accuracy"] > 0.95 and m["mean_iou"] >= m["foreground_iou"]
    assert 0 <= m["dice_per_scan"]["min"] <= m["dice_per_scan"]["median"] <= m["dice_per_scan"]["max"] <= 1
    check_detection(m)
    assert 0 <= m["nodule_recall"] <= 1
    check_interval(m["nodule_recall"], m["nodule_recall_ci"])
    assert m["nodule_recall"] >= m["nodule_sensitivity_at_fp"]["8"] - 1e-4
    assert not any(k.startswith("external_") for k in m)
    check_lessons(m)
    assert (Path(record["output_dir"]) / "unet_best.keras").is_file()
    assert (Path(record["output_dir"]) / "predictions_rle.csv").is_file()


@pytest.mark.notebook
def test_06_counts_match_ground_truth(run_notebook):
    import nbformat

    record = run_notebook(STEM)
    truth = synthetic.load_ground_truth(datasets.synthetic_dir("luna16", "smoke"))
    nb = nbformat.read(record["executed"], as_version=4)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"n_series                   {truth['n_series']}" in text
    assert f"n_unreadable               {truth['n_broken']}" in text
    assert f"n_nodules                  {truth['n_nodules']}" in text
    assert "external_data_dir is None" in text


@pytest.mark.notebook
def test_06_generator_free_data_with_external_validation(run_notebook, generator_free_dataset, variant_dataset):
    external, ext_truth = variant_dataset("luna16")
    assert ext_truth["series_without_nodules"]
    record = run_notebook(STEM, variant="generator-free", data_dir=str(generator_free_dataset("luna16")),
                          external_data_dir=str(external))
    m = record["metrics"]
    assert m["n_train_slices"] > 0 and m["n_test_slices"] > 0
    assert m["foreground_dice"] >= 0.3
    check_interval(m["foreground_dice"], m["foreground_dice_ci"])
    assert m["external_n_series"] == ext_truth["n_series"] - ext_truth["n_broken"]   # every readable series
    assert 0 <= m["external_foreground_dice"] <= 1
    check_interval(m["external_foreground_dice"], m["external_foreground_dice_ci"])
    check_detection(m, prefix="external_")
    check_lessons(m)
