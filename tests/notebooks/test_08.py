"""Notebook 08 (3-D CNN + checked class activation maps) in the smoke profile, and on unseen data
without ``ground_truth.json`` (as a real HCP download is), validated on a second study."""
import math

import pytest

from helpers import datasets, synthetic

STEM = "08_cam_visualization"


def _check_interval(value, ci):
    assert ci is not None and 0 <= ci[0] <= value <= ci[1] <= 1, (value, ci)


def _check(metrics: dict):
    acc = metrics["cnn3d_accuracy"]
    assert set(acc) >= {"best"} and len(acc) >= 2, "accuracy per resolution and the best"
    assert acc["best"] == max(v for k, v in acc.items() if k != "best")
    assert 0 <= metrics["cnn3d_auc"]["best"] <= 1
    for key in ("cnn3d_accuracy", "cnn3d_auc", "classical_accuracy"):   # subject-level intervals, per cube
        assert set(metrics[f"{key}_ci"]) == set(metrics[key])
        for size, value in metrics[key].items():
            _check_interval(value, metrics[f"{key}_ci"][size])
    assert set(metrics["classical_accuracy"]) == set(acc)
    assert str(metrics["cam_volume_size"]) in acc
    assert metrics["n_params"] > 0 and metrics["peak_memory_mb"] > 0
    assert metrics["seed_net_params"] > 10_000_000 and metrics["seed_net_activation_gib"] > 1
    # the notebook's written-out Grad-CAM (tf.GradientTape) and cam.grad_cam on the same test volume
    assert 0 <= metrics["gradcam_hand_vs_helper_max_abs_diff"] < 1e-5


@pytest.mark.notebook
def test_08_smoke(run_notebook):
    run_notebook("04_metadata_baselines")  # saves the head-CT classifier that 08 explains (cached per session)
    record = run_notebook(STEM)
    metrics = record["metrics"]
    _check(metrics)
    for key in ("cam_pointing_rate", "cam_energy_inside", "random_pointing_rate", "random_energy_inside"):
        assert not math.isnan(metrics[key]) and 0 <= metrics[key] <= 1, key
    _check_interval(metrics["cam_pointing_rate"], metrics["cam_pointing_rate_ci"])
    assert "cam_skipped_reason" not in metrics and not any(k.startswith("external_") for k in metrics)
    assert metrics["cnn3d_accuracy"]["best"] >= 0.6
    # the maps point at the class difference far more often than noise does (smoke: ~5 class-1 test subjects)
    assert metrics["cam_pointing_rate"] >= max(0.2, 2 * metrics["random_brain_pointing_rate"])
    # the head-CT part: 04's classifier, its held-out slices with a bleed, scored against the boxes
    assert metrics["ct_n_images"] > 0
    assert 0 < metrics["ct_random_pointing_rate"] <= metrics["ct_random_head_pointing_rate"] < 0.5
    assert metrics["ct_cam_pointing_rate"] >= 2 * metrics["ct_random_head_pointing_rate"]
    truth = synthetic.load_ground_truth(datasets.synthetic_dir("hcp", "smoke"))
    assert metrics["n_train"] + metrics["n_test"] == truth["n_labelled"]
    # uniform random maps point into the region about as often as the region's share of the cube
    assert metrics["random_pointing_rate"] < 0.1


@pytest.mark.notebook
def test_08_without_ground_truth_and_with_external_validation(run_notebook, variant_dataset, generator_free_dataset):
    source, truth = variant_dataset("hcp")
    root = generator_free_dataset("hcp", source)            # no ground_truth.json: the maps cannot be scored
    external = datasets.synthetic_dir("hcp", "smoke")
    # no head-CT model in that folder either: the optional part says so and is skipped
    record = run_notebook(STEM, variant="seed1-generator-free", data_dir=str(root), external_data_dir=str(external),
                          ct_model_dir=str(root / "no-model-here"))
    metrics = record["metrics"]
    _check(metrics)
    assert metrics["cam_pointing_rate"] is None and metrics["cam_pointing_rate_ci"] is None
    assert "no ground truth" in metrics["cam_skipped_reason"]
    assert "ct_cam_pointing_rate" not in metrics
    assert metrics["n_train"] + metrics["n_test"] == truth["n_labelled"]
    ext_truth = synthetic.load_ground_truth(external)
    assert metrics["external_n_subjects"] == ext_truth["n_labelled"]
    for key in ("external_cnn3d_accuracy", "external_cnn3d_auc"):
        assert set(metrics[key]) == set(metrics["cnn3d_accuracy"])
        for size, value in metrics[key].items():
            _check_interval(value, metrics[f"{key}_ci"][size])
