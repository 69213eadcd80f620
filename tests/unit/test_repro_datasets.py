import random

import numpy as np
import pytest

from helpers import datasets, paths, repro


def test_setup_seeds_python_and_numpy():
    repro.setup(7, keras=False)
    a = (random.random(), np.random.rand())
    repro.setup(7, keras=False)
    assert (random.random(), np.random.rand()) == a


def test_setup_summary_names_the_stack():
    summary = repro.setup(0, keras=False)
    for word in ("seed", "python", "numpy", "pydicom", "cpu cores"):
        assert word in summary


def test_setup_seeds_keras_deterministically():
    import keras

    repro.setup(1)
    a = keras.random.normal((3,)).numpy()
    repro.setup(1)
    assert np.array_equal(a, keras.random.normal((3,)).numpy())
    assert "op determinism on" in repro.setup(1)


def test_missing_or_empty_or_wrong_folder_names_the_layout(tmp_path):
    with pytest.raises(datasets.DatasetLayoutError, match="(?s)does not exist.*stage_2_train"):
        datasets.check_layout("rsna", tmp_path / "nope")
    with pytest.raises(datasets.DatasetLayoutError, match="(?s)is empty.*brain_nii"):
        datasets.check_layout("hcp", tmp_path)
    (tmp_path / "something.txt").write_text("x")
    with pytest.raises(datasets.DatasetLayoutError, match="(?s)lacks annotations.csv.*subset<k>"):
        datasets.check_layout("luna16", tmp_path)


def test_output_dir_defaults_under_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIMG_RUNS", str(tmp_path))
    assert paths.output_dir("05_pca_svm") == tmp_path / "05_pca_svm"
    assert (tmp_path / "05_pca_svm").is_dir()


def test_synthetic_data_is_kept_apart_per_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIMG_DATA", str(tmp_path))
    assert datasets.synthetic_dir("hcp", "smoke") == tmp_path / "synthetic" / "smoke" / "hcp"
    assert datasets.synthetic_dir("hcp", "smoke", seed=3) == tmp_path / "synthetic" / "smoke-seed3" / "hcp"
    calls = []
    monkeypatch.setattr("helpers.synthetic.generate",
                        lambda name, root, size, seed: calls.append((name, root, size, seed)))
    monkeypatch.setattr(datasets, "check_layout", lambda name, root: root)
    assert datasets.resolve("hcp", None, "smoke", seed=3) == tmp_path / "synthetic" / "smoke-seed3" / "hcp"
    assert calls == [("hcp", tmp_path / "synthetic" / "smoke-seed3" / "hcp", "smoke", 3)]


def test_a_dataset_written_by_another_generator_version_is_stale(tmp_path):
    """``is_complete`` trusts a synthetic folder only when its ground truth names the current
    generator VERSION: a dataset an older generator wrote is regenerated on first use."""
    import json

    from helpers import synthetic
    from helpers.synthetic import dsb2 as generator

    truth = tmp_path / synthetic.GROUND_TRUTH
    assert not synthetic.is_complete(tmp_path)                                  # nothing written yet
    for version, complete in ((generator.VERSION, True), (generator.VERSION - 1, False), (None, False)):
        record = {"dataset": "dsb2", "size": "smoke", "seed": 0}
        truth.write_text(json.dumps(record | ({} if version is None else {"generator_version": version})))
        assert synthetic.is_complete(tmp_path) is complete, version
    truth.write_text("{ not json")
    assert not synthetic.is_complete(tmp_path)
    root = datasets.resolve("dsb2", None, "smoke")                             # the shared set: current
    assert synthetic.load_ground_truth(root)["generator_version"] == generator.VERSION
