import numpy as np
import pytest

from helpers import datasets, segmentation, synthetic


def test_confusion_matrix_and_table():
    truth = np.array([[0, 0, 1, 1], [0, 0, 0, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 0, 0]])
    cm = segmentation.confusion_matrix(truth, pred)
    np.testing.assert_array_equal(cm, [[4, 1], [1, 2]])
    table, per_class = segmentation.metric_table(cm)
    v = table["value"]
    assert v["overall_accuracy"] == pytest.approx(6 / 8)
    assert v["frequency_weighted_accuracy"] == pytest.approx(v["overall_accuracy"])
    assert v["mean_accuracy"] == pytest.approx((4 / 5 + 2 / 3) / 2)
    assert per_class.loc["foreground", "iou"] == pytest.approx(2 / 4)
    assert per_class.loc["foreground", "dice"] == pytest.approx(4 / 6)
    assert v["mean_iou"] == pytest.approx((4 / 6 + 2 / 4) / 2)


def test_small_foreground_flatters_means():
    truth = np.zeros((1, 100, 100), int)
    truth[0, :5, :5] = 1
    cm = segmentation.confusion_matrix(truth, np.zeros_like(truth))     # finds nothing
    table, per_class = segmentation.metric_table(cm)
    assert table.loc["overall_accuracy", "value"] > 0.99
    assert table.loc["mean_iou", "value"] > 0.49 and per_class.loc["foreground", "dice"] == 0


def test_dice_per_slice():
    t = np.zeros((3, 4, 4), bool)
    p = np.zeros((3, 4, 4), bool)
    t[0, :2], p[0, :1] = True, True
    t[1, :2] = True
    d = segmentation.dice_per_slice(t, p)
    assert d[0] == pytest.approx(2 * 4 / 12) and d[1] == 0 and np.isnan(d[2])


def test_detect_objects():
    labels = np.zeros((2, 20, 20), int)
    labels[0, 2:6, 2:6] = 1
    labels[1, 2:6, 2:6] = 1          # nodule 1 spans two slices
    labels[1, 12:16, 12:16] = 2
    pred = np.zeros_like(labels, bool)
    pred[1, 5:8, 5:8] = True         # overlaps nodule 1 on its second slice only
    pred[0, 15:18, 15:18] = True     # a false positive
    det = segmentation.detect_objects(pred, labels)
    assert det["found"] == {1: True, 2: False} and det["recall"] == 0.5
    assert det["n_pred_components"] == 2 and det["n_false_positive_components"] == 1


def test_rle_kaggle_convention_and_round_trip():
    mask = np.array([[0, 1, 0], [1, 1, 0], [0, 0, 1]], bool)
    # column-major, 1-based: column 0 -> pixels 1..3, pixel 2 set; column 1 -> 4, 5 set; column 2 -> 9
    assert segmentation.rle_encode(mask) == "2 1 4 2 9 1"
    np.testing.assert_array_equal(segmentation.rle_decode("2 1 4 2 9 1", (3, 3)), mask)
    assert segmentation.rle_encode(np.zeros((4, 5))) == ""
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((7, 11)) > 0.6
        np.testing.assert_array_equal(segmentation.rle_decode(segmentation.rle_encode(m), m.shape), m)


def test_split_by_group_keeps_groups_apart():
    groups = np.repeat(np.array([f"s{i}" for i in range(10)]), 5)
    train, test = segmentation.split_by_group(groups, 0.3, seed=0)
    assert len(train) + len(test) == 50 and not set(groups[train]) & set(groups[test])


def test_dsb2_lv_slices_on_smoke_dsb2():
    root = datasets.resolve("dsb2", None, "smoke", 0)
    truth = synthetic.load_ground_truth(root)
    data = segmentation.load_slices("dsb2", root, 64, frames_per_series=2)
    n = len(data["images"])
    images, masks, labels = (np.asarray(data[k]) for k in ("images", "masks", "labels"))   # read from disk
    assert n > 0 and images.shape == (n, 64, 64) and images.max() <= 1
    assert masks.any(axis=(1, 2)).mean() > 0.9
    np.testing.assert_array_equal(data["foreground_px"], masks.sum(axis=(1, 2)))
    assert len(np.unique(data["groups"])) == truth["n_cases"]
    assert len(np.unique(labels[labels > 0])) == n


def test_load_slices_unknown_dataset():
    with pytest.raises(ValueError):
        segmentation.load_slices("rsna", ".", 64)


def test_pooled_dice_by_group_and_bootstrap():
    from helpers import evaluation

    t = np.zeros((4, 4, 4), bool)
    p = np.zeros_like(t)
    t[0, :2], p[0, :2] = True, True        # series a: perfect (8 px)
    t[2, :1], p[3, :1] = True, True        # series b: 4 px truth, 4 px wrong prediction
    table = segmentation.dice_by_group(t, p, ["a", "a", "b", "b"])
    assert table["group"].tolist() == ["a", "b"] and table["dice"].tolist() == [1.0, 0.0]
    assert segmentation.pooled_dice(table["intersection"], table["size_sum"]) == pytest.approx(16 / 24)
    value, ci = evaluation.with_ci(segmentation.pooled_dice, table["group"], table["intersection"], table["size_sum"])
    assert ci[0] <= value <= ci[1] and ci == [0.0, 1.0]
    assert np.isnan(segmentation.pooled_dice([0], [0]))


def test_evaluate_scans_and_report():
    def scan(uid, hit):
        labels = np.zeros((6, 16, 16), np.int32)
        labels[2:4, 4:8, 4:8] = 1
        images = labels.astype(np.float32) if hit else np.zeros((6, 16, 16), np.float32)
        images[5, 12:14, 12:14] = 1.0                  # a false positive in every scan
        return {"seriesuid": uid, "images": images, "labels": labels, "slice_z": np.arange(6),
                "spacing_zyx": np.array([2.0, 1.0, 1.0]), "nodules_zyx_mm": np.array([[5.0, 5.5, 5.5]]),
                "radii_mm": np.array([3.0]), "nodule_ids": np.array([1])}

    result = segmentation.evaluate_scans(lambda x: x * 0.9, (scan(u, h) for u, h in [("a", 1), ("b", 1), ("c", 0)]))
    per = result["per_scan"]
    assert per["n_found"].tolist() == [1, 1, 0] and per["n_false_positives"].tolist() == [1, 1, 1]
    assert result["cm"].sum() == 3 * 6 * 16 * 16
    report = segmentation.scan_report(result, n_boot=200)
    assert report["foreground_dice"] == pytest.approx(2 * 64 / (3 * 32 + 2 * 36 + 4), abs=1e-4)
    lo, hi = report["foreground_dice_ci"]
    assert lo <= report["foreground_dice"] <= hi
    assert report["nodule_recall"] == pytest.approx(2 / 3, abs=1e-4) and report["n_scans"] == 3
    sens = list(report["nodule_sensitivity_at_fp"].values())
    assert list(report["nodule_sensitivity_at_fp"]) == ["0.125", "0.25", "0.5", "1", "2", "4", "8"]
    assert sens == sorted(sens) and 0 <= report["cpm"] <= 1
    assert report["cpm"] == pytest.approx(np.mean(sens), abs=1e-4)
    assert result["example"]["seriesuid"] == "a"
