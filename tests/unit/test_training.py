"""LR range test, one-cycle schedule, tf.data input builder and the throughput helpers."""
import helpers  # noqa: F401

# isort: split
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import training


def _toy(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
    return x, y


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    return model


# ----------------------------------------------------------------------------- LR finder
def test_exponential_lrs_are_geometric():
    lrs = training.exponential_lrs(1e-5, 1.0, 11)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 10 ** 0.5)
    with pytest.raises(ValueError):
        training.exponential_lrs(1.0, 0.1, 10)


def test_suggest_lr_finds_the_steepest_descent():
    lrs = training.exponential_lrs(1e-5, 10.0, 121)
    x = np.log10(lrs)
    # loss falls fastest at lr = 1e-2 (a logistic step centred there), then explodes past 1
    losses = 1.0 - 0.8 / (1 + np.exp(-4 * (x + 2))) + np.where(x > 0, 5 * x ** 2, 0)
    assert training.suggest_lr(lrs, losses, beta=0.0) == pytest.approx(1e-2, rel=0.3)
    assert np.isnan(training.suggest_lr(lrs[:4], losses[:4]))


def test_lr_finder_restores_weights_and_optimizer_and_records_a_sweep():
    x, y = _toy()
    model = _model()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # optimizer built, slots non-zero
    before = [w.copy() for w in model.get_weights()]
    opt_before = [v.numpy().copy() for v in model.optimizer.variables]
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    finder = training.lr_range_test(model, ds, min_lr=1e-4, max_lr=1.0, steps=30, stop_factor=100)
    assert len(finder.lrs) == 30 and len(finder.losses) == 30
    assert np.all(np.diff(finder.lrs) > 0)
    assert finder.lrs[0] == pytest.approx(1e-4) and finder.lrs[-1] == pytest.approx(1.0)
    assert np.all(np.isfinite(finder.losses))
    assert 1e-4 <= finder.suggestion <= 1.0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, v in zip(opt_before, model.optimizer.variables):
        np.testing.assert_array_equal(a, v.numpy())
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_lr_finder_batch_losses_are_per_batch_not_running_means():
    x, y = _toy(64)
    model = _model()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # 4 batches per pass
    finder = training.LRFinder(1e-9, 2e-9, steps=8)            # lr ≈ 0: the model does not change
    model.fit(ds.repeat(), steps_per_epoch=8, epochs=1, callbacks=[finder], verbose=0)
    expected = [float(keras.losses.binary_crossentropy(y[i:i + 16], model(x[i:i + 16], training=True)[:, 0]))
                for i in range(0, 64, 16)] * 2
    np.testing.assert_allclose(finder.losses, expected, rtol=1e-3)


def test_lr_finder_stops_when_the_loss_diverges():
    x, y = _toy()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])  # linear: SGD blows up
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    finder = training.lr_range_test(model, ds, min_lr=1e-4, max_lr=1e3, steps=100, stop_factor=4)
    assert 10 < len(finder.losses) < 100
    assert finder.suggestion < 1.0


def test_plot_lr_finder_returns_a_figure():
    import matplotlib.pyplot as plt

    lrs = training.exponential_lrs(1e-4, 1.0, 50)
    fig, ax = plt.subplots()
    assert training.plot_lr_finder(lrs=lrs, losses=np.linspace(1, 0.2, 50), suggestion=1e-2, ax=ax) is fig
    assert ax.get_xscale() == "log" and len(ax.lines) == 3
    plt.close(fig)


# ----------------------------------------------------------------------------- one-cycle
def test_one_cycle_shape():
    total, max_lr = 100, 0.1
    lrs = training.one_cycle_lr(np.arange(total), total, max_lr, pct_start=0.3, div_factor=25, final_div_factor=1e4)
    peak = int(np.argmax(lrs))
    assert peak == 30 and lrs[peak] == pytest.approx(max_lr)
    assert lrs[0] == pytest.approx(max_lr / 25)
    assert lrs[-1] == pytest.approx(max_lr / 25 / 1e4)
    assert np.all(np.diff(lrs[:peak + 1]) > 0)      # warm-up: increasing
    assert np.all(np.diff(lrs[peak:]) < 0)          # annealing: decreasing
    assert training.one_cycle_lr(30, total, max_lr) == pytest.approx(max_lr)


def test_one_cycle_callback_sets_the_learning_rate_each_batch():
    x, y = _toy(64)
    model = _model()
    cb = training.OneCycle(max_lr=0.05, total_steps=12)
    seen = []
    probe = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: seen.append(float(model.optimizer.learning_rate)))
    model.fit(x, y, batch_size=16, epochs=3, callbacks=[cb, probe], verbose=0)
    expected = training.one_cycle_lr(np.arange(12), 12, 0.05)
    np.testing.assert_allclose(cb.lrs, expected, rtol=1e-6)
    np.testing.assert_allclose(seen, expected, rtol=1e-5)


# ----------------------------------------------------------------------------- tf.data
def test_make_dataset_batches_scales_and_keeps_eval_order():
    images = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4)
    labels = np.arange(10)
    ds = training.make_dataset(images, labels, batch_size=4)
    batches = list(ds)
    assert [b[0].shape for b in batches] == [(4, 4, 4, 1), (4, 4, 4, 1), (2, 4, 4, 1)]
    x = np.concatenate([b[0] for b in batches])
    np.testing.assert_allclose(x[..., 0], images / 255.0, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in ds]), labels)  # again: same order
    with pytest.raises(ValueError):
        training.make_dataset(images, labels[:5])


def test_make_dataset_shuffles_reproducibly_and_augments_training_only():
    images = np.zeros((20, 4, 4, 2), np.float32) + np.arange(20, dtype=np.float32)[:, None, None, None]
    labels = np.arange(20)

    def order(seed):
        ds = training.make_dataset(images, labels, batch_size=20, training=True, seed=seed)
        return [np.asarray(next(iter(ds))[1]) for _ in range(1)] + [np.concatenate([b[1] for b in ds])]

    a, b = order(1), order(1)
    np.testing.assert_array_equal(a[0], b[0])
    assert sorted(a[0]) == list(range(20)) and not np.array_equal(a[0], labels)
    ds = training.make_dataset(images, labels, batch_size=20, training=True, seed=1)
    epoch1, epoch2 = [np.concatenate([b[1] for b in ds]) for _ in range(2)]
    assert not np.array_equal(epoch1, epoch2)               # a new order each epoch

    def flip_sign(ds):
        return ds.map(lambda im, y: (-im, y))

    train = training.make_dataset(images, labels, 20, training=True, augment=flip_sign)
    test = training.make_dataset(images, labels, 20, training=False, augment=flip_sign)
    assert float(tf.reduce_max(next(iter(train))[0])) <= 0
    assert float(tf.reduce_min(next(iter(test))[0])) >= 0  # never augmented


def test_throughput_and_pipeline_overhead_report_sane_numbers():
    x, y = _toy(128)
    ds = training.make_dataset(x[:, :, None, None], y, batch_size=32, training=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 1, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    res = training.input_pipeline_overhead(model, ds, steps=5, warmup_steps=2)
    assert res["batch_size"] == 32 and res["memory_step_s"] > 0 and res["pipeline_step_s"] > 0
    assert res["images_per_s"] == pytest.approx(32 / res["pipeline_step_s"])
    thr = training.training_throughput(model, ds, steps=5, warmup_steps=2)
    assert thr["images_per_s"] > 0 and thr["batch_size"] == 32


def test_predict_dataset_and_epoch_timer():
    x, y = _toy(40)
    model = _model()
    timer = training.EpochTimer()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[timer])
    assert len(timer.seconds) == 2 and all(s > 0 for s in timer.seconds)
    y_true, y_pred = training.predict_dataset(model, training.make_dataset(x, y, batch_size=16))
    np.testing.assert_array_equal(y_true, y)
    assert y_pred.shape == (40, 1)


def test_history_and_schedule_plots():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    hist = {"loss": [0.7, 0.5, 0.3], "val_loss": [0.8, 90.0, 0.4], "auc": [0.5, 0.7, 0.9]}
    assert training.plot_history(hist, ax=axes[0]) is fig
    assert len(axes[0].lines) == 2 and axes[0].get_yscale() == "log"
    assert training.plot_schedule(training.one_cycle_lr(np.arange(50), 50, 0.1), ax=axes[1]) is fig
    assert len(axes[1].lines[0].get_xdata()) == 50
    plt.close(fig)


def test_save_and_load_classifier_round_trip(tmp_path):
    from helpers.models.resnet import build_resnet

    model = build_resnet((16, 16, 3), widths=(4, 8), blocks_per_stage=1)
    x = np.random.default_rng(0).random((3, 16, 16, 3)).astype("float32")
    assert training.load_classifier(tmp_path, "clf") is None          # nothing saved yet
    path = training.save_classifier(model, tmp_path, "clf", image_size=16, test_image_ids=["a", "b"])
    assert path.name == "clf.keras"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf.json", "clf.keras"]  # no temporary left over
    loaded, info = training.load_classifier(tmp_path, "clf")
    assert info == {"image_size": 16, "test_image_ids": ["a", "b"]}
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_make_dataset_streams_an_on_disk_array_in_the_same_order(tmp_path):
    """A ShardedArray gives the same batches as the same images in memory (shuffled and not)."""
    import pandas as pd

    from helpers import shards

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(37, 8, 8, 3), dtype=np.uint8)
    labels = (np.arange(37) % 2).astype(np.float32)

    def work(rows):
        return images[rows], pd.DataFrame({"row": rows})

    shards.build(tmp_path / "s", list(range(37)), work, {"images": ((8, 8, 3), np.uint8)}, shard_size=8, n_jobs=1)
    on_disk = shards.ShardedArray(tmp_path / "s")
    for kwargs in ({"training": False}, {"training": True, "seed": 3}):
        ram = list(training.make_dataset(images, labels, 10, **kwargs))
        disk = list(training.make_dataset(on_disk, labels, 10, **kwargs))
        assert [len(x) for x, _ in disk] == [10, 10, 10, 7]
        for (xa, ya), (xb, yb) in zip(ram, disk):
            np.testing.assert_array_equal(xa.numpy(), xb.numpy())
            np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    second_epoch = [y.numpy() for _, y in training.make_dataset(on_disk.take(np.arange(20)), labels[:20], 10,
                                                                 training=True, seed=3)]
    assert np.concatenate(second_epoch).shape == (20,)
