"""The code that notebook 06 writes out by hand builds what the helpers build.

The notebook's ``# lesson:`` cells write the soft Dice loss with ``keras.ops`` and a small U-Net
block by block with ``keras.layers``; these tests take those cells from the committed ``.ipynb``,
run them on small inputs and compare with ``unet.LOSSES["dice"]`` and ``unet.build_unet``, which
the notebook uses afterwards. The notebook's own comparison cells run here too, on small arrays;
their results are stored in metrics.json (``dice_loss_hand_vs_helper_max_abs_diff``,
``unet_hand_vs_helper_max_abs_diff``, ``unet_hand_vs_helper_same_params``; checked in
tests/notebooks/test_06.py).
"""
import helpers  # noqa: F401

# isort: split
import contextlib
import io

import nbformat
import numpy as np
import pytest

from helpers import paths
from helpers.models import unet

STEM = "06_unet_segmentation"
SMALL = "small_depth, small_filters = 2, 4"


def code_cells(marker: str = "") -> list[str]:
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{STEM}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and marker in c.source]


def lesson(topic: str) -> str:
    """The one ``# lesson:`` cell whose lesson line mentions ``topic``."""
    cells = [s for s in code_cells() if any(ln.startswith("# lesson:") and topic in ln for ln in s.splitlines())]
    assert len(cells) == 1, f"{len(cells)} lesson cells about {topic!r}"
    return cells[0]


def run(source: str, namespace: dict) -> dict:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(source, f"{STEM}:cell", "exec"), namespace)   # noqa: S102 - our own notebook
    namespace["_printed"] = namespace.get("_printed", "") + printed.getvalue()
    return namespace


def settings(model):
    return [(type(lay).__name__, {k: v for k, v in lay.get_config().items() if k != "name"}) for lay in model.layers]


def test_06_has_its_two_lesson_cells():
    lessons = code_cells("# lesson:")
    assert len(lessons) == 2
    assert SMALL in lesson("U-Net")
    assert "keras.ops" in lesson("Dice")


# --- the U-Net, block by block vs unet.build_unet ---------------------------------------------
@pytest.mark.parametrize("image_size, depth, filters", [(16, 2, 4), (32, 2, 4), (16, 3, 2), (8, 1, 3)])
def test_06_written_out_unet_is_build_unet(image_size, depth, filters):
    import keras

    source = lesson("U-Net").replace(SMALL, f"small_depth, small_filters = {depth}, {filters}")
    keras.utils.set_random_seed(0)
    hand = run(source, {"keras": keras, "image_size": image_size})["hand_unet"]
    helper = unet.build_unet((image_size, image_size, 1), depth=depth, base_filters=filters)
    assert settings(hand) == settings(helper), "same layer types, order and settings (names aside)"
    assert hand.count_params() == helper.count_params()
    hand.set_weights(helper.get_weights())
    x = np.random.default_rng(1).random((3, image_size, image_size, 1)).astype(np.float32)
    for training in (False, True):     # batch norm on moving statistics, then on the batch's own
        a, b = (keras.ops.convert_to_numpy(m(x, training=training)) for m in (hand, helper))
        assert a.shape == (3, image_size, image_size, 1)
        np.testing.assert_allclose(a, b, atol=1e-6)


# --- the soft Dice loss vs unet.LOSSES["dice"] ------------------------------------------------
def _dice_loss_numpy(t, p, smooth=1.0):
    t, p = np.asarray(t, np.float64).ravel(), np.asarray(p, np.float64).ravel()
    return 1 - (2 * (t * p).sum() + smooth) / (t.sum() + p.sum() + smooth)


def test_06_written_out_dice_loss_is_the_helper():
    soft_dice_loss = run(lesson("Dice"), {})["soft_dice_loss"]
    rng = np.random.default_rng(0)
    t = rng.random((4, 12, 12, 1)) > 0.8
    p = rng.random((4, 12, 12, 1)).astype(np.float32)
    cases = [(t, p), (t, t.astype(np.float32)), (t, np.zeros_like(p)), (np.zeros_like(t), np.zeros_like(p)),
             (t[..., 0], p[..., 0]), (t.astype(np.float32), np.clip(p + 0.3 * t, 0, 1))]
    for y_true, y_pred in cases:
        mine, helper = float(soft_dice_loss(y_true, y_pred)), float(unet.LOSSES["dice"](y_true, y_pred))
        assert mine == pytest.approx(helper, abs=1e-7)
        assert mine == pytest.approx(_dice_loss_numpy(y_true, y_pred), abs=1e-6)
    assert float(soft_dice_loss(t, t)) == pytest.approx(0.0, abs=1e-7), "a perfect prediction"
    assert float(soft_dice_loss(np.zeros_like(p), np.zeros_like(p))) == 0.0, "an empty batch: 0, not 0/0"
    # one Dice for the batch, not the mean of per-slice ones
    per_slice = np.mean([_dice_loss_numpy(t[i], p[i]) for i in range(len(t))])
    assert float(soft_dice_loss(t, p)) != pytest.approx(per_slice, abs=1e-4)


# --- the notebook's comparison cells, on small arrays -----------------------------------------
def test_06_comparison_cells_find_no_difference():
    import keras

    rng = np.random.default_rng(2)
    n, size = 10, 16
    masks = np.zeros((n, size, size), bool)
    for i in range(0, n, 2):
        masks[i, 4:4 + i, 5:9] = True
    images = (rng.random((n, size, size)) * 0.3 + 0.6 * masks).astype(np.float32)
    train = np.array([9, 0, 2, 3, 4, 6, 8])
    keras.utils.set_random_seed(0)
    ns = {"keras": keras, "np": np, "unet": unet, "image_size": size, "images": images, "masks": masks,
          "train": train, "foreground": masks.sum(axis=(1, 2))}
    run(lesson("U-Net"), ns)
    run(code_cells("hand_unet.set_weights")[0], ns)
    run(lesson("Dice"), ns)
    run(code_cells("soft_dice_loss(t, p)")[0], ns)
    assert list(ns["batch"]) == [2, 4, 6, 8], "the four training slices with the most foreground, in order"
    assert ns["same_params"] is True and ns["unet_diff"] < 1e-6 and ns["dice_diff"] < 1e-6
    assert "same layer settings: True" in ns["_printed"]
    losses = ns["dice_losses"]
    assert losses["a perfect prediction"][0] == pytest.approx(0.0, abs=1e-6)
    assert losses["empty masks, nothing predicted"] == (0.0, 0.0)
    assert 0 < losses["nothing predicted"][0] < 1
    assert len(ns["_printed"].splitlines()) <= 8
