"""Notebooks 01 (cleaning) and 02 (exploration) in the smoke profile, against the generator's truth."""
import pytest

from helpers import datasets, synthetic

pytestmark = pytest.mark.notebook


def _truth():
    return synthetic.load_ground_truth(datasets.synthetic_dir("rsna", "smoke"))


def test_01_counts_equal_the_ground_truth(run_notebook):
    metrics = run_notebook("01_data_cleaning")["metrics"]
    truth = _truth()
    assert metrics == {
        "n_files": truth["n_files"], "n_unreadable": truth["n_broken"], "n_images": truth["n_images"],
        "n_repaired": truth["n_defective"], "n_dropped_low_brain": truth["n_low_brain"],
        "n_positive_dropped": truth["n_positive_low_brain"],
        "n_kept": truth["n_images"] - truth["n_low_brain"],
        "read_hu_hand_vs_helper_max_abs_diff": 0.0,   # HU by hand (pydicom + the repair rule) == dicom.read_hu
    }


def test_01_runs_unchanged_on_another_dataset(run_notebook, variant_dataset, generator_free_dataset):
    """Another seed (other image size, patients, groups, window tags and broken files), and
    none of the generator's own files (a real download has no ground_truth*.*)."""
    root, truth = variant_dataset("rsna")
    assert truth["image_size"] != _truth()["image_size"]
    metrics = run_notebook("01_data_cleaning", variant="seed1-generator-free",
                           data_dir=str(generator_free_dataset("rsna", root)))["metrics"]
    assert metrics["n_files"] == truth["n_files"] and metrics["n_unreadable"] == truth["n_broken"]
    assert metrics["n_repaired"] == truth["n_defective"]
    assert metrics["n_dropped_low_brain"] == truth["n_low_brain"]
    assert metrics["n_kept"] == truth["kept"]["n_images"]
    assert metrics["read_hu_hand_vs_helper_max_abs_diff"] == 0.0, "the notebook's hand-written HU and repair = dicom.read_hu"


def test_02_counts_equal_the_cleaned_ground_truth(run_notebook):
    metrics = run_notebook("02_data_exploration")["metrics"]
    kept = _truth()["kept"]
    assert metrics["n_patients"] == kept["n_patients"]
    assert metrics["n_images"] == kept["n_images"]
    assert metrics["n_positive_any"] == kept["n_positive_any"]
    assert metrics["positive_rate_any"] == pytest.approx(kept["n_positive_any"] / kept["n_images"], abs=1e-4)
    low, high = metrics["positive_rate_any_ci"]   # resampled by patient
    assert 0 <= low <= metrics["positive_rate_any"] <= high <= 1
    for subtype in ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"):
        assert metrics[f"n_{subtype}"] == kept[f"n_{subtype}"]
