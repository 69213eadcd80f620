"""Nodule detection scored the LUNA16 way: candidates, hits within the radius, FROC and CPM.

The data flow, one function per arrow:

``candidates`` (3-D connected components of a probability volume above a threshold, each a
point in mm with the maximum probability as its score, ties broken by the mean) → ``match`` (a candidate is a HIT
when its centre lies within the nodule's radius, diameter / 2 in mm, of an annotated
centre; each nodule counted once, at its best-scoring hit; candidates that hit no nodule
are false positives) → ``froc`` (sensitivity against the average number of false positives
per scan, pooled over scans) → ``cpm`` (the Competition Performance Metric of LUNA16: the
mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per scan).

Pure numpy/scipy. Coordinates are (z, y, x) in mm, spacing (z, y, x) mm per voxel.
"""
from __future__ import annotations

import numpy as np

#: False-positive rates (per scan) at which LUNA16 reads the FROC curve; their mean sensitivity is the CPM.
FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Weight of a candidate's mean probability in its score, to order components tied at the maximum.
TIE_BREAK = 1e-6


def candidates(prob_volume, spacing_zyx=(1.0, 1.0, 1.0), threshold: float = 0.5) -> dict:
    """Detection candidates of one scan: the 3-D connected components (26-connected) of
    ``prob_volume > threshold``.

    ``prob_volume`` (Z, Y, X) holds per-voxel probabilities (a stack of 2-D predictions).
    Returns ``{"centres_mm": (C, 3) centroid of each component in mm (voxel index ×
    spacing), "scores": (C,) maximum probability inside it, "sizes": (C,) voxels}``, in
    decreasing score order.

    A confident network saturates its float32 sigmoid: many components, hits and false
    positives alike, reach a maximum of exactly 1.0, and tied scores make one threshold of
    the FROC curve (so at 1/8 FP per scan the sensitivity of a tie is all or nothing). Ties
    are broken by the component's mean probability: ``score = max + TIE_BREAK * mean``,
    a change below float32's resolution for any component that is not tied.
    """
    from scipy import ndimage

    prob = np.asarray(prob_volume, float)
    comps, n = ndimage.label(prob > threshold, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return {"centres_mm": np.zeros((0, 3)), "scores": np.zeros(0), "sizes": np.zeros(0, int)}
    index = np.arange(1, n + 1)
    centres = np.asarray(ndimage.center_of_mass(np.ones_like(prob), comps, index), float).reshape(n, 3)
    scores = np.asarray(ndimage.maximum(prob, comps, index), float)
    scores = scores + TIE_BREAK * np.asarray(ndimage.mean(prob, comps, index), float)
    sizes = np.bincount(comps.ravel(), minlength=n + 1)[1:]
    order = np.argsort(-scores, kind="stable")
    return {"centres_mm": centres[order] * np.asarray(spacing_zyx, float), "scores": scores[order],
            "sizes": sizes[order]}


def match(cands: dict, nodules_zyx_mm, radii_mm) -> dict:
    """Score one scan's candidates against its annotated nodules (LUNA16's rule).

    A candidate is a hit on a nodule when the distance from its centre to the nodule's centre
    is at most that nodule's radius (mm). A nodule is found when any candidate hits it; its
    score is the best score among those hits (so each nodule counts once, however many
    candidates hit it). A candidate that hits no nodule is a false positive; extra hits on an
    already-found nodule are neither (LUNA16 ignores them).

    Returns ``{"nodule_scores": (K,) best hit score per nodule, -inf when missed,
    "fp_scores": (F,) scores of the false positives, "hit": (C,) index of the nodule each
    candidate hits (nearest centre among those within reach) or -1}``.
    """
    centres = np.asarray(cands["centres_mm"], float).reshape(-1, 3)
    scores = np.asarray(cands["scores"], float).ravel()
    nods = np.asarray(nodules_zyx_mm, float).reshape(-1, 3)
    radii = np.asarray(radii_mm, float).ravel()
    hit = np.full(len(centres), -1, int)
    nodule_scores = np.full(len(nods), -np.inf)
    if len(centres) and len(nods):
        dist = np.linalg.norm(centres[:, None, :] - nods[None, :, :], axis=2)
        within = dist <= radii[None, :]
        nearest = np.argmin(np.where(within, dist, np.inf), axis=1)
        hit = np.where(within.any(axis=1), nearest, -1)
        for k in range(len(nods)):
            if within[:, k].any():
                nodule_scores[k] = scores[within[:, k]].max()
    return {"nodule_scores": nodule_scores, "fp_scores": scores[hit < 0], "hit": hit}


def froc(per_scan_results, n_scans: int | None = None, fp_rates=FP_RATES) -> dict:
    """Free-response ROC pooled over scans, and the sensitivity at each FP rate.

    ``per_scan_results`` is a list of :func:`match` results (one per scan; scans without
    nodules or without candidates included: their false positives count). Each distinct
    candidate score is a threshold: sensitivity = found nodules / all nodules, and
    false positives per scan = false positives / ``n_scans`` (default: the number of results).

    Sensitivity at a rate r follows the STEP rule: the highest sensitivity of an operating
    point with at most r false positives per scan (0 if there is none); the official LUNA16
    script interpolates linearly between operating points instead, which can only read
    higher. Beyond the last operating point the curve stays flat (no more candidates).

    Returns ``{"fp_rates": list, "sensitivity": list (one per rate), "fps_per_scan": curve
    x, "sensitivity_curve": curve y, "n_nodules": int, "n_scans": int}``; sensitivities are
    ``nan`` when there are no nodules.
    """
    results = list(per_scan_results)
    n_scans = len(results) if n_scans is None else int(n_scans)
    nod = np.concatenate([np.asarray(r["nodule_scores"], float).ravel() for r in results]) if results else np.zeros(0)
    fp = np.concatenate([np.asarray(r["fp_scores"], float).ravel() for r in results]) if results else np.zeros(0)
    rates = [float(r) for r in fp_rates]
    if len(nod) == 0 or n_scans == 0:
        return {"fp_rates": rates, "sensitivity": [float("nan")] * len(rates), "fps_per_scan": np.zeros(0),
                "sensitivity_curve": np.zeros(0), "n_nodules": int(len(nod)), "n_scans": n_scans}
    thresholds = np.unique(np.concatenate([nod[np.isfinite(nod)], fp]))[::-1]
    fps = (len(fp) - np.searchsorted(np.sort(fp), thresholds, side="left")) / n_scans
    sens = (len(nod) - np.searchsorted(np.sort(nod), thresholds, side="left")) / len(nod)
    sensitivity = [float(sens[fps <= r].max()) if (fps <= r).any() else 0.0 for r in rates]
    return {"fp_rates": rates, "sensitivity": sensitivity, "fps_per_scan": fps, "sensitivity_curve": sens,
            "n_nodules": int(len(nod)), "n_scans": n_scans}


def cpm(per_scan_results, n_scans: int | None = None, fp_rates=FP_RATES) -> float:
    """Competition Performance Metric: the mean of :func:`froc`'s sensitivities at ``fp_rates``
    (1 for a detector that finds every nodule with no false positive, 0 for one that finds none)."""
    return float(np.mean(froc(per_scan_results, n_scans, fp_rates)["sensitivity"]))


def recall(per_scan_results) -> float:
    """Share of nodules hit by at least one candidate (sensitivity with every candidate kept)."""
    nod = np.concatenate([np.asarray(r["nodule_scores"], float).ravel() for r in per_scan_results] or [np.zeros(0)])
    return float(np.isfinite(nod).mean()) if len(nod) else float("nan")


def plot_froc(froc_result: dict, ax=None, label: str | None = None, color=None):
    """FROC curve (sensitivity against false positives per scan, log x) with the LUNA16 read-out
    points marked; returns the figure. Call again with the same ``ax`` to compare models."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    rates, sens = froc_result["fp_rates"], froc_result["sensitivity"]
    fps, curve = np.asarray(froc_result["fps_per_scan"]), np.asarray(froc_result["sensitivity_curve"])
    lo = min(rates) / 2
    if len(fps):
        x = np.concatenate([[lo], np.maximum(fps, lo), [max(rates) * 2]])
        y = np.concatenate([[0.0], curve, [curve[-1]]])
        ax.step(x, y, where="post", color=color, lw=2, label=f"{label or 'model'} (CPM {np.nanmean(sens):.3f})")
    ax.plot(rates, sens, "o", color=color or "k", ms=4)
    ax.set_xscale("log", base=2)
    ax.set_xlim(lo, max(rates) * 2)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(rates, [f"{r:g}" for r in rates])
    ax.set_xlabel("false positives per scan")
    ax.set_ylabel("sensitivity")
    ax.set_title("FROC")
    ax.legend(loc="lower right", fontsize=8)
    return ax.figure
