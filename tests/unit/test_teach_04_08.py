"""The lessons written out in notebooks 04 and 08 compute what the tested helpers compute.

Each test runs the notebook's own cell (read from the notebook file, not copied here) on a
small model and compares it with the helper: 04's learning-rate range test loop with
``training.lr_range_test``, 08's ``tf.GradientTape`` Grad-CAM with ``cam.grad_cam``.
"""
import helpers  # noqa: F401

# isort: split
import nbformat
import numpy as np
import pytest

from helpers import cam, paths, training


def _cell(stem: str, marker: str) -> str:
    """The one code cell of notebook ``stem`` whose source contains ``marker``."""
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"{stem}: {len(cells)} code cells contain {marker!r}"
    return cells[0]


def _small_classifier(seed: int = 0):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, layers.Dense(1, activation="sigmoid")(x))
    model.compile(keras.optimizers.Adam(), "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    return model


@pytest.mark.parametrize("lr_max, steps", [(1e-1, 12), (1e3, 40)])  # the second one diverges
def test_04_written_out_range_test_matches_lr_range_test(lr_max, steps):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8, 8)).astype(np.float32)
    y = (x[:, 2:6, 2:6].mean(axis=(1, 2)) > 0).astype(np.float32)
    model = _small_classifier()
    start = [w.copy() for w in model.get_weights()]
    namespace = {"np": np, "training": training, "model": model, "lr_min": 1e-4, "lr_max": lr_max,
                 "lr_steps": steps, "train_data": lambda: training.make_dataset(x, y, 8, training=True, seed=0)}
    exec(_cell("04_metadata_baselines", "train_on_batch"), namespace)
    hand = namespace["hand_losses"]
    for before, after in zip(start, model.get_weights()):   # the loop put the model back
        np.testing.assert_array_equal(before, after)
    finder = training.lr_range_test(model, namespace["train_data"](), 1e-4, lr_max, steps)
    assert len(hand) == len(finder.losses) >= 6
    if lr_max > 1:
        assert len(hand) < steps, "the loss diverges and both stop early"
    np.testing.assert_array_equal(namespace["lrs"][:len(hand)], finder.lrs)
    np.testing.assert_allclose(hand, finder.losses, rtol=1e-5, atol=1e-6)
    assert namespace["hand_lr"] == pytest.approx(finder.suggestion)


@pytest.mark.parametrize("dense", [0, 6])
def test_08_written_out_grad_cam_matches_cam_grad_cam(dense):
    import keras

    from helpers.models import cnn3d

    keras.utils.set_random_seed(0)
    model = cnn3d.build_cnn3d((12, 12, 12), filters=(4, 6), dense=dense, coords=True)
    rng = np.random.default_rng(1)
    volume = rng.normal(1, 0.3, (1, 12, 12, 12, 1)).astype(np.float32)
    namespace = {"np": np, "cam": cam, "model": model, "volume": volume}
    exec(_cell("08_cam_visualization", "tf.GradientTape"), namespace)
    heat = namespace["heat"]
    helper = cam.grad_cam(model, volume, class_index=1)
    assert heat.shape == helper.shape == (1, 12, 12, 12)
    assert heat.max() == pytest.approx(1.0), "a map with some positive evidence, scaled to its maximum"
    np.testing.assert_allclose(heat, helper, atol=1e-5)
