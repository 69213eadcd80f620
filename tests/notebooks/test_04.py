"""Notebook 04 in the smoke profile: metadata baseline near chance, a CNN that learns."""
import pytest

from helpers import datasets, synthetic

STEM = "04_metadata_baselines"


@pytest.fixture(scope="module")
def metrics(run_notebook):
    return run_notebook(STEM)["metrics"]


@pytest.mark.notebook
def test_cnn_learns_and_metadata_does_not(metrics):
    assert metrics["cnn_auc"] >= 0.70
    assert metrics["cnn_accuracy"] >= 0.6
    # no label signal in the headers by design; the smoke set has few patients, so a wide band
    assert 0.2 <= metrics["metadata_auc"] <= 0.8
    assert metrics["metadata_auc"] < metrics["cnn_auc"]
    assert 1e-5 <= metrics["lr_found"] <= 1.0
    for key in ("cnn_auc", "metadata_auc"):   # patient-level bootstrap intervals
        low, high = metrics[f"{key}_ci"]
        assert 0 <= low <= metrics[key] <= high <= 1, key
    assert not any(k.startswith("external_") for k in metrics), "no external_data_dir, no external keys"


@pytest.mark.notebook
def test_written_out_range_test_matches_the_helper(metrics):
    # the notebook's loop (train_on_batch, one rate per batch) and training.lr_range_test on the same
    # model and batches: same losses up to the helper's float32 running-total arithmetic
    assert 0 <= metrics["lr_finder_hand_vs_helper_max_abs_diff"] < 1e-5


@pytest.mark.notebook
def test_counts_match_the_ground_truth(metrics):
    truth = synthetic.load_ground_truth(datasets.synthetic_dir("rsna", "smoke"))
    assert metrics["class_prior"] == pytest.approx(truth["n_positive_any"] / truth["n_images"], abs=1e-3)
    kept = truth["n_images"] - truth["n_low_brain"]
    assert 0 < metrics["n_test"] < metrics["n_train"] < kept


@pytest.mark.notebook
def test_leaks_and_bugs_are_shown(metrics):
    # a slice-level split lets the forest recognise patients: it looks better than it is
    assert metrics["metadata_auc_slice_split"] > metrics["metadata_auc"] + 0.1
    # labels joined by row order agree with the truth about as often as chance
    assert metrics["row_order_agreement"] < 0.8
    assert abs(metrics["cnn_auc_row_order_labels"] - 0.5) < 0.25


@pytest.mark.notebook
def test_runs_on_unseen_data_without_generator_files_and_validates_externally(run_notebook, variant_dataset,
                                                                                 generator_free_dataset):
    # trained on another RSNA-layout folder (seed 1) without ground_truth*.*, tested on our smoke set as "another site"
    path = generator_free_dataset("rsna", variant_dataset("rsna")[0])
    external = datasets.synthetic_dir("rsna", "smoke")
    record = run_notebook(STEM, variant="seed1-generator-free", data_dir=str(path), seed=1,
                          external_data_dir=str(external))
    m = record["metrics"]
    assert m["cnn_auc"] >= 0.70
    assert m["lr_finder_hand_vs_helper_max_abs_diff"] < 1e-5
    assert 0.2 <= m["metadata_auc"] <= 0.8
    truth = synthetic.load_ground_truth(external)
    assert 0 < m["external_n_images"] <= truth["n_images"] - truth["n_low_brain"]
    low, high = m["external_cnn_auc_ci"]
    assert 0 <= low <= m["external_cnn_auc"] <= high <= 1 and m["external_cnn_auc"] >= 0.6
