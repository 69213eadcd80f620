"""helpers.augment: keypoints and masks move with the image; seeded; tf.data == NumPy."""
import numpy as np
import pytest

from helpers import augment as aug

STRONG = aug.AugmentConfig(flip_lr=0.5, flip_ud=0.5, rotation_deg=180, zoom=(0.8, 1.25), translate=0.1)


@pytest.mark.parametrize("shape", [(64, 48), (40, 72), (57, 57)])
def test_keypoint_lands_on_the_transformed_dot(shape):
    rng = np.random.default_rng(0)
    for draw in range(40):
        centre = rng.uniform(0.35, 0.65, 2) * np.array(shape)
        image = aug.dot_image(shape, centre)
        res = aug.augment(image, keypoints=centre, rng=draw, config=STRONG)
        assert np.linalg.norm(aug.dot_centre(res.image) - res.keypoints) < 1.0, res.params


def test_each_geometric_transform_alone_moves_the_keypoint_with_the_dot():
    shape, centre = (50, 70), np.array([18.0, 25.0])
    image = aug.dot_image(shape, centre)
    for params in ({"flip_lr": True}, {"flip_ud": True}, {"rotation_deg": 90.0}, {"rotation_deg": -33.0},
                   {"zoom": 1.3}, {"translate": (0.1, -0.07)}):
        res = aug.augment(image, keypoints=centre, params=params)
        assert np.linalg.norm(aug.dot_centre(res.image) - res.keypoints) < 1.0, params
    flipped = aug.augment(image, keypoints=centre, params={"flip_lr": True}).keypoints
    np.testing.assert_allclose(flipped, [18.0, 70 - 1 - 25.0])


def test_mask_stays_on_its_bright_square():
    image = np.zeros((60, 80), np.float32)
    image[20:35, 30:50] = 1.0
    mask = (image > 0.5).astype(np.uint8)
    for draw in range(20):
        res = aug.augment(image, mask=mask, rng=draw, config=STRONG)
        assert res.mask.dtype == np.uint8 and set(np.unique(res.mask)) <= {0, 1}
        inside = res.image[res.mask == 1]
        assert inside.size > 0 and inside.mean() > 0.9
        # the bright region (minus its interpolated edge) is covered by the mask
        assert res.mask[res.image > 0.99].all()


def test_multichannel_image_keeps_shape_and_photometric_spares_the_mask():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(32, 24, 2)).astype(np.float32)
    mask = (rng.uniform(size=(32, 24)) > 0.5).astype(np.uint8)
    config = aug.AugmentConfig(blur_sigma=1.0, brightness=0.2, contrast=0.2)
    res = aug.augment(image, mask=mask, keypoints=[[3.0, 4.0]], rng=3, config=config)
    assert res.image.shape == image.shape and res.image.dtype == np.float32
    assert res.mask.shape == mask.shape and res.keypoints.shape == (1, 2)


def test_identity_config_is_the_identity():
    image = np.random.default_rng(2).normal(size=(20, 30)).astype(np.float32)
    res = aug.augment(image, keypoints=[5.5, 7.25], rng=0, config=aug.IDENTITY)
    np.testing.assert_allclose(res.image, image, atol=1e-5)
    np.testing.assert_allclose(res.keypoints, [5.5, 7.25])


def test_same_seed_same_output_and_batches_reproducible():
    image = np.random.default_rng(3).normal(size=(40, 40)).astype(np.float32)
    a = aug.augment(image, keypoints=[10.0, 12.0], rng=42, config=STRONG)
    b = aug.augment(image, keypoints=[10.0, 12.0], rng=42, config=STRONG)
    c = aug.augment(image, keypoints=[10.0, 12.0], rng=43, config=STRONG)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert not np.array_equal(a.image, c.image)
    images = np.stack([image] * 3)
    x1, k1, _ = aug.augment_batch(images, np.zeros((3, 2)) + 20, seed=5, config=STRONG)
    x2, k2, _ = aug.augment_batch(images, np.zeros((3, 2)) + 20, seed=5, config=STRONG)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(k1, k2)


def test_tf_data_wrapper_matches_numpy():
    import tensorflow as tf

    rng = np.random.default_rng(4)
    images = rng.normal(size=(4, 24, 32, 2)).astype(np.float32)
    points = rng.uniform(5, 20, size=(4, 2)).astype(np.float32)
    seeds = np.array([11, 12, 13, 14], np.int64)
    fn = aug.tf_augment(STRONG, target="keypoints")
    ds = tf.data.Dataset.from_tensor_slices((images, points, seeds)).map(fn)
    for (x, k), image, point, seed in zip(ds, images, points, seeds):
        assert x.shape == (24, 32, 2) and k.shape == (2,)
        ref = aug.augment(image, keypoints=point, rng=int(seed), config=STRONG)
        np.testing.assert_allclose(x.numpy(), ref.image, atol=1e-6)
        np.testing.assert_allclose(k.numpy(), ref.keypoints, atol=1e-5)
    masks = (images[..., 0] > 0).astype(np.uint8)
    ds = tf.data.Dataset.from_tensor_slices((images[..., 0], masks, seeds)).map(aug.tf_augment(STRONG, "mask"))
    x, m = next(iter(ds))
    ref = aug.augment(images[0, ..., 0], mask=masks[0], rng=11, config=STRONG)
    np.testing.assert_array_equal(m.numpy(), ref.mask)


def test_augment_dataset_is_reproducible_and_rerandomises_each_epoch():
    import tensorflow as tf

    images = np.random.default_rng(5).normal(size=(3, 16, 16)).astype(np.float32)
    points = np.full((3, 2), 8.0, np.float32)
    ds = aug.augment_dataset(tf.data.Dataset.from_tensor_slices((images, points)), STRONG, seed=1)
    epoch1 = [k.numpy() for _, k in ds]
    epoch2 = [k.numpy() for _, k in ds]
    again = [k.numpy() for _, k in aug.augment_dataset(
        tf.data.Dataset.from_tensor_slices((images, points)), STRONG, seed=1)]
    np.testing.assert_array_equal(np.stack(epoch1), np.stack(again))
    assert not np.array_equal(np.stack(epoch1), np.stack(epoch2))


def test_photometric_changes_never_move_masks_or_keypoints():
    image = aug.dot_image((40, 50), (15.0, 20.0))
    mask = (image > 0.5).astype(np.uint8)
    plain = aug.AugmentConfig(rotation_deg=30, flip_ud=0.5)
    photo = aug.replace_photometric(plain, blur_sigma=1.5, brightness=0.3, contrast=0.3)
    for draw in range(10):
        a = aug.augment(image, mask=mask, keypoints=[15.0, 20.0], rng=draw, config=plain)
        b = aug.augment(image, mask=mask, keypoints=[15.0, 20.0], rng=draw, config=photo)
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        assert np.linalg.norm(aug.dot_centre(b.image - b.image.min()) - b.keypoints) < 1.0   # a blurred dot stays put


def test_ct_fill_is_air_and_brightness_moves_hu():
    hu = np.full((32, 32), 30.0, np.float32)
    hu[:4] = -1000.0
    config = aug.AugmentConfig(fill="constant", cval=-1000.0)
    rotated = aug.augment(hu, params={"rotation_deg": 45.0}, config=config).image
    assert rotated[0, -1] == -1000.0 and rotated[16, 16] == pytest.approx(30.0)
    shifted = aug.augment(hu, params={"brightness": 0.1}, config=config).image
    assert shifted[16, 16] - hu[16, 16] == pytest.approx(0.1 * hu.std(), rel=1e-4)


def test_dot_test_and_mask_keypoint_offsets_helpers():
    result = aug.dot_test(STRONG, n_draws=30, seed=1)
    assert result["n_draws"] >= 20 and result["max_error_px"] < 1.0
    image = np.zeros((60, 70), np.float32)
    rr, cc = np.mgrid[:60, :70]
    mask = ((rr - 25.0) ** 2 + (cc - 40.0) ** 2 <= 36).astype(np.uint8)
    offsets = aug.mask_keypoint_offsets(image + mask, mask, [25.0, 40.0], STRONG, n_draws=20, seed=2)
    assert offsets.shape == (21,) and offsets[0] < 1e-9
    assert np.nanmax(offsets) < 1.0 and np.isfinite(offsets).sum() >= 10


def test_figures_have_one_panel_per_transform():
    images = [aug.dot_image((30, 30), (10.0, 12.0))] * 2
    fig = aug.before_after(images, {"lr": {"flip_lr": True}, "rot": {"rotation_deg": 10.0}})
    assert len(fig.axes) == 2 * 3
    fig = aug.plot_draws(images[0], (images[0] > 0.5).astype(np.uint8), [10.0, 12.0], STRONG, n_draws=3)
    assert len(fig.axes) == 4
