import numpy as np
import pytest

from helpers import repro, training
from helpers.schedules import PolyDecay, poly_lr

repro.setup(0)
import keras  # noqa: E402

from helpers.models import unet  # noqa: E402


@pytest.mark.parametrize("upsampling", ["transpose", "bilinear"])
def test_build_unet_shapes(upsampling):
    model = unet.build_unet((32, 32, 1), depth=3, base_filters=4, upsampling=upsampling, dropout=0.2)
    assert isinstance(model, keras.Model)
    out = model.predict(np.zeros((2, 32, 32, 1), "float32"), verbose=0)
    assert out.shape == (2, 32, 32, 1) and (0 <= out).all() and (out <= 1).all()
    multi = unet.build_unet((16, 16, 2), depth=2, base_filters=4, n_classes=3, batch_norm=False)
    assert multi.output_shape == (None, 16, 16, 3)
    with pytest.raises(ValueError):
        unet.build_unet((30, 30, 1), depth=3)


def test_dice_losses():
    t = np.zeros((1, 4, 4, 1), "float32")
    t[0, :2] = 1
    assert float(unet.dice_loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(unet.dice_loss(t, 1 - t)) == pytest.approx(1 - 1 / 17, abs=1e-6)
    empty = np.zeros_like(t)
    assert float(unet.dice_loss(empty, empty)) == pytest.approx(0.0, abs=1e-6)   # smoothing: no 0/0
    assert float(unet.bce_dice_loss(t, 1 - t)) > float(unet.dice_loss(t, 1 - t))


def test_poly_schedule():
    np.testing.assert_allclose(poly_lr([0, 50, 100, 200], 1e-2, 100), [1e-2, 1e-2 * 0.5**0.9, 0, 0])
    sched = PolyDecay(1e-2, 100)
    assert float(sched(50)) == pytest.approx(1e-2 * 0.5**0.9, rel=1e-5)
    assert PolyDecay.from_config(sched.get_config()).max_steps == 100


def test_unet_learns_a_square_and_checkpoint_reloads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(0.2, 0.05, (48, 32, 32, 1)).astype("float32")
    y = np.zeros_like(x)
    for i in range(len(x)):
        r, c = rng.integers(4, 22, 2)
        x[i, r:r + 7, c:c + 7] += 0.6
        y[i, r:r + 7, c:c + 7] = 1
    model = unet.build_unet((32, 32, 1), depth=2, base_filters=8)
    model.compile(keras.optimizers.Adam(PolyDecay(5e-3, 150)), loss=unet.dice_loss,
                  metrics=[unet.dice_coefficient])
    path = tmp_path / "best.keras"
    timer = training.EpochTimer()
    model.fit(x[:40], y[:40], validation_data=(x[40:], y[40:]), epochs=25, batch_size=8, verbose=0,
              callbacks=unet.training_callbacks(path, patience=25) + [timer])
    assert path.is_file() and len(timer.seconds) >= 1
    reloaded = keras.models.load_model(path)
    pred = reloaded.predict(x[40:], verbose=0) > 0.5
    inter = (pred & (y[40:] > 0)).sum()
    assert 2 * inter / (pred.sum() + y[40:].sum()) > 0.6
