"""Notebook 06 (U-Net segmentation) in the smoke profile, and on another LUNA16-layout folder."""
from pathlib import Path

import pytest

from helpers import datasets, synthetic

STEM = "06_unet_segmentation"


@pytest.mark.notebook
def test_06_smoke_thresholds(run_notebook):
    record = run_notebook(STEM)
    m = record["metrics"]
    assert m["dataset"] == "luna16"
    assert m["n_train_slices"] > 0 and m["n_test_slices"] > 0
    assert m["foreground_dice"] >= 0.4
    assert 0 <= m["foreground_iou"] <= m["foreground_dice"] <= 1
    assert m["overall_accuracy"] > 0.95 and m["mean_iou"] >= m["foreground_iou"]
    assert 0 <= m["nodule_recall"] <= 1
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


@pytest.mark.notebook
def test_06_runs_unchanged_on_another_luna16_folder(run_notebook, variant_dataset):
    root, truth = variant_dataset("luna16")
    assert truth["series_without_nodules"]
    record = run_notebook(STEM, variant="seed1", data_dir=str(root))
    m = record["metrics"]
    assert m["n_train_slices"] > 0 and m["n_test_slices"] > 0
    assert m["foreground_dice"] >= 0.3
