"""Notebook 05 (PCA and classical classifiers, HCP-style brain MRI) in the smoke profile."""
import pytest

from helpers import datasets, synthetic

KEYS = ["n_subjects", "n_labelled", "n_unreadable", "n_unlabelled", "variance_10_components", "logreg_accuracy",
        "linear_svm_accuracy", "rbf_svm_accuracy", "knn_accuracy", "leaky_accuracy", "honest_accuracy",
        "logreg_accuracy_ci", "linear_svm_accuracy_ci", "rbf_svm_accuracy_ci", "knn_accuracy_ci",
        "best_model", "best_accuracy", "best_accuracy_ci", "nested_cv_hand_vs_helper_max_abs_diff"]
MODELS = ["logreg_accuracy", "linear_svm_accuracy", "rbf_svm_accuracy", "knn_accuracy"]
COUNTS = ["n_subjects", "n_labelled", "n_unreadable", "n_unlabelled"]


def _check(metrics, truth):
    assert sorted(metrics) == sorted(KEYS)
    assert {k: metrics[k] for k in COUNTS} == {k: truth[k] for k in COUNTS}
    assert max(metrics[k] for k in MODELS) >= 0.60, "best nested-CV accuracy clearly above chance"
    assert all(0.0 <= metrics[k] <= 1.0 for k in MODELS + ["leaky_accuracy", "honest_accuracy"])
    assert 0.0 < metrics["variance_10_components"] <= 1.0
    assert metrics["leaky_accuracy"] >= metrics["honest_accuracy"] - 0.05
    assert metrics["best_accuracy"] == max(metrics[k] for k in MODELS)
    assert metrics["nested_cv_hand_vs_helper_max_abs_diff"] == 0.0, "the notebook's written-out nested CV = classical.nested_cv"
    for key in MODELS + ["best_accuracy"]:
        low, high = metrics[f"{key}_ci"]  # resampled by subject
        assert 0 <= low <= high <= 1 and low - 0.05 <= metrics[key] <= high + 0.05, key


@pytest.mark.notebook
def test_05_smoke_metrics_and_counts(run_notebook):
    record = run_notebook("05_pca_svm")
    truth = synthetic.load_ground_truth(datasets.synthetic_dir("hcp", "smoke"))
    _check(record["metrics"], truth)
    assert len({round(record["metrics"][k], 2) for k in MODELS}) >= 2, "the four models differ"


@pytest.mark.notebook
def test_05_runs_unchanged_on_another_hcp_folder(run_notebook, variant_dataset, generator_free_dataset):
    path, truth = variant_dataset("hcp")   # other shapes, voxel sizes, orientations; no generator files
    record = run_notebook("05_pca_svm", variant="seed1-generator-free", data_dir=str(generator_free_dataset("hcp", path)))
    _check(record["metrics"], truth)
