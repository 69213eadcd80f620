"""Binary evaluation: AUC, report, confusion matrix, confident mistakes and the plots."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import evaluation  # noqa: E402

Y = np.array([0, 0, 0, 0, 1, 1, 1, 0])
P = np.array([0.1, 0.2, 0.95, 0.4, 0.8, 0.3, 0.9, 0.6])


def test_auc_and_report():
    assert evaluation.auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0
    assert evaluation.auc([0, 1, 0, 1], [0.9, 0.1, 0.8, 0.2]) == 0.0
    assert np.isnan(evaluation.auc([1, 1], [0.2, 0.3]))
    rep = evaluation.binary_report(Y, P)
    assert rep["n"] == 8 and rep["accuracy"] == pytest.approx(5 / 8)
    assert rep["class_prior"] == pytest.approx(3 / 8) and rep["majority_accuracy"] == pytest.approx(5 / 8)
    assert rep["sensitivity"] == pytest.approx(2 / 3) and rep["specificity"] == pytest.approx(3 / 5)
    with pytest.raises(ValueError):
        evaluation.binary_report([0, 1], [0.5])


def test_confusion_matrix_layout():
    cm = evaluation.confusion(Y, P)
    np.testing.assert_array_equal(cm, [[3, 2], [1, 2]])  # [[TN, FP], [FN, TP]]
    assert cm.sum() == len(Y)
    np.testing.assert_array_equal(evaluation.confusion(Y, P, threshold=0.0), [[0, 5], [0, 3]])


def test_most_confident_mistakes_order():
    idx = evaluation.most_confident_mistakes(Y, P, k=10)
    # mistakes: index 2 (neg at 0.95), 5 (pos at 0.3), 7 (neg at 0.6)
    assert list(idx) == [2, 5, 7]
    assert list(evaluation.most_confident_mistakes(Y, P, k=1)) == [2]
    assert len(evaluation.most_confident_mistakes([0, 1], [0.1, 0.9])) == 0


def test_plots_draw_into_given_axes_and_return_figures():
    fig, axes = plt.subplots(1, 2)
    assert evaluation.plot_roc(Y, P, ax=axes[0], label="a") is fig
    evaluation.plot_roc(Y, 1 - P, ax=axes[0], label="b")
    labels = [line.get_label() for line in axes[0].lines]
    assert labels.count("chance") == 1 and any("AUC" in lab for lab in labels)
    assert evaluation.plot_confusion(evaluation.confusion(Y, P), ax=axes[1]) is fig
    assert len(axes[1].texts) == 4
    plt.close(fig)
    images = np.random.default_rng(0).normal(size=(8, 6, 6))
    fig = evaluation.plot_mistakes(images, Y, P, [2, 5], names=[f"im{i}" for i in range(8)])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("im2") and "p=0.95" in titles[0]
    plt.close(fig)
    fig = evaluation.plot_mistakes(images, Y, P, [])
    assert fig.axes[0].texts[0].get_text() == "no mistakes"
    plt.close(fig)


def test_bootstrap_resamples_whole_groups():
    # two patients: one all 0, one all 1 -> every replicate mean is 0, 0.5 or 1
    groups = ["a"] * 3 + ["b"] * 3
    values = np.array([0, 0, 0, 1, 1, 1], float)
    ci = evaluation.bootstrap_ci(np.mean, groups, values, n_boot=400, seed=1)
    assert ci == [0.0, 1.0]
    # resampling rows instead would give many other means; resampling groups only these three
    seen = set()
    rng_groups = np.array(groups)
    for seed in range(5):
        lo, hi = evaluation.bootstrap_ci(np.mean, rng_groups, values, n_boot=20, seed=seed)
        seen |= {lo, hi}
    assert seen <= {0.0, 0.5, 1.0}


def test_bootstrap_interval_covers_the_point_and_shrinks_with_more_groups():
    rng = np.random.default_rng(0)
    small = rng.normal(size=10)
    large = rng.normal(size=1000)
    ci_small = evaluation.bootstrap_ci(np.mean, np.arange(10), small, seed=0)
    ci_large = evaluation.bootstrap_ci(np.mean, np.arange(1000), large, seed=0)
    assert ci_small[0] <= small.mean() <= ci_small[1]
    assert ci_large[0] <= large.mean() <= ci_large[1]
    assert ci_large[1] - ci_large[0] < ci_small[1] - ci_small[0]
    # the width of a mean's 95 % interval is about 2 * 1.96 * sd / sqrt(n)
    assert ci_large[1] - ci_large[0] == pytest.approx(2 * 1.96 / np.sqrt(1000), rel=0.2)
    # same seed, same interval
    assert evaluation.bootstrap_ci(np.mean, np.arange(10), small, seed=0) == ci_small


def test_bootstrap_undefined_cases():
    assert evaluation.bootstrap_ci(np.mean, ["a", "a"], np.array([1.0, 2.0])) is None  # one unit
    # AUC replicates with one class are dropped; all-one-class data gives no interval
    assert evaluation.bootstrap_ci(evaluation.auc, [1, 2, 3], np.array([1, 1, 1]), np.array([.1, .2, .3])) is None
    ci = evaluation.bootstrap_ci(evaluation.auc, np.arange(8), Y, P, seed=0)
    assert 0 <= ci[0] <= evaluation.auc(Y, P) <= ci[1] <= 1
    with pytest.raises(ValueError):
        evaluation.bootstrap_ci(np.mean, [1, 2], np.array([1.0]))


def test_with_ci_format_and_overlap():
    value, ci = evaluation.with_ci(np.mean, np.arange(6), np.array([0, 1, 0, 1, 1, 1.0]), digits=2)
    assert value == 0.67 and len(ci) == 2 and ci[0] <= value <= ci[1]
    assert evaluation.format_ci(0.9123, [0.85, 0.96]) == "0.912 (95 % CI 0.850–0.960)"
    assert evaluation.format_ci(None, None) == "n/a" and evaluation.format_ci(0.5, None) == "0.500"
    assert evaluation.intervals_overlap([0, 1], [0.5, 2]) is True
    assert evaluation.intervals_overlap([0, 1], [1.5, 2]) is False
    assert evaluation.intervals_overlap(None, [0, 1]) is None
