"""Tabular baselines on DICOM metadata: features, patient-grouped splits, and the row-order bug.

A DICOM header index (:func:`helpers.dicom.index_dicoms`) is a table a random forest can
learn from. Before trusting any image model, check what the *metadata alone* predicts:

* :func:`metadata_features` — the numeric/categorical header columns, with every identifier
  removed (``path``, ``*UID``, ``*ID`` such as ``PatientID``, and any text column that is
  unique per row). Identifiers must go: a forest can memorise a patient's ID.
* :func:`patient_split` / :func:`grouped_cv` — held-out predictions where no
  patient contributes slices to both sides (slices of one patient are highly correlated;
  a slice-level split measures memory, not generalisation).
* :func:`join_by_row_order` — the classic bug: attaching labels by *position* (``labels.iloc[i]``
  goes to ``index.iloc[i]``) instead of by image ID. A folder listing and a label CSV are
  almost never in the same order, so most images get another image's labels; the model
  then learns (and is scored on) noise. :func:`row_order_agreement` measures how many
  labels such a join gets right.

The correct join is by image ID (``helpers.rsna.join_labels``); :func:`image_ids` derives the
ID of each index row (``SOPInstanceUID``, else the file name without ``.dcm``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

#: Columns that are never features: file and row bookkeeping, and the RSNA labels (a join adds them).
NON_FEATURES = ("path", "error", "file", "image_id", "patient_id", "study_id", "series_id", "labelled",
                "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any")
#: Column names that mark identifiers (UIDs, IDs, file names): matched case-sensitively
#: on the DICOM keyword (``PatientID``, ``StudyID``, ``SOPInstanceUID``...).
IDENTIFIER = re.compile(r"(UIDs?\d*$|ID\d*$|Name\d*$|^[Pp]ath|^[Ff]ile)")


def image_ids(index: pd.DataFrame) -> pd.Series:
    """The image ID of each index row: ``SOPInstanceUID`` when present, else the file stem."""
    stems = index["path"].map(lambda p: Path(str(p)).name).str.replace(r"\.dcm$", "", regex=True, flags=re.I)
    if "SOPInstanceUID" in index:
        return index["SOPInstanceUID"].where(index["SOPInstanceUID"].notna(), stems).astype(str)
    return stems.astype(str)


def metadata_features(index: pd.DataFrame, max_categories: int = 20, exclude=()) -> pd.DataFrame:
    """Feature table from a DICOM index: identifiers removed, one numeric column per feature.

    Dropped: :data:`NON_FEATURES` and ``exclude`` (e.g. other label columns), identifier-like names (:data:`IDENTIFIER`: ``*UID``,
    ``*ID``, ``*Name`` such as ``ImplementationVersionName``), text columns with more than
    ``max_categories`` distinct values (free text or per-file values such as dates act as
    identifiers), and constant columns. Numeric columns are kept as float (missing stays
    ``NaN``, which scikit-learn's forests handle); low-cardinality text becomes integer codes
    (sorted categories, missing = -1). Rows keep the index's row order and index.
    """
    cols = {}
    for name in index.columns:
        if name in NON_FEATURES or name in exclude or IDENTIFIER.search(name):
            continue
        col = index[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            values = col.astype(float)
        else:
            text = col.astype("string")
            if text.nunique(dropna=True) > max_categories:
                continue
            cats = sorted(text.dropna().unique())
            values = text.map({c: i for i, c in enumerate(cats)}).astype("Float64").fillna(-1).astype(float)
        if values.nunique(dropna=False) <= 1:
            continue
        cols[name] = values
    return pd.DataFrame(cols, index=index.index)


def join_by_row_order(index: pd.DataFrame, labels: pd.DataFrame, columns=None) -> pd.DataFrame:
    """THE BUG, for teaching: attach label row ``i`` to index row ``i``, ignoring the IDs.

    Returns a copy of ``index`` with the ``columns`` of ``labels`` (default: every column
    except ``image_id``) copied by position; index rows beyond the end of ``labels`` get
    ``NaN``. Never use this except to show what it does: join by image ID instead.
    """
    columns = [c for c in labels.columns if c != "image_id"] if columns is None else list(columns)
    n = min(len(index), len(labels))
    out = index.copy()
    for c in columns:
        values = np.full(len(index), np.nan)
        values[:n] = pd.to_numeric(labels[c], errors="coerce").to_numpy(float)[:n]
        out[c] = values
    return out


def in_file_order(labels: pd.DataFrame, csv_path, id_column: str = "ID") -> pd.DataFrame:
    """``labels`` (one row per ``image_id``) reordered as the images first appear in ``csv_path``.

    The label CSV's IDs are ``<image_id>_<label>``; the part before the last ``_`` is the
    image ID. This is the order a reader who never sorts would see. Images of ``labels`` not
    in the file go last.
    """
    ids = pd.read_csv(csv_path, usecols=[id_column], dtype=str)[id_column].str.strip()
    order = ids.str.rsplit("_", n=1).str[0].drop_duplicates()
    rank = pd.Series(np.arange(len(order)), index=order.to_numpy())
    key = labels["image_id"].map(rank).fillna(len(order))
    return labels.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)


def row_order_agreement(by_id: pd.Series, by_row: pd.Series) -> dict:
    """How often a row-order join agrees with the join by ID, and what chance would give.

    ``by_id`` / ``by_row``: the same label (0/1) attached to the same rows both ways.
    ``chance`` is the agreement of two independent draws with the same prior, ``p² + (1-p)²``.
    """
    a, b = np.asarray(by_id, float), np.asarray(by_row, float)
    p = float(a.mean())
    return {"agreement": float(np.mean(a == b)), "chance": p * p + (1 - p) * (1 - p),
            "n": int(len(a))}


# ----------------------------------------------------------------------------- splits
def patient_split(groups, y=None, test_size: float = 0.2, val_size: float = 0.0, seed: int = 0) -> dict:
    """Split rows by patient into ``train`` / ``val`` / ``test`` index arrays (positions).

    Every patient's rows land in exactly one part. With ``y`` given the split is stratified
    on it as well as the groups allow (:class:`~sklearn.model_selection.StratifiedGroupKFold`,
    so small test sets still hold both classes); without, :class:`GroupShuffleSplit`.
    ``test_size`` / ``val_size`` are fractions of the patients (approximately, with
    stratification).
    """
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    groups = np.asarray(groups)
    positions = np.arange(len(groups))

    def _cut(pos, size, rng_seed):
        if y is None:
            gss = GroupShuffleSplit(n_splits=1, test_size=size, random_state=rng_seed)
            keep, held = next(gss.split(pos, groups=groups[pos]))
        else:
            n_splits = max(2, int(round(1.0 / size)))
            sgkf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=rng_seed)
            keep, held = next(sgkf.split(pos, np.asarray(y)[pos], groups=groups[pos]))
        return pos[keep], pos[held]

    rest, test = _cut(positions, test_size, seed)
    val = np.array([], dtype=int)
    if val_size > 0:
        rest, val = _cut(rest, val_size / (1.0 - test_size), seed + 1)
    return {"train": np.sort(rest), "val": np.sort(val), "test": np.sort(test)}


def make_forest(seed: int = 0, n_estimators: int = 100, min_samples_leaf: int = 3, n_jobs: int = 1):
    """The random forest used for the metadata baseline (balanced class weights)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=n_estimators, min_samples_leaf=min_samples_leaf,
                                  class_weight="balanced", random_state=seed, n_jobs=n_jobs)


def _cross_validate(splits, X, y, model) -> dict:
    from sklearn.base import clone

    from .evaluation import auc

    scores = np.full(len(y), np.nan)
    folds, fold_auc, fold_acc = [], [], []
    for train, test in splits:
        fitted = clone(model).fit(X[train], y[train])
        proba = fitted.predict_proba(X[test])
        scores[test] = proba[:, list(fitted.classes_).index(1)] if 1 in fitted.classes_ else 0.0
        folds.append(test)
        fold_auc.append(auc(y[test], scores[test]))
        fold_acc.append(float(np.mean((scores[test] >= 0.5) == y[test])))
    fold_of = np.full(len(y), -1)
    for k, test in enumerate(folds):
        fold_of[test] = k
    return {"scores": scores, "folds": folds, "fold_of": fold_of, "fold_auc": fold_auc, "fold_accuracy": fold_acc,
            "auc": float(np.nanmean(fold_auc)), "accuracy": float(np.mean(fold_acc))}


def mean_fold_auc(y, scores, fold_of) -> float:
    """The headline of :func:`grouped_cv` recomputed from rows: the mean over folds of each
    fold's AUC (folds with one class left out). Row-aligned inputs, so
    ``evaluation.bootstrap_ci(mean_fold_auc, patients, y, cv["scores"], cv["fold_of"])``
    resamples patients and gives the interval of that same headline."""
    from .evaluation import auc

    y, scores, fold_of = np.asarray(y), np.asarray(scores), np.asarray(fold_of)
    values = [auc(y[fold_of == k], scores[fold_of == k]) for k in np.unique(fold_of)]
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def grouped_cv(features: pd.DataFrame, y, groups, n_splits: int = 5, seed: int = 0, model=None) -> dict:
    """Cross-validate ``model`` with folds grouped by patient (:class:`GroupKFold`).

    Each row is scored by a model fitted on the other folds' patients only. Returns
    ``scores`` (out-of-fold probabilities of class 1), ``folds`` (test positions per fold),
    ``fold_of`` (each row's fold), ``fold_auc`` / ``fold_accuracy`` (threshold 0.5) and their
    means ``auc`` / ``accuracy``
    (folds with one class only have no AUC and are left out of the mean).

    The headline is the *mean of the per-fold AUCs*, not the AUC of the pooled scores:
    models of different folds are calibrated differently, and pooling their scores biases a
    no-signal AUC below 0.5 when folds differ in their positive rate.
    ``model`` defaults to :func:`make_forest`.
    """
    from sklearn.model_selection import GroupKFold

    X, y, groups = np.asarray(features, dtype=float), np.asarray(y).astype(int), np.asarray(groups)
    n_splits = min(n_splits, len(np.unique(groups)))
    model = make_forest(seed) if model is None else model
    return _cross_validate(GroupKFold(n_splits=n_splits).split(X, y, groups), X, y, model)


def slice_cv(features: pd.DataFrame, y, n_splits: int = 5, seed: int = 0, model=None) -> dict:
    """The *wrong* cross-validation, for contrast: folds of slices that ignore the patients.

    Slices of one patient share their patient-level headers (table position, pixel
    spacing, window tags), so the model can recognise a patient and where along the head a
    slice lies, and score the other slices of the same lesion. Same return as :func:`grouped_cv`.
    """
    from sklearn.model_selection import StratifiedKFold

    X, y = np.asarray(features, dtype=float), np.asarray(y).astype(int)
    model = make_forest(seed) if model is None else model
    return _cross_validate(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(X, y), X, y, model)


def feature_importances(features: pd.DataFrame, y, seed: int = 0, model=None) -> pd.Series:
    """Impurity importances of a forest fitted on all rows, largest first.

    A forest always spreads importance over *some* columns, even when none carries signal:
    read importances only next to a held-out score.
    """
    model = make_forest(seed) if model is None else model
    model.fit(np.asarray(features, float), np.asarray(y).astype(int))
    return pd.Series(model.feature_importances_, index=features.columns).sort_values(ascending=False)


def plot_importances(importances: pd.Series, top: int = 12, ax=None, title: str = "Random-forest feature importance"):
    """Horizontal bar chart of the ``top`` importances; returns the figure."""
    import matplotlib.pyplot as plt

    imp = importances.head(top)[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 0.3 * len(imp) + 1))
    ax.barh(list(imp.index), imp.to_numpy(), color="tab:gray")
    ax.set_xlabel("mean decrease in impurity")
    ax.set_title(title)
    return ax.figure
