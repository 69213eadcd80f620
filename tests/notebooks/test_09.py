"""Notebook 09 (cine MRI to the ejection fraction), smoke profile: the split by study, the CRPS
against the baseline that ignores the images, every interval, and a run on unseen data that has
no masks and no generator files (the real download's situation), validated externally."""
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers import datasets, paths, synthetic

STEM = "09_ejection_fraction"
SCORES = ("crps", "edv_mae_ml", "esv_mae_ml", "ef_mae")


def check_scores(m: dict, prefix: str = ""):
    for key in SCORES:   # each score with its study-level bootstrap interval
        value, ci = m[f"{prefix}{key}"], m[f"{prefix}{key}_ci"]
        assert math.isfinite(value) and ci[0] <= value <= ci[1], (prefix + key, value, ci)
    assert 0 <= m[f"{prefix}crps"] < 1 and 0 <= m[f"{prefix}ef_mae"] <= 100


def n_studies_with_volumes(root: Path) -> int:
    table = pd.read_csv(root / "train.csv")
    return int(table[["Systole", "Diastole"]].notna().all(axis=1).sum())


@pytest.mark.notebook
def test_09_scores_volumes_better_than_the_mean_baseline(run_notebook):
    record = run_notebook(STEM)
    m = record["metrics"]
    root = datasets.synthetic_dir("dsb2", "smoke")
    truth = synthetic.load_ground_truth(root)
    assert m["n_train_studies"] + m["n_val_studies"] + m["n_test_studies"] == truth["n_cases"]
    assert m["n_test_studies"] >= 2 and m["n_val_studies"] >= 2
    assert m["masks_from"] == "this folder"
    stack = m["stack"]                                             # every planted irregularity, counted
    assert stack["n_studies"] == truth["n_cases"] and stack["studies_without_masks"] == 0
    assert stack["slices_with_a_gap_in_the_cycle"] == truth["n_unreadable"]   # the broken frame is a gap
    check_scores(m)
    low, high = m["crps_mean_baseline_ci"]
    assert low <= m["crps_mean_baseline"] <= high
    assert m["crps"] < m["crps_mean_baseline"]                     # the images carry the volumes
    assert m["crps_vs_baseline"] == pytest.approx(m["crps"] / m["crps_mean_baseline"], rel=0.05)
    for part in ("systole", "diastole"):                            # learned on the validation studies
        cal = m["calibration"][part]
        assert cal["n_studies"] == m["n_val_studies"] and 0.5 < cal["scale"] < 2 and cal["rel_sd"] >= 0
    assert not any(k.startswith("external_") for k in m)
    for name in ("bland_altman.png", "one_study.png", "training_crops.png", "locator.keras", "segmenter.keras"):
        assert (Path(record["output_dir"]) / name).stat().st_size > 1000, name


def _without_masks(source: Path) -> Path:
    """A copy of ``source`` without its optional ``lv_masks/``, as the real DSB2 download is."""
    target = paths.data_root() / "synthetic" / "test-generator-free" / f"{source.name}-no-masks"
    shutil.rmtree(target, ignore_errors=True)
    ignore = shutil.ignore_patterns("lv_masks", ".medimg_cache")
    try:
        shutil.copytree(source, target, copy_function=os.link, ignore=ignore)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=ignore)
    return target


@pytest.mark.notebook
def test_09_unseen_data_without_masks_learns_elsewhere_and_validates_externally(
        run_notebook, variant_dataset, generator_free_dataset):
    # scored on another DSB2-layout folder (seed 1) with neither lv_masks/ nor ground_truth.json:
    # locator and segmenter learn from the synthetic smoke set; a third folder (seed 2) is external
    source, _ = variant_dataset("dsb2")
    root = _without_masks(generator_free_dataset("dsb2", source))
    assert not (root / "lv_masks").exists() and not (root / synthetic.GROUND_TRUTH).exists()
    external, _ = variant_dataset("dsb2", seed=2)
    record = run_notebook(STEM, variant="seed1-no-masks", data_dir=str(root), external_data_dir=str(external))
    m = record["metrics"]
    assert m["masks_from"] == str(datasets.synthetic_dir("dsb2", "smoke"))
    assert m["stack"]["studies_without_masks"] == m["stack"]["n_studies"]
    assert m["n_train_studies"] + m["n_val_studies"] + m["n_test_studies"] == n_studies_with_volumes(root)
    check_scores(m)
    assert m["crps"] < m["crps_mean_baseline"]
    check_scores(m, "external_")
    assert m["external_n_studies"] == n_studies_with_volumes(external)
