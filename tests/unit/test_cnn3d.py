"""helpers.models.cnn3d: output shapes, parameter counts, memory from shapes."""
import helpers  # noqa: F401

# isort: split
import numpy as np
import pytest

from helpers.models import cnn3d


def _conv_params(c_in, c_out, k=3):
    return k**3 * c_in * c_out  # no bias (BatchNorm follows)


def test_output_shape_and_layer_names():
    model = cnn3d.build_cnn3d((20, 24, 16), filters=(4, 8), dense=16, n_classes=1)
    assert model.input_shape == (None, 20, 24, 16, 1)
    assert model.output_shape == (None, 1)
    out = model.predict(np.zeros((3, 20, 24, 16, 1), np.float32), verbose=0)
    assert out.shape == (3, 1) and np.all((out >= 0) & (out <= 1))
    last = model.get_layer(cnn3d.LAST_CONV)
    assert last.output.shape[1:] == (10, 12, 8, 8)  # one pooling by 2 before the last block
    assert model.get_layer("gap") is not None and model.get_layer("classifier") is not None


def test_softmax_head_sums_to_one():
    model = cnn3d.build_cnn3d((8, 8, 8, 2), filters=(4,), dense=0, dropout=0, n_classes=3)
    out = model.predict(np.random.default_rng(0).normal(size=(2, 8, 8, 8, 2)).astype("float32"), verbose=0)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)


def test_param_count_matches_the_architecture():
    model = cnn3d.build_cnn3d((16, 16, 16), filters=(8, 16, 32), dense=64, n_classes=1)
    convs = _conv_params(1, 8) + _conv_params(8, 16) + _conv_params(16, 32)
    bn = 4 * (8 + 16 + 32)  # gamma, beta, moving mean, moving variance
    dense = 32 * 64 + 64 + 64 * 1 + 1
    assert cnn3d.param_count(model) == convs + bn + dense


def test_memory_is_computed_from_shapes():
    model = cnn3d.build_cnn3d((16, 16, 16), filters=(4, 8), dense=0, dropout=0)
    table = cnn3d.memory_table(model, batch_size=2)
    first = table.set_index("layer").loc["block1_conv1"]
    assert first["values_per_sample"] == 16**3 * 4
    assert first["activation_mib"] == pytest.approx(2 * 16**3 * 4 * 4 / 2**20)
    summary = cnn3d.memory_summary(model, batch_size=2)
    assert summary["params"] == table["params"].sum() == cnn3d.param_count(model)
    assert summary["training_state_mib"] == pytest.approx(4 * summary["weights_mib"])
    assert summary["largest_layer"] == "block1_conv1"
    assert summary["total_training_mib"] > summary["activations_mib"] > 0
    # doubling the batch doubles activations but not the weights
    twice = cnn3d.memory_summary(model, batch_size=4)
    assert twice["activations_mib"] == pytest.approx(2 * summary["activations_mib"])
    assert twice["weights_mib"] == summary["weights_mib"]


def test_bad_arguments():
    with pytest.raises(ValueError):
        cnn3d.build_cnn3d((8, 8))
    with pytest.raises(ValueError):
        cnn3d.build_cnn3d((8, 8, 8), filters=())


def test_coordinate_channels_and_no_batch_norm():
    model = cnn3d.build_cnn3d((6, 8, 10), filters=(2,), dense=0, dropout=0, coords=True, batch_norm=False)
    coords = model.get_layer("coords").output
    assert coords.shape[1:] == (6, 8, 10, 4)  # the volume + x, y, z
    import keras

    probe = keras.Model(model.input, coords)
    out = np.asarray(probe(np.zeros((2, 6, 8, 10, 1), np.float32)))
    np.testing.assert_allclose(out[0, :, 0, 0, 1], np.linspace(-1, 1, 6), atol=1e-6)
    np.testing.assert_allclose(out[1, 0, 0, :, 3], np.linspace(-1, 1, 10), atol=1e-6)
    assert not any("bn" in layer.name for layer in model.layers)
    assert model.get_layer(cnn3d.LAST_CONV).use_bias


def test_standardise_uses_training_subjects_only():
    rng = np.random.default_rng(0)
    vols = rng.normal(1.0, 0.2, (10, 4, 4, 4)).astype(np.float32)
    vols[8:] += 100  # test subjects far away must not move the training statistics
    z = cnn3d.standardise_volumes(vols, np.arange(8), floor=0.0)
    np.testing.assert_allclose(z[:8].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(z[:8].std(axis=0), 1, atol=1e-3)
    assert z[8:].mean() > 100


def test_train_classifier_learns_an_easy_task_and_reports_on_test_subjects():
    rng = np.random.default_rng(0)
    vols = rng.normal(0, 0.2, (40, 8, 8, 8)).astype(np.float32)
    labels = np.where(np.arange(40) % 2, 1, -1)
    vols[labels == 1] += 1.0  # class 1 is brighter everywhere
    train, test = np.arange(28), np.arange(28, 40)
    run = cnn3d.train_classifier(vols, labels, train, test, epochs=8, batch_size=8, learning_rate=0.01, seed=0,
                                 filters=(4,), dense=0, dropout=0)
    assert run["test_prob"].shape == (12,) and run["params"] == cnn3d.param_count(run["model"])
    assert run["accuracy"] >= 0.9 and run["auc"] >= 0.9
    assert len(run["history"]["loss"]) == 8


def test_recalibrate_batch_norm_sets_the_exact_statistics():
    import keras

    rng = np.random.default_rng(0)
    x = (5.0 + 2.0 * rng.normal(size=(6, 8, 8, 8))).astype("float32")
    model = cnn3d.build_cnn3d((8, 8, 8), filters=(4, 8), dense=0, dropout=0)
    assert cnn3d.recalibrate_batch_norm(model, x, batch_size=4) == 2
    for name in ("block1_conv1", cnn3d.LAST_CONV):
        bn = model.get_layer(f"{name}_bn")
        feats = keras.Model(model.input, bn.input).predict(x[..., None], verbose=0).reshape(-1, bn.input.shape[-1])
        np.testing.assert_allclose(np.asarray(bn.moving_mean), feats.mean(0), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(np.asarray(bn.moving_variance), feats.var(0), rtol=1e-3, atol=1e-4)
    # with the exact statistics, the first block's normalised output has mean ~0 and sd ~1 per channel
    normed = keras.Model(model.input, model.get_layer("block1_conv1_bn").output).predict(x[..., None], verbose=0)
    gamma = np.asarray(model.get_layer("block1_conv1_bn").gamma)
    np.testing.assert_allclose(normed.reshape(-1, 4).mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(normed.reshape(-1, 4).std(0), np.abs(gamma), rtol=1e-2)


def test_train_classifier_recalibrates_on_the_training_volumes_only(monkeypatch):
    seen = []
    monkeypatch.setattr(cnn3d, "recalibrate_batch_norm", lambda model, x, batch_size=8: seen.append(x.copy()) or 0)
    rng = np.random.default_rng(1)
    vols = rng.normal(size=(12, 8, 8, 8)).astype(np.float32)
    vols[8:] += 100.0  # test volumes are unmistakable
    labels = np.where(np.arange(12) % 2, 1, -1)
    run = cnn3d.train_classifier(vols, labels, np.arange(8), np.arange(8, 12), epochs=1, batch_size=4,
                                 filters=(2,), dense=0, dropout=0)
    assert len(seen) == 1 and seen[0].shape == (8, 8, 8, 8, 1) and seen[0].max() < 50
    assert {"accuracy_running_bn", "auc_running_bn"} <= set(run)
    no_recal = cnn3d.train_classifier(vols, labels, np.arange(8), np.arange(8, 12), epochs=1, batch_size=4,
                                      filters=(2,), dense=0, dropout=0, recalibrate=False)
    assert len(seen) == 1 and no_recal["accuracy"] == no_recal["accuracy_running_bn"]


def test_standardise_applies_the_training_statistics_to_other_volumes():
    rng = np.random.default_rng(0)
    volumes, other = rng.normal(size=(6, 3, 3, 3)), rng.normal(size=(2, 3, 3, 3))
    z = cnn3d.standardise_volumes(volumes, [0, 1, 2], apply_to=other)
    train = volumes[[0, 1, 2]]
    np.testing.assert_allclose(z, (other - train.mean(0)) / (train.std(0) + 0.05), rtol=1e-5)


def test_subject_scores_known_answer_and_intervals():
    labels = np.array([1, 1, 1, -1, -1, -1])
    prob = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.6])                  # two mistakes, ranking 8/9 right
    out = cnn3d.subject_scores(labels, prob, [f"s{i}" for i in range(6)], n_boot=300)
    assert out["accuracy"] == pytest.approx(4 / 6, abs=1e-4) and out["auc"] == pytest.approx(8 / 9, abs=1e-4)
    assert out["accuracy_ci"][0] <= out["accuracy"] <= out["accuracy_ci"][1] and out["n_subjects"] == 6
    assert out["auc_ci"][0] <= out["auc"] <= out["auc_ci"][1]
    assert cnn3d.subject_scores([], [], [])["accuracy"] is None


def test_classical_baseline_reports_its_test_predictions():
    from helpers import classical

    rng = np.random.default_rng(0)
    labels = np.repeat([1, -1], 12)
    flat = rng.normal(size=(24, 30)) + labels[:, None] * 0.8
    train, test = np.arange(0, 24, 2), np.arange(1, 24, 2)
    out = cnn3d.classical_baseline(flat, labels, train, test, np.arange(24).astype(str))
    ref = classical.best_model_on_split(flat[train], labels[train], flat[test], labels[test])
    assert out["name"] == ref["name"] and out["accuracy"] == pytest.approx(ref["accuracy"])
    assert out["test_pred"].shape == (12,) and out["accuracy_ci"][0] <= out["accuracy"] <= out["accuracy_ci"][1]
