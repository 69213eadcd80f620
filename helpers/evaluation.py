"""Evaluating a binary classifier: AUC, accuracy against the class prior, ROC, confusion matrix,
and the most confident mistakes.

Numbers come from plain functions (``binary_report``, ``confusion``, ``most_confident_mistakes``)
and every headline number gets a 95 % interval from ``bootstrap_ci``, which resamples the
held-out *units* (patients, series, cases, subjects), never the rows inside them;
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


# ----------------------------------------------------------------------------- intervals
def bootstrap_ci(metric, groups, *arrays, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 digits: int | None = None):
    """Percentile bootstrap interval of ``metric(*arrays)``, resampling whole ``groups``.

    ``groups`` names the held-out unit of each row (patient, series, case, subject); each
    replicate draws as many units as there are, with replacement, and keeps *all* rows of
    every drawn unit (a unit drawn twice counts twice). Rows of one patient are correlated,
    so resampling rows would give intervals that are too narrow. ``arrays`` are row-aligned
    (labels, scores, per-row statistics ...); ``metric`` receives them subset in the same
    order. Replicates where the metric is undefined (``nan``, e.g. an AUC drawn with one
    class only) are dropped. Returns ``[low, high]``, or ``None`` with fewer than two units
    or fewer than half the replicates defined. ``digits`` rounds the bounds (for metrics.json).

    >>> bootstrap_ci(np.mean, ["a", "a", "b", "b"], np.array([0., 0., 1., 1.]))
    [0.0, 1.0]
    """
    groups = np.asarray(groups)
    arrays = [np.asarray(a) for a in arrays]
    if any(len(a) != len(groups) for a in arrays):
        raise ValueError(f"{len(groups)} group labels but arrays of lengths {[len(a) for a in arrays]}")
    units, codes = np.unique(groups, return_inverse=True)
    if len(units) < 2:
        return None
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(units) + 1))
    members = [order[starts[k]:starts[k + 1]] for k in range(len(units))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        rows = np.concatenate([members[k] for k in rng.integers(0, len(units), len(units))])
        value = float(metric(*[a[rows] for a in arrays]))
        if np.isfinite(value):
            values.append(value)
    if len(values) < n_boot / 2:
        return None
    alpha = (1 - level) / 2
    bounds = [float(b) for b in np.quantile(values, [alpha, 1 - alpha])]
    return bounds if digits is None else [round(b, digits) for b in bounds]


def with_ci(metric, groups, *arrays, digits: int = 4, **kwargs) -> tuple[float, list | None]:
    """``(metric(*arrays), bootstrap_ci(...))``, both rounded to ``digits``: a headline
    number and its interval, ready for ``metrics.json`` as ``key`` and ``key_ci``."""
    value = float(metric(*arrays))
    return (round(value, digits) if np.isfinite(value) else None,
            bootstrap_ci(metric, groups, *arrays, digits=digits, **kwargs))


def format_ci(value, ci, digits: int = 3) -> str:
    """``"0.912 (95 % CI 0.850–0.960)"``; ``"n/a"`` for a missing value, no interval if none."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    text = f"{value:.{digits}f}"
    return text if ci is None else f"{text} (95 % CI {ci[0]:.{digits}f}–{ci[1]:.{digits}f})"


def intervals_overlap(ci_a, ci_b) -> bool | None:
    """Whether two intervals overlap (``None`` if either is missing): the words a notebook
    prints when it compares two models must follow from this, not from the point values."""
    if ci_a is None or ci_b is None:
        return None
    return bool(ci_a[0] <= ci_b[1] and ci_b[0] <= ci_a[1])


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
                  names=None, size: float = 2.4, ax=None):
    """Show ``images[indices]`` with truth and score in each title; returns the figure.

    ``images`` are 2-D (e.g. HU, shown with ``vmin``/``vmax`` as a CT window) or ``(H, W, 3)``
    (shown as RGB). ``names`` (optional, same length as ``images``) adds an ID to the title.
    """
    axes = ax if ax is not None else axes   # ax=: the package's one name
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
