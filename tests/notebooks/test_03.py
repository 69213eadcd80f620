"""Notebook 03 (data augmentation), smoke profile: the transforms used and the alignment checks."""
import pytest

STEM = "03_data_augmentation"


@pytest.mark.notebook
def test_03_reports_transforms_and_alignment_checks(run_notebook):
    m = run_notebook(STEM)["metrics"]
    assert m["augment_validation"] is False
    assert any("flip_lr" in p for p in m["plausible_ct"].values())
    assert any("flip_ud" in p for p in m["implausible_ct"].values())
    assert any("brightness" in p for p in m["implausible_ct"].values())
    assert m["ct_fill_hu"] <= -1000                                     # the fill is air, not water
    assert m["dot_test_draws"] >= 20 and m["dot_test_max_error_px"] < 1.0
    assert m["mask_keypoint_max_offset_px"] < 1.0
    assert m["cardiac_train_augment"]["rotation_deg"] > 0 and m["n_ct_slices"] > 0
