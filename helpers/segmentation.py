"""Segmentation data and evaluation: 2-D slice sets, confusion-matrix metrics, object detection, RLE.

* :func:`load_slices` — one call for the notebook: 2-D images, masks, object labels and the
  group (series or case) of every slice, for ``"luna16"`` (nodules, :func:`helpers.luna16.build_slices`)
  or ``"dsb2"`` (left ventricle, :func:`dsb2_lv_slices`).
* :func:`confusion_matrix` and :func:`metric_table` — the FCN-paper table: overall accuracy,
  mean accuracy, frequency-weighted accuracy and IoU, mean IoU, per-class IoU and Dice.
* :func:`dice_per_slice`, :func:`detect_objects` — foreground Dice per slice; an object
  (nodule) counts as found when a predicted connected component overlaps it.
* :func:`dice_by_group`, :func:`pooled_dice` — per-series sufficient statistics of the pooled
  Dice (intersection, |T| + |P|), so a bootstrap over series can recompute it.
* :func:`evaluate_scans` and :func:`scan_report` — whole held-out scans, one at a time
  (from :func:`helpers.luna16.iter_scans`): pixel metrics, Dice per scan and LUNA16-style
  detection (:mod:`helpers.detection`), then the headline numbers with bootstrap intervals.
* :func:`rle_encode` / :func:`rle_decode` — Kaggle run-length encoding.

Masks are (…, H, W) arrays, 1/True = foreground; label arrays hold object ids (0 = background).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache, layouts

# --------------------------------------------------------------------------- data

def load_slices(dataset: str, root: str | os.PathLike, image_size: int, seed: int = 0,
                negatives_per_series: int = 4, frames_per_series: int = 3, **kwargs) -> dict:
    """2-D segmentation data for ``dataset`` (``"luna16"`` or ``"dsb2"``).

    Returns a dict over N slices: on disk (:class:`helpers.shards.ShardedArray`: indexing
    reads, ``take`` is a lazy view, :func:`helpers.training.make_dataset` streams them)
    ``images`` float32 (N, S, S) in [0, 1], ``masks`` uint8 (N, S, S), ``labels`` int32
    (N, S, S; one id per object: a nodule, or one LV per slice); in memory ``groups`` (the
    series / case of each slice: split on it) and ``foreground_px`` (foreground pixels per
    slice).
    ``negatives_per_series`` is used by luna16 (nodule-free slices per series),
    ``frames_per_series`` by dsb2 (frames per cardiac cycle); other keyword arguments go
    to the dataset's builder.
    """
    if dataset == "luna16":
        from . import luna16

        return luna16.build_slices(root, image_size, negatives_per_series=negatives_per_series, seed=seed, **kwargs)
    if dataset == "dsb2":
        return dsb2_lv_slices(root, image_size, frames_per_series=frames_per_series, seed=seed, **kwargs)
    raise ValueError(f"unknown dataset {dataset!r}; expected 'luna16' or 'dsb2'")


def scale_percentile(image: np.ndarray, upper: float = 99.5) -> np.ndarray:
    """MR signal has no physical unit: scale each image by its ``upper`` percentile to [0, 1]."""
    image = np.asarray(image, np.float32)
    top = float(np.percentile(image, upper))
    return np.clip(image / top, 0, 1) if top > 0 else np.zeros_like(image)


def dsb2_lv_slices(root: str | os.PathLike, image_size: int = 96, frames_per_series: int = 3, seed: int = 0,
                   use_cache: bool = True, n_jobs: int = -1) -> dict:
    """Left-ventricle segmentation slices from a DSB2-layout folder with ``lv_masks/``.

    Uses :func:`helpers.dsb2.index_frames` (usable frames that have a mask), takes
    ``frames_per_series`` frames spread over each cardiac cycle, scales each image by its
    99.5th percentile, pads to square and resizes to ``image_size``. ``groups`` is the case
    (patient): split on it. Each slice's LV gets its own label id. Same keys as
    :func:`helpers.luna16.build_slices` (``images``, ``masks``, ``labels`` on disk, written
    shard by shard; ``groups`` and ``foreground_px`` in memory). Cached beside the data.
    """
    from functools import partial

    from . import dsb2, shards

    root = layouts.check_layout("dsb2", root)
    params = dict(stage="dsb2-lv-slices", version=2, image_size=int(image_size),
                  frames_per_series=int(frames_per_series), seed=int(seed))
    files = [p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ".png", ".csv")]
    key = cache.fingerprint(files, **params)
    folder = cache.cache_dir(root, "dsb2") if use_cache else shards.scratch_folder("dsb2-lv-slices-")
    store = folder / f"dsb2-lv-slices-{key}"
    if not shards.is_complete(store, key):
        frames = dsb2.usable_frames(dsb2.index_frames(root))
        frames = frames[frames["mask_path"].notna()]
        picked = []
        for _, series in frames.groupby(["case", "series_id"], sort=False):
            idx = np.linspace(0, len(series) - 1, min(frames_per_series, len(series))).round().astype(int)
            picked.append(series.iloc[np.unique(idx)])
        picked = pd.concat(picked, ignore_index=True) if picked else frames.iloc[:0]
        items = [(i, row.abs_path, str(root / row.mask_path), str(row.case))
                 for i, row in enumerate(picked.itertuples(index=False))]
        size = int(image_size)
        shards.build(store, items, partial(_lv_shard, size=size),
                     {"images": ((size, size), np.float32), "masks": ((size, size), np.uint8),
                      "labels": ((size, size), np.int32)},
                     shard_size=int(max(16, min(256, -(-len(items) // 16)))), n_jobs=n_jobs, key=key,
                     params=params, desc="LV slices")
        shards.supersede(folder, "dsb2-lv-slices-", key)
    return shards.slice_set(store, {"groups": "group", "foreground_px": "foreground_px"})


def _lv_shard(items: list[tuple], size: int):
    """The work of one shard of :func:`dsb2_lv_slices`: frames read, scaled and resized with their masks."""
    from . import dsb2, luna16

    images, labels = np.zeros((len(items), size, size), np.float32), np.zeros((len(items), size, size), np.int32)
    for k, (i, frame_path, mask_path, _) in enumerate(items):
        image = scale_percentile(dsb2.read_frame(frame_path))
        mask = dsb2.read_mask(mask_path).astype(np.int32) * (i + 1)
        images[k], labels[k] = luna16.resize_pair(image, mask, size)
    masks = (labels > 0).astype(np.uint8)
    table = pd.DataFrame({"group": [item[3] for item in items],
                          "foreground_px": masks.reshape(len(items), -1).sum(axis=1).astype(int)})
    return {"images": images, "masks": masks, "labels": labels}, table


def split_by_group(groups, test_size: float = 0.25, seed: int = 0):
    """Train/test slice indices with whole groups (series, patients) on one side only.

    ``sklearn.model_selection.GroupShuffleSplit``: no series contributes slices to both sets.
    """
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return np.sort(train), np.sort(test)


# --------------------------------------------------------------------------- metrics

def confusion_matrix(y_true, y_pred, n_classes: int = 2) -> np.ndarray:
    """Pixel confusion matrix, rows = true class, columns = predicted class (int64)."""
    t = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(y_pred).astype(np.int64).ravel()
    return np.bincount(n_classes * t + p, minlength=n_classes**2).reshape(n_classes, n_classes)


def metric_table(cm: np.ndarray, class_names=("background", "foreground")):
    """Summary and per-class tables from a confusion matrix.

    Returns ``(summary, per_class)``: ``summary`` is a one-column DataFrame with
    overall_accuracy (Σ TP / N), mean_accuracy (mean over classes of TP_c / N_c),
    frequency_weighted_accuracy (Σ_c N_c/N · TP_c/N_c, which is identically the overall
    accuracy), mean_iou, frequency_weighted_iou; ``per_class`` has pixels, accuracy (recall),
    iou and dice per class. A class absent from both truth and prediction gets NaN.
    """
    cm = np.asarray(cm, float)
    tp = np.diag(cm)
    n_true, n_pred, total = cm.sum(axis=1), cm.sum(axis=0), cm.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = tp / n_true
        iou = tp / (n_true + n_pred - tp)
        dice = 2 * tp / (n_true + n_pred)
    freq = n_true / total
    summary = pd.DataFrame({"value": {
        "overall_accuracy": tp.sum() / total, "mean_accuracy": np.nanmean(acc),
        "frequency_weighted_accuracy": np.nansum(freq * acc), "mean_iou": np.nanmean(iou),
        "frequency_weighted_iou": np.nansum(freq * iou)}})
    per_class = pd.DataFrame({"pixels": n_true.astype(np.int64), "accuracy": acc, "iou": iou, "dice": dice},
                             index=list(class_names)[: len(tp)])
    return summary, per_class


def dice_per_slice(y_true, y_pred, empty: float = np.nan) -> np.ndarray:
    """Foreground Dice of each slice (N, H, W); ``empty`` where truth and prediction are both empty."""
    t = np.asarray(y_true).astype(bool).reshape(len(y_true), -1)
    p = np.asarray(y_pred).astype(bool).reshape(len(y_pred), -1)
    inter = (t & p).sum(axis=1)
    denom = t.sum(axis=1) + p.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2 * inter / np.maximum(denom, 1), empty)


def detect_objects(pred_masks, labels, min_size: int = 1) -> dict:
    """Object-level detection on 2-D slices.

    An object (label id in ``labels``, e.g. one nodule across its slices) is **found** when
    a predicted connected component (8-connected, at least ``min_size`` pixels) overlaps
    any of its pixels on any slice. Predicted components that overlap no object are false
    positives. Returns n_objects, n_found, recall, n_pred_components,
    n_false_positive_components and ``found`` ({object id: bool}).
    """
    from scipy import ndimage

    pred = np.asarray(pred_masks).astype(bool)
    labels = np.asarray(labels)
    found = {int(k): False for k in np.unique(labels[labels > 0])}
    n_comp = n_fp = 0
    for p, lab in zip(pred, labels):
        comps, n = ndimage.label(p, structure=np.ones((3, 3)))
        if n == 0:
            continue
        sizes = np.bincount(comps.ravel(), minlength=n + 1)
        for c in range(1, n + 1):
            if sizes[c] < min_size:
                continue
            n_comp += 1
            hit = np.unique(lab[(comps == c) & (lab > 0)])
            for k in hit:
                found[int(k)] = True
            n_fp += int(len(hit) == 0)
    n_found = sum(found.values())
    return {"n_objects": len(found), "n_found": int(n_found),
            "recall": n_found / len(found) if found else float("nan"),
            "n_pred_components": n_comp, "n_false_positive_components": n_fp, "found": found}


def dice_by_group(y_true, y_pred, groups) -> pd.DataFrame:
    """Per-group (series, case) sufficient statistics of the foreground Dice: ``intersection``
    = |T∩P|, ``size_sum`` = |T| + |P|, and the group's own ``dice`` (nan when both are empty).
    One row per group, sorted by group."""
    t = np.asarray(y_true).astype(bool).reshape(len(y_true), -1)
    p = np.asarray(y_pred).astype(bool).reshape(len(y_pred), -1)
    table = pd.DataFrame({"group": np.asarray(groups).astype(str), "intersection": (t & p).sum(axis=1),
                          "size_sum": t.sum(axis=1) + p.sum(axis=1)}).groupby("group", as_index=False).sum()
    table["dice"] = pooled_dice_rows(table["intersection"], table["size_sum"])
    return table


def pooled_dice_rows(intersection, size_sum) -> np.ndarray:
    inter, total = np.asarray(intersection, float), np.asarray(size_sum, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 2 * inter / np.maximum(total, 1), np.nan)


def pooled_dice(intersection, size_sum) -> float:
    """Foreground Dice of all pixels pooled: 2 Σ|T∩P| / Σ(|T| + |P|) (nan when all are empty).
    Takes per-series statistics, so ``evaluation.bootstrap_ci(pooled_dice, series, inter, sums)``
    recomputes the pooled number on every resample of series."""
    total = float(np.sum(size_sum))
    return 2 * float(np.sum(intersection)) / total if total > 0 else float("nan")


def evaluate_scans(predict, scans, threshold: float = 0.5) -> dict:
    """Predict and score whole scans one at a time (only small summaries are kept).

    ``predict`` maps an image stack (Z, S, S) to probabilities (Z, S, S) (e.g.
    ``lambda x: unet.predict_proba(model, x)``); ``scans`` is an iterable of
    :func:`helpers.luna16.iter_scans` dicts. For each scan: the pixel confusion matrix at
    ``threshold``, the Dice statistics, and :func:`helpers.detection.candidates` (3-D
    components across its slices) matched to its nodules with :func:`helpers.detection.match`.

    Returns ``{"per_scan": DataFrame (seriesuid, n_slices, n_nodules, n_found,
    n_candidates, n_false_positives, intersection, size_sum, dice), "matches": list of
    match results (scan order), "cm": 2×2 pixel confusion matrix of all scans,
    "example": the scan with the most nodule pixels (images, labels, prob, ...)}``.
    """
    from . import detection

    rows, matches, cm, example = [], [], np.zeros((2, 2), np.int64), None
    for scan in scans:
        prob = np.asarray(predict(scan["images"]), np.float32).reshape(scan["images"].shape)
        pred, truth = prob > threshold, scan["labels"] > 0
        cm += confusion_matrix(truth, pred)
        cands = detection.candidates(prob, scan["spacing_zyx"], threshold)
        found = detection.match(cands, scan["nodules_zyx_mm"], scan["radii_mm"])
        matches.append(found)
        inter, size_sum = int((truth & pred).sum()), int(truth.sum() + pred.sum())
        rows.append({"seriesuid": scan["seriesuid"], "n_slices": len(prob), "n_nodules": len(scan["radii_mm"]),
                     "n_found": int(np.isfinite(found["nodule_scores"]).sum()), "n_candidates": len(cands["scores"]),
                     "n_false_positives": len(found["fp_scores"]), "intersection": inter, "size_sum": size_sum})
        if example is None or truth.sum() > example["labels"].astype(bool).sum():
            example = {**scan, "prob": prob, "candidates": cands, "match": found}
    per_scan = pd.DataFrame(rows, columns=["seriesuid", "n_slices", "n_nodules", "n_found", "n_candidates",
                                           "n_false_positives", "intersection", "size_sum"])
    per_scan["dice"] = pooled_dice_rows(per_scan["intersection"], per_scan["size_sum"])
    return {"per_scan": per_scan, "matches": matches, "cm": cm, "example": example}


def scan_report(result: dict, digits: int = 4, n_boot: int = 1000, seed: int = 0) -> dict:
    """Headline whole-scan metrics of :func:`evaluate_scans` with 95 % bootstrap intervals over SCANS.

    Keys: ``foreground_dice`` (pooled over all pixels of all scans) and ``foreground_dice_ci``,
    ``foreground_iou``, ``mean_iou``, ``overall_accuracy``, ``dice_per_scan`` (median, min, max
    over scans where truth or prediction is non-empty), ``nodule_sensitivity_at_fp`` and
    ``nodule_sensitivity_at_fp_ci`` (keyed by the FP rate as text, e.g. ``"0.125"``), ``cpm``,
    ``cpm_ci``, ``nodule_recall`` and ``nodule_recall_ci`` (share of nodules hit at the
    threshold), ``n_scans``, ``n_nodules``, ``false_positives_per_scan`` (at the threshold).
    """
    from . import detection, evaluation

    scans, matches = result["per_scan"], result["matches"]
    uids, idx = scans["seriesuid"].to_numpy(str), np.arange(len(matches))
    table, per_class = metric_table(result["cm"])
    kw = dict(digits=digits, n_boot=n_boot, seed=seed)
    dice, dice_ci = evaluation.with_ci(pooled_dice, uids, scans["intersection"], scans["size_sum"], **kw)
    by_scan = scans["dice"].dropna()
    out = {"foreground_dice": dice, "foreground_dice_ci": dice_ci,
           "foreground_iou": round(float(per_class.loc["foreground", "iou"]), digits),
           "mean_iou": round(float(table.loc["mean_iou", "value"]), digits),
           "overall_accuracy": round(float(table.loc["overall_accuracy", "value"]), digits),
           "dice_per_scan": {k: (round(float(f(by_scan)), digits) if len(by_scan) else None)
                             for k, f in (("median", np.median), ("min", np.min), ("max", np.max))}}
    curve = detection.froc(matches)
    sens, sens_ci = {}, {}
    for j, rate in enumerate(curve["fp_rates"]):
        key = f"{rate:g}"
        value, ci = evaluation.with_ci(lambda i, j=j: detection.froc([matches[k] for k in i])["sensitivity"][j],
                                       uids, idx, **kw)
        sens[key], sens_ci[key] = value, ci
    out.update(nodule_sensitivity_at_fp=sens, nodule_sensitivity_at_fp_ci=sens_ci)
    out["cpm"], out["cpm_ci"] = evaluation.with_ci(lambda i: detection.cpm([matches[k] for k in i]), uids, idx, **kw)
    out["nodule_recall"], out["nodule_recall_ci"] = evaluation.with_ci(
        lambda found, n: np.sum(found) / np.sum(n) if np.sum(n) else np.nan, uids, scans["n_found"],
        scans["n_nodules"], **kw)
    out.update(n_scans=int(len(scans)), n_nodules=int(scans["n_nodules"].sum()),
               false_positives_per_scan=round(float(scans["n_false_positives"].mean()), digits) if len(scans) else None)
    return out


# --------------------------------------------------------------------------- RLE

def rle_encode(mask: np.ndarray) -> str:
    """Kaggle run-length encoding of a 2-D mask: ``"start length start length ..."``.

    Convention (Kaggle segmentation competitions): pixels numbered in **column-major**
    order (top to bottom, then left to right, i.e. Fortran order), **1-based** starts.
    An empty mask encodes as ``""``.
    """
    pixels = np.asarray(mask).astype(bool).ravel(order="F")
    padded = np.concatenate([[False], pixels, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1]) + 1   # 1-based positions where runs start/end
    starts, ends = edges[::2], edges[1::2]
    return " ".join(f"{s} {e - s}" for s, e in zip(starts, ends))


def rle_decode(rle: str, shape) -> np.ndarray:
    """Inverse of :func:`rle_encode`: a bool mask of ``shape`` (rows, cols)."""
    flat = np.zeros(int(np.prod(shape)), bool)
    values = [int(v) for v in str(rle or "").split()]
    for start, length in zip(values[::2], values[1::2]):
        flat[start - 1:start - 1 + length] = True
    return flat.reshape(shape, order="F")


# --------------------------------------------------------------------------- figures

def show_predictions(images, truths, preds, indices, titles=None, size: float = 2.4, ax=None):
    """Overlay truth (green) and prediction (red) contours on the chosen slices; returns the figure."""
    from .plotting import overlay, panels

    indices = list(indices)
    fig, axes = panels(1, len(indices), (size * len(indices), size), ax)
    for j, (ax, i) in enumerate(zip(axes[0], indices)):
        overlay(images[i], truths[i], ax=ax, mask_color="lime", vmin=0, vmax=1,
                title=None if titles is None else titles[j])
        if np.any(preds[i]):
            ax.contour(np.asarray(preds[i], float), levels=[0.5], colors=["red"], linewidths=1)
    fig.tight_layout()
    return fig
