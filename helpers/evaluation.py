"""Evaluating a binary classifier: AUC, accuracy against the class prior, ROC, confusion matrix,
and the most confident mistakes.

Numbers come from plain functions (``binary_report``, ``confusion``, ``most_confident_mistakes``);
every plot function takes ``ax=`` (or ``axes=``) and returns the matplotlib Figure, so a
notebook can compose them. ``y_true`` holds 0/1 labels and ``y_score`` a score that grows
with the positive class (a probability from a sigmoid, or any real score).
"""
from __future__ import annotations

import numpy as np


def _binary(y_true, y_score):
    y_true = np.asarray(y_true).astype(float).ravel()
    y_score = np.asarray(y_score, dtype=float).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(f"{y_true.shape[0]} labels but {y_score.shape[0]} scores")
    return y_true.astype(int), y_score


def auc(y_true, y_score) -> float:
    """Area under the ROC curve; ``nan`` when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y_true, y_score = _binary(y_true, y_score)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(roc_auc_score(y_true, y_score))


def class_prior(y_true) -> float:
    """Fraction of positives."""
    return float(np.mean(np.asarray(y_true, float)))


def binary_report(y_true, y_score, threshold: float = 0.5) -> dict:
    """AUC, accuracy at ``threshold``, sensitivity, specificity, the class prior, and the
    accuracy of always predicting the majority class (the bar any model must beat)."""
    y_true, y_score = _binary(y_true, y_score)
    pred = (y_score >= threshold).astype(int)
    prior = class_prior(y_true)
    pos, neg = y_true == 1, y_true == 0
    return {
        "n": int(len(y_true)),
        "auc": auc(y_true, y_score),
        "accuracy": float(np.mean(pred == y_true)) if len(y_true) else float("nan"),
        "sensitivity": float(np.mean(pred[pos] == 1)) if pos.any() else float("nan"),
        "specificity": float(np.mean(pred[neg] == 0)) if neg.any() else float("nan"),
        "class_prior": prior,
        "majority_accuracy": max(prior, 1 - prior),
    }


def confusion(y_true, y_score, threshold: float = 0.5) -> np.ndarray:
    """2×2 confusion matrix ``[[TN, FP], [FN, TP]]`` (rows: truth, columns: prediction)."""
    y_true, y_score = _binary(y_true, y_score)
    pred = (y_score >= threshold).astype(int)
    cm = np.zeros((2, 2), dtype=int)
    np.add.at(cm, (y_true, pred), 1)
    return cm


def most_confident_mistakes(y_true, y_score, k: int = 8, threshold: float = 0.5) -> np.ndarray:
    """Indices of the ``k`` wrong predictions made with the most confidence, worst first.

    Confidence of a mistake is the distance of the score from ``threshold`` on the wrong
    side: a negative scored 0.99 comes before a negative scored 0.6.
    """
    y_true, y_score = _binary(y_true, y_score)
    wrong = np.flatnonzero((y_score >= threshold).astype(int) != y_true)
    order = np.argsort(-np.abs(y_score[wrong] - threshold), kind="stable")
    return wrong[order[:k]]


# ----------------------------------------------------------------------------- plots
def _ax(ax, size=(4, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def plot_roc(y_true, y_score, ax=None, label: str | None = None, color=None):
    """ROC curve with its AUC in the legend and the chance diagonal; returns the figure.

    Call it several times with the same ``ax`` to compare models.
    """
    from sklearn.metrics import roc_curve

    y_true, y_score = _binary(y_true, y_score)
    ax = _ax(ax)
    fpr, tpr, _ = roc_curve(y_true, y_score)
    ax.plot(fpr, tpr, color=color, lw=2, label=f"{label or 'model'} (AUC {auc(y_true, y_score):.3f})")
    if not any(line.get_label() == "chance" for line in ax.lines):
        ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (1 − specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    return ax.figure


def plot_confusion(cm, labels=("negative", "positive"), ax=None, title: str = "Confusion matrix"):
    """Draw a confusion matrix (counts, and the fraction of each true class); returns the figure."""
    cm = np.asarray(cm)
    ax = _ax(ax, (3.6, 3.2))
    rows = cm.sum(axis=1, keepdims=True).clip(min=1)
    ax.imshow(cm / rows, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cm):
        frac = v / rows[i, 0]
        ax.text(j, i, f"{v}\n{frac:.0%}", ha="center", va="center",
                color="white" if frac > 0.6 else "black", fontsize=10)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return ax.figure


def plot_mistakes(images, y_true, y_score, indices, axes=None, ncols: int = 4, vmin=None, vmax=None,
                  names=None, size: float = 2.4):
    """Show ``images[indices]`` with truth and score in each title; returns the figure.

    ``images`` are 2-D (e.g. HU, shown with ``vmin``/``vmax`` as a CT window) or ``(H, W, 3)``
    (shown as RGB). ``names`` (optional, same length as ``images``) adds an ID to the title.
    """
    from .plotting import montage

    y_true, y_score = _binary(y_true, y_score)
    indices = list(indices)
    titles = [f"{'' if names is None else str(names[i]) + chr(10)}truth {y_true[i]} · p={y_score[i]:.2f}"
              for i in indices]
    pics = [np.asarray(images[i]) for i in indices]
    if not pics:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(3, 1))
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center")
        ax.axis("off")
        return fig
    return montage(pics, titles, ncols=min(ncols, len(pics)), vmin=vmin, vmax=vmax, axes=axes, size=size)
