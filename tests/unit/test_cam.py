"""helpers.cam: Grad-CAM and CAM point at what the model responds to; the scores are right."""
import helpers  # noqa: F401

# isort: split
import numpy as np
import pytest
from scipy import ndimage

from helpers import cam

SIZE = 16
BOX = (slice(10, 14),) * 3  # the bright cube/square, away from the centre


def _bright_detector(ndim: int, dropout: bool = True):
    """A model whose answer is known: 'something bright' (class 1) vs 'all dark' (class 0).

    Filter 0 of the first conv averages its neighbourhood (fires on bright voxels), filter 1
    is 0.5 minus that average (fires on dark ones). A 1x1 conv keeps both, named "top";
    the classifier adds filter 0 and subtracts filter 1 after global average pooling.
    """
    import keras
    from keras import layers

    conv = {2: layers.Conv2D, 3: layers.Conv3D}[ndim]
    pool = {2: layers.MaxPooling2D, 3: layers.MaxPooling3D}[ndim]
    gap = {2: layers.GlobalAveragePooling2D, 3: layers.GlobalAveragePooling3D}[ndim]
    inp = keras.Input((SIZE,) * ndim + (1,))
    x = conv(2, 3, padding="same", activation="relu", name="feat")(inp)
    x = pool(2)(x)
    x = conv(2, 1, name="top")(x)
    x = layers.Activation("relu", name="top_relu")(x)
    x = gap()(x)
    if dropout:
        x = layers.Dropout(0.5)(x)
    out = layers.Dense(1, activation="sigmoid", name="classifier")(x)
    model = keras.Model(inp, out)
    k = np.zeros((3,) * ndim + (1, 2), np.float32)
    k[..., 0, 0] = 1 / 3**ndim
    k[..., 0, 1] = -1 / 3**ndim
    model.get_layer("feat").set_weights([k, np.array([0.0, 0.5], np.float32)])
    model.get_layer("top").set_weights([np.eye(2, dtype=np.float32).reshape((1,) * ndim + (2, 2)),
                                        np.zeros(2, np.float32)])
    w = np.array([[50.0], [-10.0]], np.float32)
    features = keras.Model(inp, model.get_layer("top_relu").output)
    bright, _ = _images(ndim, n=1)
    axes = tuple(range(1, ndim + 1))
    logits = [float(features.predict(v[..., None], verbose=0).mean(axis=axes)[0] @ w[:, 0])
              for v in (bright, np.zeros_like(bright))]
    bias = -np.mean(logits)  # half way between "box" and "all dark"
    model.get_layer("classifier").set_weights([w, np.array([bias], np.float32)])
    return model


def _images(ndim: int, n: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.02, (n,) + (SIZE,) * ndim).astype(np.float32)
    box = BOX[:ndim]
    for img in x:
        img[box] = 1.0
    mask = np.zeros((SIZE,) * ndim, bool)
    mask[box] = True
    return x, mask


@pytest.mark.parametrize("ndim", [2, 3])
def test_grad_cam_points_at_the_bright_box(ndim):
    model = _bright_detector(ndim)
    x, mask = _images(ndim)
    assert np.all(model.predict(x[..., None], verbose=0) > 0.5)  # the model sees the box
    maps = cam.grad_cam(model, x)  # predicted class, last conv found automatically
    assert maps.shape == x.shape and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.max(axis=tuple(range(1, ndim + 1))), 1)
    assert np.all(cam.pointing_game(maps, mask))
    # the box is 1.6 % (3-D) / 6 % (2-D) of the grid; a coarse map spreads a little around it
    assert np.all(cam.energy_inside(maps, mask) > 0.3)


@pytest.mark.parametrize("ndim", [2, 3])
def test_grad_cam_of_the_other_class_points_elsewhere(ndim):
    model = _bright_detector(ndim)
    x, mask = _images(ndim)
    maps = cam.grad_cam(model, x, class_index=0)  # evidence for "all dark": the dark background
    assert not np.any(cam.pointing_game(maps, mask))
    assert np.all(cam.energy_inside(maps, mask) < 0.05)
    # -1 means the negative class too (the HCP labels are 1 / -1)
    np.testing.assert_allclose(cam.grad_cam(model, x, class_index=-1), maps)


def test_grad_cam_layer_choice():
    model = _bright_detector(3)
    assert cam.last_conv_layer(model).name == "top"
    assert cam.feature_layer(model).name == "top_relu"  # block output after its activation
    x, mask = _images(3, n=2)
    early = cam.grad_cam(model, x, layer_name="feat")  # finer grid, still on the box
    assert np.all(cam.pointing_game(early, mask))
    coarse = cam.grad_cam(model, x, upsample_to_input=False)
    assert coarse.shape == (2, 8, 8, 8)


@pytest.mark.parametrize("ndim", [2, 3])
def test_cam_points_at_the_bright_box(ndim):
    model = _bright_detector(ndim)
    x, mask = _images(ndim)
    maps = cam.cam(model, x)
    assert maps.shape == x.shape
    assert np.isclose(maps.min(), 0) and np.isclose(maps.max(), 1)
    assert np.all(cam.pointing_game(maps, mask))
    assert not np.any(cam.pointing_game(cam.cam(model, x, class_index=0), mask))


def test_trained_3d_cnn_points_at_the_cube():
    """A real (trained) builder model: class 1 volumes hold a bright cube at a random place."""
    import keras

    from helpers.models import cnn3d

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, s = 64, 16
    x = rng.normal(0, 0.3, (n, s, s, s)).astype(np.float32)
    y = np.arange(n) % 2
    corners = rng.integers(1, s - 5, (n, 3))
    for v, c, label in zip(x, corners, y):
        if label:
            v[c[0]:c[0] + 4, c[1]:c[1] + 4, c[2]:c[2] + 4] += 2.0
    model = cnn3d.build_cnn3d((s, s, s), filters=(4, 8), dense=0, dropout=0)
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy", metrics=["accuracy"])
    model.fit(x[..., None], y, epochs=10, batch_size=16, verbose=0)
    pos = np.flatnonzero(y)[:12]
    assert model.evaluate(x[pos, ..., None], y[pos], verbose=0)[1] > 0.9
    grad_maps = cam.grad_cam(model, x[pos], class_index=1)
    cam_maps = cam.cam(model, x[pos], class_index=1)
    for maps in (grad_maps, cam_maps):
        for m, c in zip(maps, corners[pos]):
            # the hot blob (heat > 0.5) is centred on the cube, to within a voxel ...
            centre = np.array(ndimage.center_of_mass(np.where(m > 0.5, m, 0)))
            assert np.abs(centre - (c + 1.5)).max() < 1.5
            # ... and holds far more heat than its share of the grid (a coarse 8^3 map, so
            # the cube's 2-voxel neighbourhood counts)
            near = np.zeros((s, s, s), bool)
            near[c[0]:c[0] + 4, c[1]:c[1] + 4, c[2]:c[2] + 4] = True
            near = ndimage.binary_dilation(near, iterations=2)
            assert cam.energy_inside(m, near) > 3 * near.mean()


def test_cam_needs_a_gap_linear_head():
    from helpers.models import cnn3d

    model = cnn3d.build_cnn3d((8, 8, 8), filters=(2,), dense=4)
    with pytest.raises(ValueError, match="grad_cam"):
        cam.cam(model, np.zeros((1, 8, 8, 8), np.float32))
    maps = cam.grad_cam(model, np.zeros((1, 8, 8, 8), np.float32))  # Grad-CAM works on it
    assert maps.shape == (1, 8, 8, 8) and np.all((maps >= 0) & (maps <= 1))


def test_pointing_and_energy_on_hand_made_masks():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    heat = np.zeros((10, 10))
    heat[3, 3] = 1.0
    heat[8, 8] = 0.5
    assert cam.pointing_game(heat, mask) is True
    assert cam.energy_inside(heat, mask) == pytest.approx(1 / 1.5)
    heat2 = np.zeros((10, 10))
    heat2[5, 5] = 1.0
    assert cam.pointing_game(heat2, mask) is False
    assert cam.pointing_game(heat2, mask, tolerance=2) is True  # 15-pixel-style slack
    assert cam.energy_inside(heat2, mask) == 0.0
    batch = np.stack([heat, heat2, np.zeros((10, 10))])
    np.testing.assert_array_equal(cam.pointing_game(batch, mask), [True, False, False])  # flat map: miss
    e = cam.energy_inside(batch, mask)
    assert e[0] == pytest.approx(2 / 3) and e[1] == 0 and np.isnan(e[2])
    with pytest.raises(ValueError):
        cam.pointing_game(np.zeros((5, 5)), mask)


def test_random_baseline_matches_its_expectation():
    mask = np.zeros((12, 12, 12), bool)
    mask[:3] = True  # a quarter of the grid
    base = cam.random_baseline(mask, n=400, seed=0)
    assert base["expected_pointing_rate"] == pytest.approx(0.25)
    assert base["pointing_rate"] == pytest.approx(0.25, abs=0.07)
    assert base["energy_inside"] == pytest.approx(0.25, abs=0.01)
    smooth = cam.random_baseline(mask, n=200, seed=1, smooth_sigma=1.5)
    assert smooth["pointing_rate"] == pytest.approx(0.25, abs=0.12)
    within = np.zeros_like(mask)
    within[:6] = True  # noise only in half the grid: the region is half of it
    strict = cam.random_baseline(mask, n=200, seed=2, within=within)
    assert strict["expected_pointing_rate"] == pytest.approx(0.5)
    assert strict["pointing_rate"] == pytest.approx(0.5, abs=0.12)


def test_upsample_and_normalise():
    maps = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    up = cam.upsample(maps, (5, 4, 6))
    assert up.shape == (1, 5, 4, 6)
    assert up.min() >= 0 - 1e-6 and up.max() <= 7 + 1e-6
    norm = cam.normalise(np.stack([maps[0], np.zeros((2, 2, 2))]))
    assert norm[0].max() == 1 and np.all(norm[1] == 0)


def test_feature_layer_of_a_resnet_is_the_last_block_output():
    from helpers.models.resnet import build_resnet

    model = build_resnet((32, 32, 3), widths=(4, 8), blocks_per_stage=1)
    layer = cam.feature_layer(model)
    assert layer.name == "stage2_block1_out"  # conv -> BN -> Add(shortcut) -> ReLU
    maps = cam.grad_cam(model, np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32"), class_index=1)
    assert maps.shape == (2, 32, 32) and maps.max() <= 1


def test_box_masks_cover_every_overlapped_pixel():
    import pandas as pd

    boxes = pd.DataFrame({"row": [0, 0, 2, 1, 1], "clean_row0": [1.2, 5.0, 3.4, -4.0, 9.0],
                          "clean_col0": [1.0, 5.0, 7.6, 2.0, 2.0], "clean_row1": [2.5, 6.0, 3.6, -1.0, 12.0],
                          "clean_col1": [3.0, 7.5, 7.7, 4.0, 4.0]})  # image 1: boxes above and below it
    masks = cam.box_masks(boxes, 3, (8, 8))
    assert masks.shape == (3, 8, 8) and masks.dtype == bool
    expected = np.zeros((8, 8), bool)
    expected[1:3, 1:3] = True      # rows 1.2-2.5 overlap pixels 1 and 2
    expected[5:6, 5:8] = True      # the second box, clipped to the image
    np.testing.assert_array_equal(masks[0], expected)
    assert not masks[1].any()      # its boxes lie outside the image
    assert masks[2].sum() == 1 and masks[2][3, 7]  # smaller than a pixel: still one pixel


def test_head_ct_check_without_a_saved_model_says_so(tmp_path):
    check = cam.head_ct_check(tmp_path)
    assert check["status"].startswith("no saved head-CT model") and "04" in check["status"]


def test_head_ct_check_scores_the_held_out_bleeds_against_their_boxes(tmp_path):
    from helpers import datasets, rsna, training
    from helpers.models.resnet import build_resnet

    root = datasets.resolve("rsna", None, "smoke")
    _, clean = rsna.load_clean(root, image_size=32)
    positives = clean.loc[clean["any"] == 1, "image_id"].tolist()[:3]
    negatives = clean.loc[clean["any"] == 0, "image_id"].tolist()[:2]
    model = build_resnet((32, 32, 3), widths=(4, 8), blocks_per_stage=1)
    training.save_classifier(model, tmp_path, "head_ct_cnn", data_root=str(root), image_size=32,
                             windows=["brain", "subdural", "bone"], test_image_ids=positives + negatives)
    check = cam.head_ct_check(tmp_path)
    assert check["status"] == "ok"
    assert check["image_ids"] == [i for i in clean["image_id"] if i in set(positives)]  # bleeds only, table order
    assert check["maps"].shape == check["masks"].shape == (3, 32, 32) and check["prob"].shape == (3,)
    for image_id, mask in zip(check["image_ids"], check["masks"]):
        one = clean[clean["image_id"] == image_id].reset_index(drop=True)
        np.testing.assert_array_equal(mask, cam.box_masks(rsna.lesion_boxes(root, one, 32), 1, (32, 32))[0])
    assert 0 < check["random_pointing_rate"] <= check["random_head_pointing_rate"] < 1
    assert check["pointing_rate"] == np.mean(check["pointing"])
    capped = cam.head_ct_check(tmp_path, max_images=2)         # bounded on a large set: slices 0 and 2 of 3
    assert capped["image_ids"] == [check["image_ids"][0], check["image_ids"][2]]
    np.testing.assert_array_equal(capped["masks"], check["masks"][[0, 2]])
    # a model file that is not the one the record describes is refused, not silently paired with its ids
    build_resnet((32, 32, 3), widths=(4, 8), blocks_per_stage=1, name="other").save(tmp_path / "head_ct_cnn.keras")
    assert cam.head_ct_check(tmp_path)["status"].startswith("cannot use the saved head-CT model")


def test_check_against_region_scores_with_intervals_or_says_why_not():
    region = np.zeros((8, 8, 8), bool)
    region[2:4, 2:4, 2:4] = True
    maps = np.zeros((4, 8, 8, 8))
    maps[:3, 3, 3, 3] = 1.0                                    # three maps peak inside, one outside
    maps[3, 7, 7, 7] = 1.0
    check = cam.check_against_region({"Grad-CAM": maps, "CAM": maps}, region, ["a", "b", "c", "d"], n_random=20)
    assert check["scored"] and check["skipped_reason"] is None and check["n_maps"] == 4
    assert check["pointing_rate"]["Grad-CAM"] == 0.75
    low, high = check["pointing_rate_ci"]["Grad-CAM"]
    assert 0 <= low <= 0.75 <= high <= 1
    assert check["random"]["pointing_rate"] < 0.2 and "pointing rate" in cam.describe_region_check(check)
    # no ground truth (real data): the same keys, all None, and one line saying why
    none = cam.check_against_region({"Grad-CAM": maps}, None, ["a", "b", "c", "d"])
    assert not none["scored"] and none["pointing_rate"] == {"Grad-CAM": None}
    assert none["random"]["pointing_rate"] is None and "no ground truth" in cam.describe_region_check(none)


def test_head_ct_check_without_boxes_shows_maps_but_does_not_score(tmp_path, monkeypatch):
    from helpers import datasets, rsna, training
    from helpers.models.resnet import build_resnet

    root = datasets.resolve("rsna", None, "smoke")
    _, clean = rsna.load_clean(root, image_size=32)
    positives = clean.loc[clean["any"] == 1, "image_id"].tolist()[:2]
    model = build_resnet((32, 32, 3), widths=(4, 8), blocks_per_stage=1)
    training.save_classifier(model, tmp_path, "head_ct_cnn", data_root=str(root), image_size=32,
                             windows=["brain", "subdural", "bone"], test_image_ids=positives)

    def no_boxes(*args, **kwargs):                             # as on a real download
        raise FileNotFoundError("ground_truth_lesions.csv")

    monkeypatch.setattr(rsna, "lesion_boxes", no_boxes)
    check = cam.head_ct_check(tmp_path)
    assert check["status"] == "ok" and not check["scored"] and "no ground truth" in check["skipped_reason"]
    assert check["maps"].shape == (2, 32, 32) and check["pointing_rate"] is None and check["masks"] is None
    assert cam.plot_head_ct_check(check, n=2) is not None
