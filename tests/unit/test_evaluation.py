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
