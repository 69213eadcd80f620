"""Notebook 08 (3-D CNN + checked class activation maps) in the smoke profile."""
import math

import pytest

from helpers import datasets, synthetic

STEM = "08_cam_visualization"


def _check(metrics: dict):
    acc = metrics["cnn3d_accuracy"]
    assert set(acc) >= {"best"} and len(acc) >= 2, "accuracy per resolution and the best"
    assert acc["best"] == max(v for k, v in acc.items() if k != "best")
    assert 0 <= metrics["cnn3d_auc"]["best"] <= 1
    assert set(metrics["classical_accuracy"]) == set(acc) and all(0 <= v <= 1 for v in metrics["classical_accuracy"].values())
    assert str(metrics["cam_volume_size"]) in acc
    for key in ("cam_pointing_rate", "cam_energy_inside", "random_pointing_rate", "random_energy_inside"):
        assert key in metrics and not math.isnan(metrics[key]) and 0 <= metrics[key] <= 1, key
    assert metrics["n_params"] > 0 and metrics["peak_memory_mb"] > 0
    assert metrics["seed_net_params"] > 10_000_000 and metrics["seed_net_activation_gib"] > 1


@pytest.mark.notebook
def test_08_smoke(run_notebook):
    run_notebook("04_metadata_baselines")  # saves the head-CT classifier that 08 explains (cached per session)
    record = run_notebook(STEM)
    metrics = record["metrics"]
    _check(metrics)
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
def test_08_runs_unchanged_on_another_hcp_folder(run_notebook, variant_dataset):
    path, truth = variant_dataset("hcp")
    # no head-CT model in that folder: the optional part says so and is skipped
    record = run_notebook(STEM, variant="seed1", data_dir=str(path), ct_model_dir=str(path / "no-model-here"))
    metrics = record["metrics"]
    _check(metrics)  # the model may be weaker on other data; the pipeline must not break
    assert "ct_cam_pointing_rate" not in metrics
    assert metrics["n_train"] + metrics["n_test"] == truth["n_labelled"]
