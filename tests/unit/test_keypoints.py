"""helpers.keypoints and helpers.models.keypoint: coordinates, inputs, split, evaluation, crops, GIF."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import augment as aug
from helpers import keypoints


def test_targets_span_the_image_edges_and_round_trip():
    shape = (256, 192)
    np.testing.assert_allclose(keypoints.to_target([[-0.5, -0.5], [255.5, 191.5]], shape), [[-1, -1], [1, 1]])
    rc = np.array([[100.25, 40.0], [3.0, 180.5]])
    np.testing.assert_allclose(keypoints.to_native(keypoints.to_target(rc, shape), shape), rc)
    t = keypoints.to_target(rc, shape)
    np.testing.assert_allclose(keypoints.from_input_px(keypoints.to_input_px(t, 96), 96), t)


@pytest.mark.parametrize("shape", [(256, 192), (176, 208)])
def test_resized_input_keeps_the_dot_where_the_target_says(shape):
    centre = np.array([0.41 * shape[0], 0.63 * shape[1]])
    stack = np.stack([aug.dot_image(shape, centre, 4.0) * 1000 + 50] * 10)
    x = keypoints.series_channels(stack, 64, motion_offset=3)
    assert x.shape == (10, 64, 64, 2) and x.dtype == np.float32
    expected = keypoints.to_input_px(keypoints.to_target(centre, shape), 64)
    assert np.linalg.norm(aug.dot_centre(x[0, ..., 0] - x[0, ..., 0].min()) - expected) < 0.5
    np.testing.assert_allclose(x[..., 1], 0, atol=1e-6)        # nothing moves: no motion signal


def test_motion_channel_is_frame_minus_a_later_frame_wrapping():
    rng = np.random.default_rng(0)
    stack = rng.uniform(0, 100, size=(12, 40, 30)).astype(np.float32)
    x = keypoints.series_channels(stack, 40, motion_offset=8)
    for t in (0, 5, 11):
        np.testing.assert_allclose(x[t, ..., 1], x[t, ..., 0] - x[(t + 8) % 12, ..., 0], atol=1e-5)


def test_normalise_series_is_gain_invariant():
    stack = np.random.default_rng(1).gamma(2.0, 50.0, size=(5, 20, 20)).astype(np.float32)
    np.testing.assert_allclose(keypoints.normalise_series(stack), keypoints.normalise_series(3.7 * stack), atol=1e-5)


def _frames_table(n_slices_per_case):
    rows = []
    for case, n in n_slices_per_case.items():
        for s in range(n):
            rows.append({"case": case, "series_id": f"sax_{s}", "slice_index": s, "n_slices": n, "usable": True,
                         "frame": 0, "path": f"{case}/{s}"})
    return pd.DataFrame(rows)


def test_mid_slices_keeps_the_central_fraction_and_never_empties_a_case():
    mid = keypoints.mid_slices(_frames_table({"1": 5, "2": 9, "3": 1}), 0.5)
    kept = mid.groupby("case")["slice_index"].apply(sorted).to_dict()
    assert kept["1"] == [1, 2, 3] and kept["2"] == [2, 3, 4, 5, 6] and kept["3"] == [0]
    tiny = keypoints.mid_slices(_frames_table({"1": 4}), 0.01)
    assert sorted(tiny["slice_index"]) == [1, 2]               # the two slices closest to the middle


def test_split_cases_is_by_case_disjoint_complete_and_seeded():
    cases = [str(c) for c in range(1, 21) for _ in range(7)]          # many frames per case
    a = keypoints.split_cases(cases, 0.25, 0.15, seed=3)
    b = keypoints.split_cases(cases, 0.25, 0.15, seed=3)
    assert a == b and len(a["test"]) == 5 and len(a["val"]) == 3
    assert sorted(a["train"] + a["val"] + a["test"], key=int) == [str(c) for c in range(1, 21)]
    assert not set(a["train"]) & set(a["test"]) and not set(a["val"]) & set(a["test"])
    small = keypoints.split_cases(["a", "b", "c"])
    assert all(len(v) == 1 for v in small.values())
    with pytest.raises(ValueError):
        keypoints.split_cases(["a", "b"])


def test_train_dataset_moves_targets_with_the_dot():
    shape = (48, 48)
    centres = np.array([[15.0, 30.0], [30.0, 12.0], [24.0, 24.0], [10.0, 10.0]])
    x = np.stack([np.stack([aug.dot_image(shape, c, 2.0)] * 2, -1) for c in centres])
    y = keypoints.from_input_px(centres, 48)
    config = aug.AugmentConfig(flip_lr=0.5, flip_ud=0.5, rotation_deg=30, zoom=(0.9, 1.1), translate=0.05)
    for xb, yb in keypoints.train_dataset(x, y, batch_size=4, seed=1, config=config).take(2):
        for image, target in zip(xb.numpy(), yb.numpy()):
            assert np.linalg.norm(aug.dot_centre(image[..., 0]) - keypoints.to_input_px(target, 48)) < 1.0


def _fake_data(tmp_path):
    mask = np.zeros((40, 50), bool)
    mask[10:20, 20:30] = True
    (tmp_path / "lv_masks").mkdir()
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "lv_masks" / "a.png")
    lv = np.array([[15.0, 25.0], [15.0, 25.0]])
    return {"rows": np.array([40, 40]), "cols": np.array([50, 50]), "lv": lv,
            "spacing": np.array([[1.5, 1.5], [1.5, 1.5]]), "case": np.array(["1", "2"]),
            "series_id": np.array(["sax_1", "sax_1"]), "frame": np.array([0, 0]), "path": np.array(["a", "b"]),
            "mask_path": np.array(["lv_masks/a.png", ""])}


def test_evaluate_in_native_pixels_and_mm_with_mask_and_fallback(tmp_path):
    data = _fake_data(tmp_path)
    shape = np.stack([data["rows"], data["cols"]], 1)
    perfect = keypoints.to_target(data["lv"], shape)
    table = keypoints.evaluate(data, [0, 1], perfect, tmp_path)
    np.testing.assert_allclose(table["error_px"], 0, atol=1e-9)
    assert table["inside_lv"].all() and list(table["inside_rule"]) == ["mask", "radius"]
    off = keypoints.to_target(data["lv"] + [[3.0, 4.0], [6.0, 8.0]], shape)   # 5 px and 10 px away
    table = keypoints.evaluate(data, [0, 1], off, tmp_path)
    np.testing.assert_allclose(table["error_px"], [5, 10], atol=1e-9)
    np.testing.assert_allclose(table["error_mm"], [7.5, 15], atol=1e-9)
    assert list(table["inside_lv"]) == [True, False]         # inside the mask; 15 mm > fallback radius
    summary = keypoints.summary(table)
    assert summary["median_error_px"] == pytest.approx(7.5) and summary["inside_lv_rate"] == 0.5


def test_inside_lv_outside_the_image_is_outside(tmp_path):
    _fake_data(tmp_path)
    assert keypoints.inside_lv(tmp_path, "lv_masks/a.png", (-3, 25), (15, 25), (1, 1)) == (False, "mask")


def test_crop_physical_covers_the_same_anatomy_at_any_pixel_spacing():
    crops = []
    for spacing in (1.0, 2.0):
        centre_mm = np.array([60.0, 70.0])
        shape = (int(160 / spacing), int(150 / spacing))
        image = aug.dot_image(shape, centre_mm / spacing, 6.0 / spacing)           # a 6 mm blob
        crops.append(keypoints.crop_physical(image, centre_mm / spacing + [10 / spacing, 0], (spacing, spacing),
                                             size_mm=60, out_px=60))
    for crop in crops:
        assert crop.shape == (60, 60)
        np.testing.assert_allclose(aug.dot_centre(crop), [19.5, 29.5], atol=0.6)     # 10 mm above the crop centre
    assert np.abs(crops[0] - crops[1]).max() < 0.1
    edge = keypoints.crop_physical(np.ones((20, 20)), (0, 0), (1, 1), size_mm=20, out_px=20)
    assert edge[:5, :5].max() == 0 and edge[-5:, -5:].min() == 1          # outside the image is 0


def test_cycle_gif_has_one_frame_per_time_point(tmp_path):
    stack = np.stack([aug.dot_image((80, 60), (30 + t, 30), 5) for t in range(6)])
    points = np.array([[30.0 + t, 30.0] for t in range(6)])
    truth = points.copy()
    truth[2] = np.nan
    path = keypoints.cycle_gif(stack, points, tmp_path / "c.gif", truth_rc=truth, fps=5)
    with Image.open(path) as gif:
        assert gif.n_frames == 6 and max(gif.size) <= 128


def test_keypoint_cnn_shape_and_growing_dropout():
    from helpers.models import keypoint

    model = keypoint.build_keypoint_cnn((48, 48, 2))
    assert model.output_shape == (None, 2) and model.input_shape == (None, 48, 48, 2)
    rates = [layer.rate for layer in model.layers if layer.name.startswith("dropout")]
    assert rates == sorted(rates) and len(rates) == 3
    assert all(layer.rate == 0.5 for layer in model.layers if layer.name.startswith("dense_dropout"))
    assert model.loss == "mse"
    one = keypoint.build_keypoint_cnn((48, 48, 1), n_keypoints=3)
    assert one.output_shape == (None, 6)


def test_build_inputs_on_a_dsb2_folder_is_cached_and_mapped_back(tmp_path):
    from helpers import datasets, dsb2

    root = datasets.resolve("dsb2", None, "smoke")
    frames = dsb2.index_frames(root)
    mid = keypoints.mid_slices(frames, 0.5)
    one = mid[mid["case"] == sorted(mid["case"].unique())[0]]
    data = keypoints.build_inputs(one, root, image_size=32, motion_offset=8)
    again = keypoints.build_inputs(one, root, image_size=32, motion_offset=8)   # read back from the .npz cache
    assert all(a.dtype != object for a in data.values())
    np.testing.assert_array_equal(data["x"], again["x"])
    assert data["x"].shape == (len(one), 32, 32, 2) and len(data["skipped"]) == 0
    lab = data["labelled"]
    shape = np.stack([data["rows"], data["cols"]], 1)[lab]
    np.testing.assert_allclose(keypoints.to_native(data["y"][lab], shape), data["lv"][lab], atol=1e-3)
    assert np.abs(data["y"][lab]).max() <= 1.0


def _error_table(errors_mm, cases):
    errors_mm = np.asarray(errors_mm, float)
    return pd.DataFrame({"case": cases, "path": [f"f{i}.dcm" for i in range(len(cases))], "error_px": errors_mm / 1.5,
                         "error_mm": errors_mm, "inside_lv": errors_mm < 5})


def test_summary_with_ci_resamples_cases():
    table = _error_table([1, 2, 3, 4, 6, 8, 1, 2], ["a", "a", "b", "b", "c", "c", "d", "d"])
    out = keypoints.summary_with_ci(table, n_boot=200)
    assert out["n_cases"] == 4 and out["n_test_frames"] == 8
    for key in keypoints.HEADLINE:
        low, high = out[f"{key}_ci"]
        assert low <= out[key] <= high, key
    assert out["median_error_mm"] == pytest.approx(2.5) and out["inside_lv_rate"] == pytest.approx(0.75)
    # one case only: no interval, but the values stay
    one = keypoints.summary_with_ci(_error_table([1, 2], ["a", "a"]), n_boot=50)
    assert one["median_error_mm_ci"] is None and one["median_error_mm"] == pytest.approx(1.5)


def test_paired_gain_is_the_difference_of_medians_with_a_paired_interval():
    cases = ["a", "a", "b", "b", "c", "c"]
    model = _error_table([1, 1, 2, 2, 3, 3], cases)
    baseline = _error_table([2, 2, 3, 3, 4, 4], cases)             # every frame 1 mm worse
    gain, ci = keypoints.paired_gain(model, baseline, n_boot=200)
    assert gain == pytest.approx(1.0) and ci == [pytest.approx(1.0), pytest.approx(1.0)]  # paired: no spread
    assert keypoints.describe_gain(gain, ci).startswith("the motion channel lowers the median error by 1.00 mm")
    gain, ci = keypoints.paired_gain(baseline, model, n_boot=200)
    assert gain == pytest.approx(-1.0) and "raises the median error by 1.00 mm" in keypoints.describe_gain(gain, ci)
    assert keypoints.describe_gain(0.1, [-0.5, 0.7]).startswith("no clear difference")
    with pytest.raises(ValueError, match="same frames"):
        keypoints.paired_gain(model, baseline.iloc[::-1])


def test_train_dataset_streams_on_disk_inputs_in_the_in_memory_order(tmp_path):
    """The same batches (augmented or not) whether the inputs are on disk or in memory."""
    from helpers import shards

    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 16, 16, 2)).astype(np.float32)
    y = rng.uniform(-0.5, 0.5, size=(23, 2)).astype(np.float32)
    shards.build(tmp_path / "s", list(range(23)), lambda rows: (x[rows], pd.DataFrame({"r": rows})),
                 {"x": ((16, 16, 2), np.float32)}, shard_size=5, n_jobs=1)
    on_disk = shards.ShardedArray(tmp_path / "s")
    for config in (None, keypoints.TRAIN_AUGMENT):
        ram = list(keypoints.train_dataset(x, y, 8, seed=4, config=config))
        disk = list(keypoints.train_dataset(on_disk, y, 8, seed=4, config=config))
        assert len(ram) == len(disk) == 3
        for (xa, ya), (xb, yb) in zip(ram, disk):
            np.testing.assert_allclose(xa.numpy(), xb.numpy(), atol=1e-6)
            np.testing.assert_allclose(ya.numpy(), yb.numpy(), atol=1e-6)
