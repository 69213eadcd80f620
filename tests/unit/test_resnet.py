"""The small ResNet builder: shapes, size, residual wiring and that it can learn."""
import helpers  # noqa: F401

# isort: split
import keras
import numpy as np
import pytest

from helpers.models.resnet import build_resnet, residual_block


def test_default_model_is_small_and_outputs_probabilities():
    model = build_resnet((64, 64, 3))
    assert model.count_params() <= 400_000
    out = np.asarray(model(np.zeros((2, 64, 64, 3), "float32")))
    assert out.shape == (2, 1)
    assert np.all((out >= 0) & (out <= 1))


def test_widths_stages_and_outputs():
    model = build_resnet((32, 32, 1), widths=(8, 16), blocks_per_stage=(1, 2), n_outputs=6, stem_strides=1)
    assert model.output_shape == (None, 6)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # stem + stage1 (1 block, 2 convs, no projection) + stage2 (2 blocks, 4 convs + 1 projection)
    assert len(convs) == 1 + 2 + 5
    # the last stage runs at 1/2 of the input (stem stride 1, one downsampling stage)
    assert model.get_layer("stage2_block2_out").output.shape[1:3] == (16, 16)
    with pytest.raises(ValueError):
        build_resnet((32, 32, 1), widths=(8, 16), blocks_per_stage=(1, 2, 3))


def test_identity_shortcut_passes_input_through():
    inp = keras.Input((8, 8, 4))
    model = keras.Model(inp, residual_block(inp, 4, name="b"))
    for layer in model.layers:  # zero the residual branch: output = relu(input)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.name.startswith("b_b"):
            layer.gamma.assign(np.zeros(4, "float32"))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.maximum(x, 0), atol=1e-5)


def test_learns_a_bright_square():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.2, size=(128, 16, 16, 1)).astype("float32")
    y = (rng.uniform(size=128) < 0.5).astype("float32")
    x[y == 1, 5:10, 5:10, 0] += 1.5
    model = build_resnet((16, 16, 1), widths=(8, 16), blocks_per_stage=1, stem_strides=1)
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.9
