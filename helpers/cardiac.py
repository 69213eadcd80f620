"""The cardiac chain of notebook 09: a short-axis cine study → LV volumes over the cycle →
end-diastolic and end-systolic volume (EDV, ESV) → ejection fraction, scored as the Data
Science Bowl 2 scored it (CRPS).

Layers used: :mod:`helpers.dsb2` (the layout, headers, pixels), :mod:`helpers.keypoints`
(``crop_physical``: one resampling path for every crop), :mod:`helpers.shards` (training crops
written shard by shard), :mod:`helpers.evaluation` (study-level bootstrap).

Geometry
    :func:`slice_table` places every short-axis slice of a study on the stack's axis: the
    position is ``ImagePositionPatient · n``, ``n`` the slice normal from
    ``ImageOrientationPatient`` (``SliceLocation`` when those tags are missing), never the file
    or folder order. :func:`slice_weights` gives each slice the thickness of the slab it stands
    for (half the gap to each neighbour; a missing slice widens its neighbours' slabs; a
    duplicated position counts once) and :func:`simpson_volume` sums area × thickness
    (Simpson's rule as the DSB2 tutorials used it). :func:`volume_curve` does that at every
    phase of the cycle, after resampling each slice's areas onto one phase grid (a slice with
    another frame count, or a missing frame, is interpolated around the cycle; a slice with no
    area at all is interpolated along the stack). :func:`cycle_index` places each frame in its
    slice's cycle by ``InstanceNumber``, so an unreadable frame leaves a gap that is
    interpolated rather than shifting the frames after it; :func:`stack_report` counts what had
    to be handled (gaps, other frame counts, duplicated positions, studies without masks).
Crops
    :func:`crop_set` writes training crops for the two networks: the whole field of view on a
    fixed physical grid (the LV *locator*) and a fixed physical square around the LV with a
    random offset (the *segmenter*). :func:`measure_study` runs a study through both.
Scoring
    :func:`normal_cdf` turns a volume estimate and its uncertainty into DSB2's 600-step CDF,
    :func:`crps` scores CDFs against the true volumes, :func:`fit_calibration` learns the
    bias and spread of the volume estimates from validation studies.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache, dsb2, evaluation, layouts, shards
from .keypoints import crop_physical
from .segmentation import scale_percentile

N_STEPS = 600            # DSB2: a CDF over 0, 1, ..., 599 mL
DUPLICATE_MM = 0.5       # two slices closer than this along the stack are one location


# ----------------------------------------------------------------------------- geometry
def slice_table(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per short-axis slice (``case``, ``series_id``) of usable frames, with its
    position along the stack (``position_mm``), ``n_frames``, pixel spacing, size and thickness.

    ``position_mm`` projects ``ImagePositionPatient`` on the case's slice normal (the median
    normal of its slices, from ``ImageOrientationPatient``); a case without those tags uses
    ``SliceLocation``. Rows are sorted by case and position.
    """
    frames = frames.assign(**cycle_index(frames))
    first = frames.sort_values("frame").groupby(["case", "series_id"], sort=False).first().reset_index()
    table = first[["case", "series_id", "n_frames", "rows", "cols", "row_spacing_mm", "col_spacing_mm",
                   "SliceThickness", "SliceLocation", "SeriesNumber"]].copy()
    position = first[["position_x", "position_y", "position_z"]].to_numpy(float)
    normal = (first[["normal_x", "normal_y", "normal_z"]].to_numpy(float) if "normal_x" in first
              else np.full_like(position, np.nan))
    table["position_mm"] = table["SliceLocation"].astype(float)
    for rows in table.groupby("case", sort=False).groups.values():
        rows = np.asarray(rows)
        ok = np.isfinite(normal[rows]).all(axis=1)
        n = np.median(normal[rows][ok], axis=0) if ok.any() else np.full(3, np.nan)
        if np.all(np.isfinite(n)) and np.all(np.isfinite(position[rows])):
            table.loc[rows, "position_mm"] = position[rows] @ (n / np.linalg.norm(n))
    table["n_frames"] = table["n_frames"].astype(int)
    return table.sort_values(["case", "position_mm", "SeriesNumber"], kind="stable").reset_index(drop=True)


def cycle_index(frames: pd.DataFrame) -> dict[str, pd.Series]:
    """Each frame's place in its slice's cycle, ``frame`` (0-based) and ``n_frames``, from
    ``InstanceNumber``: an unreadable frame leaves a gap (its neighbours keep their phase)
    instead of shifting every later frame by one. A slice whose instance numbers are missing
    or repeated keeps the index's rank order (``frame``, ``n_frames`` as given)."""
    frame, n_frames = frames["frame"].astype(float).copy(), frames["n_frames"].astype(float).copy()
    if "InstanceNumber" in frames:
        for rows in frames.groupby(["case", "series_id"], sort=False).groups.values():
            inst = frames.loc[rows, "InstanceNumber"].astype(float)
            if inst.notna().all() and inst.is_unique:
                frame[rows] = inst - inst.min()
                n_frames[rows] = max(len(rows), inst.max() - inst.min() + 1)
    return {"frame": frame.astype(int), "n_frames": n_frames.astype(int)}


def stack_report(frames: pd.DataFrame, slices: pd.DataFrame) -> dict:
    """What the volume computation had to handle, counted: slices with a gap in their cycle
    (an unreadable frame), slices whose frame count differs from their study's most common
    one, slices at a duplicated position (merged, :data:`DUPLICATE_MM`), studies without any
    LV mask."""
    counts = frames.groupby(["case", "series_id"], sort=False).size().rename("present").reset_index()
    table = slices.merge(counts, on=["case", "series_id"])
    usual = table.groupby("case")["n_frames"].transform(lambda n: n.mode().iloc[0])
    duplicated = sum(int((slice_weights(g["position_mm"]) == 0).sum()) for _, g in slices.groupby("case"))
    with_mask = frames.groupby("case")["mask_path"].apply(lambda m: m.notna().any()) if "mask_path" in frames else None
    return {"n_studies": int(slices["case"].nunique()), "n_slices": len(slices),
            "slices_with_a_gap_in_the_cycle": int((table["present"] < table["n_frames"]).sum()),
            "slices_with_another_frame_count": int((table["n_frames"] != usual).sum()),
            "slices_at_a_duplicated_position": duplicated,
            "studies_without_masks": int((~with_mask).sum()) if with_mask is not None else int(slices["case"].nunique())}


def slice_weights(positions_mm, thickness_mm: float | None = None) -> np.ndarray:
    """The slab thickness (mm) each slice stands for, in the order given.

    Sorted along the stack, slice ``i`` covers half the gap to each neighbour; an end slice
    covers the gap to its one neighbour (so ``n`` equally spaced slices ``d`` apart cover
    ``n × d``, the slab model of Simpson's rule). A missing slice leaves a wider gap that its
    two neighbours share. Slices closer than :data:`DUPLICATE_MM` are one location: the last
    of them (in the order given) keeps the weight, the others get 0. A single slice gets
    ``thickness_mm`` (NaN if not given).
    """
    p = np.asarray(positions_mm, float)
    weights = np.zeros(len(p))
    if len(p) == 0:
        return weights
    order = np.argsort(p, kind="stable")
    keep = []                                   # one index per location: the last given
    for i in order:
        if keep and abs(p[i] - p[keep[-1]]) < DUPLICATE_MM:
            keep[-1] = max(keep[-1], i)
        else:
            keep.append(i)
    keep = np.array(keep)
    if len(keep) == 1:
        weights[keep] = np.nan if thickness_mm is None else float(thickness_mm)
        return weights
    gaps = np.diff(p[keep])
    left = np.concatenate([[gaps[0]], gaps])
    right = np.concatenate([gaps, [gaps[-1]]])
    weights[keep] = (left + right) / 2
    return weights


def simpson_volume(areas_mm2, positions_mm, thickness_mm: float | None = None) -> float:
    """LV volume in mL: Σ area × slab thickness (:func:`slice_weights`) / 1000."""
    areas = np.asarray(areas_mm2, float)
    return float(np.nansum(areas * slice_weights(positions_mm, thickness_mm)) / 1000.0)


def resample_cycle(frames, values, n_frames: int, n_phases: int) -> np.ndarray:
    """One slice's values (one per frame index ``0..n_frames-1``; NaN = missing) on a grid
    of ``n_phases`` equally spaced phases, interpolated linearly *around* the cycle (the cycle
    is periodic: the last frame's neighbour is the first). All-NaN → all-NaN."""
    frames, values = np.asarray(frames, float), np.asarray(values, float)
    ok = np.isfinite(values)
    if not ok.any():
        return np.full(n_phases, np.nan)
    phase = frames[ok] / n_frames
    grid = np.arange(n_phases) / n_phases
    return np.interp(grid, phase, values[ok], period=1.0)


def volume_curve(areas: pd.DataFrame, slices: pd.DataFrame, column: str = "area_mm2",
                 n_phases: int | None = None) -> np.ndarray:
    """The LV volume (mL) of one study at each of ``n_phases`` phases of the cycle.

    ``areas``: one row per frame (``series_id``, ``frame``, ``column`` in mm²; NaN where a
    frame is missing or unmeasured); ``slices``: :func:`slice_table` rows of the same study
    (every slice of the stack, measured or not). ``n_phases`` defaults to the study's most
    common frame count. Each slice's areas are resampled onto that phase grid
    (:func:`resample_cycle`); a slice without any area takes, at each phase, the area
    interpolated along the stack from the measured slices (the nearest one beyond an end);
    the slab thicknesses come from the positions of every slice (:func:`slice_weights`).
    """
    slices = slices.reset_index(drop=True)
    n_phases = int(n_phases or slices["n_frames"].mode().iloc[0])
    curves = np.full((len(slices), n_phases), np.nan)
    by_series = dict(tuple(areas.groupby("series_id", sort=False)))
    for i, row in slices.iterrows():
        if row["series_id"] in by_series:
            frames = by_series[row["series_id"]]
            curves[i] = resample_cycle(frames["frame"], frames[column], int(row["n_frames"]), n_phases)
    measured = np.isfinite(curves).all(axis=1)
    if not measured.any():
        return np.full(n_phases, np.nan)
    pos = slices["position_mm"].to_numpy(float)
    order = np.argsort(pos[measured], kind="stable")
    for i in np.flatnonzero(~measured):
        curves[i] = [np.interp(pos[i], pos[measured][order], curves[measured][order, k]) for k in range(n_phases)]
    weights = slice_weights(pos, float(slices["SliceThickness"].median()))
    return curves.T @ np.nan_to_num(weights) / 1000.0


def ed_es(curve) -> dict:
    """EDV = the largest volume over the cycle, ESV = the smallest, EF = (EDV − ESV) / EDV."""
    curve = np.asarray(curve, float)
    if not np.isfinite(curve).all():
        return {"edv_ml": np.nan, "esv_ml": np.nan, "ef": np.nan}
    edv, esv = float(curve.max()), float(curve.min())
    return {"edv_ml": edv, "esv_ml": esv, "ef": (edv - esv) / edv if edv > 0 else np.nan}


# ----------------------------------------------------------------------------- crops
def mask_centre(mask) -> tuple[float, float] | None:
    """Centroid (row, col) of a binary mask's largest connected component; None when empty."""
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(mask) > 0)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    r, c = ndimage.center_of_mass(labels == (np.argmax(sizes) + 1))
    return float(r), float(c)


def field_centre(rows: int, cols: int) -> tuple[float, float]:
    """The centre of an image's pixel grid (pixel centres at integers)."""
    return (rows - 1) / 2.0, (cols - 1) / 2.0


def crop_to_native(point_rc, centre_rc, spacing, size_mm: float, out_px: int) -> np.ndarray:
    """A point in a :func:`~helpers.keypoints.crop_physical` crop's pixels → the native frame's pixels."""
    offset_mm = ((np.asarray(point_rc, float) + 0.5) / out_px - 0.5) * size_mm
    return np.asarray(centre_rc, float) + offset_mm / np.asarray(spacing, float)


def crop_pair(image, mask, centre_rc, spacing, size_mm: float, out_px: int):
    """The same physical crop of an image (scaled by its 99.5th percentile) and of its mask."""
    x = crop_physical(scale_percentile(image), centre_rc, spacing, size_mm, out_px, order=1)
    m = None if mask is None else crop_physical(np.asarray(mask, np.float32), centre_rc, spacing, size_mm,
                                               out_px, order=1) >= 0.5
    return x, m


def crop_set(root: str | os.PathLike, frames: pd.DataFrame, kind: str, size_mm: float, out_px: int,
             frames_per_series: int = 4, jitter_mm: float = 0.0, seed: int = 0, use_cache: bool = True,
             n_jobs: int = -1) -> dict:
    """Training crops from the frames with a mask, written to disk shard by shard.

    ``kind="field"``: the whole field of view, centred on the image (the locator's input);
    ``kind="lv"``: a square around the mask's centre moved by a random offset of up to
    ``jitter_mm`` in each direction (the segmenter's input: it must cope with a locator that
    misses the centre). ``frames_per_series`` frames spread over each slice's cycle. Returns
    :func:`helpers.shards.slice_set`: ``images`` and ``masks`` on disk, ``groups`` (the case).
    """
    root = Path(root)
    picked = []
    for _, series in frames[frames["mask_path"].notna()].groupby(["case", "series_id"], sort=False):
        series = series.sort_values("frame")
        idx = np.unique(np.linspace(0, len(series) - 1, min(frames_per_series, len(series))).round().astype(int))
        picked.append(series.iloc[idx])
    if not picked:
        raise ValueError(f"no frame with a mask under {root / 'lv_masks'}: nothing to train on")
    picked = pd.concat(picked, ignore_index=True)
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-jitter_mm, jitter_mm, (len(picked), 2)) if jitter_mm > 0 else np.zeros((len(picked), 2))
    items = [(r.abs_path, str(root / r.mask_path), str(r.case), (r.row_spacing_mm, r.col_spacing_mm), tuple(j))
             for r, j in zip(picked.itertuples(index=False), jitter)]
    params = dict(stage=f"cardiac-{kind}", version=1, size_mm=float(size_mm), out_px=int(out_px),
                  frames_per_series=int(frames_per_series), jitter_mm=float(jitter_mm), seed=int(seed))
    key = cache.fingerprint([i[0] for i in items] + [i[1] for i in items], **params)
    folder = cache.cache_dir(root, "dsb2") if use_cache else shards.scratch_folder("cardiac-")
    store = folder / f"cardiac-{kind}-{key}"
    if not shards.is_complete(store, key):
        shape = (int(out_px), int(out_px))
        shards.build(store, items, partial(_crop_shard, kind=kind, size_mm=float(size_mm), out_px=int(out_px)),
                     {"images": (shape, np.float32), "masks": (shape, np.uint8)},
                     shard_size=int(max(16, min(256, -(-len(items) // 16)))), n_jobs=n_jobs, key=key,
                     params=params, desc=f"{kind} crops")
        shards.supersede(folder, f"cardiac-{kind}-", key)
    return shards.slice_set(store, {"groups": "group", "foreground_px": "foreground_px"})


def _crop_shard(items: list[tuple], kind: str, size_mm: float, out_px: int):
    """One shard of :func:`crop_set`."""
    images = np.zeros((len(items), out_px, out_px), np.float32)
    masks = np.zeros((len(items), out_px, out_px), np.uint8)
    for k, (frame_path, mask_path, _, spacing, jitter) in enumerate(items):
        image, mask = dsb2.read_frame(frame_path), dsb2.read_mask(mask_path)
        centre = field_centre(*image.shape) if kind == "field" else (mask_centre(mask) or field_centre(*image.shape))
        centre = np.asarray(centre) + np.asarray(jitter) / np.asarray(spacing)
        images[k], masks[k] = crop_pair(image, mask, centre, spacing, size_mm, out_px)
    table = pd.DataFrame({"group": [item[2] for item in items],
                          "foreground_px": masks.reshape(len(items), -1).sum(axis=1).astype(int)})
    return {"images": images, "masks": masks}, table


# ----------------------------------------------------------------------------- one study
def locate(prob_maps, centre_rc, spacing, size_mm: float, threshold: float = 0.5):
    """The LV centre of one slice (native px) from the locator's probability maps of its frames:
    the centroid of the largest region of the mean map above ``threshold`` (its peak when
    nothing is), mapped back from the field-of-view crop. None when the map is empty."""
    mean = np.asarray(prob_maps, float).mean(axis=0)
    point = mask_centre(mean >= threshold)
    if point is None:
        if mean.max() <= 0.05:
            return None
        point = np.unravel_index(int(np.argmax(mean)), mean.shape)
    return crop_to_native(point, centre_rc, spacing, size_mm, mean.shape[0])


def measure_study(frames: pd.DataFrame, slices: pd.DataFrame, locator, segmenter, field_mm: float,
                  crop_mm: float, root: str | os.PathLike | None = None, with_truth: bool = False,
                  batch_size: int = 64) -> pd.DataFrame:
    """Every usable frame of ONE study through the chain; one row per frame.

    Per slice: all frames → field-of-view crops → ``locator`` → the slice's LV centre
    (:func:`locate`; a slice where the locator finds nothing takes the median centre of the
    study's other slices) → a ``crop_mm`` square at that centre → ``segmenter`` → LV pixels ×
    pixel area = ``area_mm2``. With ``with_truth`` and masks in ``lv_masks/`` it also measures
    ``area_true_mm2`` (the mask itself, native pixels: geometry only) and
    ``area_gt_centre_mm2`` (the segmenter on a crop at the true centre: segmentation only).
    Columns: case, series_id, frame, centre_row/col, area_mm2 (+ the truth columns).
    """
    from .models import unet

    root = Path(root) if root is not None else None
    frames = frames.assign(**cycle_index(frames))
    sl = slices.set_index("series_id")
    per_slice, centres = [], {}
    for sid, series in frames.groupby("series_id", sort=False):
        series = series.sort_values("frame")
        stack = dsb2.load_series(series)
        spacing = (float(sl.loc[sid, "row_spacing_mm"]), float(sl.loc[sid, "col_spacing_mm"]))
        middle = field_centre(*stack.shape[1:])
        n_field = locator.input_shape[1]
        field = np.stack([crop_pair(f, None, middle, spacing, field_mm, n_field)[0] for f in stack])
        centres[sid] = locate(unet.predict_proba(locator, field, batch_size), middle, spacing, field_mm)
        per_slice.append((sid, series, stack, spacing))
    found = [c for c in centres.values() if c is not None]
    fallback = np.median(found, axis=0) if found else None
    n_crop = segmenter.input_shape[1]
    pixel_mm2 = (crop_mm / n_crop) ** 2
    rows = []
    for sid, series, stack, spacing in per_slice:
        centre = centres[sid] if centres[sid] is not None else fallback
        if centre is None:
            centre = field_centre(*stack.shape[1:])
        crops = np.stack([crop_pair(f, None, centre, spacing, crop_mm, n_crop)[0] for f in stack])
        area = unet.predict_masks(segmenter, crops, batch_size).reshape(len(stack), -1).sum(axis=1) * pixel_mm2
        table = pd.DataFrame({"case": series["case"].to_numpy(), "series_id": sid, "frame": series["frame"].to_numpy(int),
                              "centre_row": centre[0], "centre_col": centre[1], "located": centres[sid] is not None,
                              "area_mm2": area})
        if with_truth and root is not None:
            table = table.join(_truth_areas(series, stack, spacing, root, segmenter, crop_mm, batch_size))
        rows.append(table)
    return pd.concat(rows, ignore_index=True)


def _truth_areas(series, stack, spacing, root, segmenter, crop_mm, batch_size) -> pd.DataFrame:
    """The two reference measurements of :func:`measure_study` for one slice (NaN without masks)."""
    from .models import unet

    n = len(series)
    out = pd.DataFrame({"area_true_mm2": np.full(n, np.nan), "area_gt_centre_mm2": np.full(n, np.nan)})
    have = series["mask_path"].notna().to_numpy()
    if not have.any():
        return out
    masks = {i: dsb2.read_mask(root / m) for i, m in enumerate(series["mask_path"]) if isinstance(m, str)}
    out.loc[have, "area_true_mm2"] = [masks[i].sum() * spacing[0] * spacing[1] for i in sorted(masks)]
    points = [mask_centre(m) for m in masks.values()]
    points = [p for p in points if p is not None]
    if points:
        centre = np.median(points, axis=0)
        n_crop = segmenter.input_shape[1]
        crops = np.stack([crop_pair(f, None, centre, spacing, crop_mm, n_crop)[0] for f in stack])
        out["area_gt_centre_mm2"] = (unet.predict_masks(segmenter, crops, batch_size).reshape(n, -1).sum(axis=1)
                                     * (crop_mm / n_crop) ** 2)
    return out


def study_volumes(areas: pd.DataFrame, slices: pd.DataFrame, columns=("area_mm2",)) -> pd.DataFrame:
    """EDV, ESV and EF per case for each area column (``<prefix>edv_ml``, ``…esv_ml``, ``…ef``;
    the prefix is the column name without ``area`` and ``_mm2``)."""
    out = []
    for case, rows in areas.groupby("case", sort=False):
        row = {"case": case}
        for col in columns:
            prefix = col.replace("area", "").replace("_mm2", "").strip("_")
            prefix = f"{prefix}_" if prefix else ""
            stats = ed_es(volume_curve(rows, slices[slices["case"] == case], col))
            row.update({prefix + k: v for k, v in stats.items()})
        out.append(row)
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- scoring
def step_cdf(volume_ml) -> np.ndarray:
    """The Heaviside CDF of DSB2: ``H(n − V)`` = 1 for every step ``n ≥ V`` (n = 0..599 mL)."""
    v = np.atleast_1d(np.asarray(volume_ml, float))
    return (np.arange(N_STEPS)[None, :] >= v[:, None]).astype(float)


def normal_cdf(mu_ml, sigma_ml) -> np.ndarray:
    """``P(V ≤ n)`` for n = 0..599 mL under a normal distribution per row; ``(rows, 600)``."""
    from scipy.stats import norm

    mu = np.atleast_1d(np.asarray(mu_ml, float))
    sigma = np.broadcast_to(np.asarray(sigma_ml, float), mu.shape)
    return norm.cdf(np.arange(N_STEPS)[None, :], loc=mu[:, None], scale=sigma[:, None])


def crps(cdfs, volumes_ml) -> np.ndarray:
    """DSB2's continuous ranked probability score of each row: the mean over the 600 steps of
    ``(P(n) − H(n − V))²``. The competition's score is the mean over every systole and
    diastole row of every study (0 = a certain, right answer)."""
    cdfs = np.atleast_2d(np.asarray(cdfs, float))
    return ((cdfs - step_cdf(volumes_ml)) ** 2).mean(axis=1)


def fit_calibration(predicted, true, sigma_floor_ml: float = 3.0) -> dict:
    """Bias and spread of volume estimates, learned on validation studies (never test ones).

    ``scale`` corrects a systematic bias (least squares through the origin: true ≈ scale ×
    predicted); ``rel_sd`` is the root mean square of the remaining relative errors. A
    prediction ``V`` then becomes Normal(``scale × V``, max(``rel_sd × scale × V``,
    ``sigma_floor_ml``)).
    """
    p, t = np.asarray(predicted, float), np.asarray(true, float)
    ok = np.isfinite(p) & np.isfinite(t) & (p > 0)
    if ok.sum() < 2:
        return {"scale": 1.0, "rel_sd": 0.15, "sigma_floor_ml": sigma_floor_ml, "n_studies": int(ok.sum())}
    scale = float(np.sum(p[ok] * t[ok]) / np.sum(p[ok] ** 2))
    rel = (t[ok] - scale * p[ok]) / (scale * p[ok])
    return {"scale": scale, "rel_sd": float(np.sqrt(np.mean(rel**2))), "sigma_floor_ml": sigma_floor_ml,
            "n_studies": int(ok.sum())}


def predict_cdf(volume_ml, calibration: dict) -> np.ndarray:
    """The calibrated CDF of :func:`fit_calibration` for each volume estimate; a missing
    estimate (NaN) gets a flat-as-possible CDF (uniform over 0..599 mL)."""
    v = np.atleast_1d(np.asarray(volume_ml, float)) * calibration["scale"]
    sigma = np.maximum(calibration["rel_sd"] * v, calibration["sigma_floor_ml"])
    cdf = normal_cdf(np.nan_to_num(v), np.nan_to_num(sigma, nan=1.0))
    cdf[~np.isfinite(v)] = (np.arange(N_STEPS) + 1) / N_STEPS
    return cdf


def score(results: pd.DataFrame, truth: pd.DataFrame, cal_sys: dict, cal_dia: dict, prefix: str = "",
          seed: int = 0, digits: int = 4) -> dict:
    """CRPS, EDV/ESV/EF errors with study-level bootstrap intervals, for ``results``
    (:func:`study_volumes`) against ``truth`` (``train.csv``: Id, Systole, Diastole)."""
    t = truth.set_index("Id")
    r = results[results["case"].isin(t.index)].reset_index(drop=True)
    sys_true, dia_true = t.loc[r["case"], "Systole"].to_numpy(float), t.loc[r["case"], "Diastole"].to_numpy(float)
    per_study = 0.5 * (crps(predict_cdf(r[f"{prefix}esv_ml"], cal_sys), sys_true)
                       + crps(predict_cdf(r[f"{prefix}edv_ml"], cal_dia), dia_true))
    edv = r[f"{prefix}edv_ml"].to_numpy(float) * cal_dia["scale"]
    esv = r[f"{prefix}esv_ml"].to_numpy(float) * cal_sys["scale"]
    ef_true = (dia_true - sys_true) / dia_true
    ef_pred = (edv - esv) / edv
    groups = r["case"].to_numpy()
    out = {"n_studies": int(len(r))}
    for key, values in (("crps", per_study), ("edv_mae_ml", np.abs(edv - dia_true)),
                        ("esv_mae_ml", np.abs(esv - sys_true)), ("ef_mae", 100 * np.abs(ef_pred - ef_true))):
        value, ci = evaluation.with_ci(np.nanmean, groups, values, digits=digits, seed=seed)
        out[key], out[f"{key}_ci"] = value, ci
    out["per_study"] = pd.DataFrame({"case": groups, "crps": per_study, "edv_true": dia_true, "edv_pred": edv,
                                     "esv_true": sys_true, "esv_pred": esv, "ef_true": ef_true, "ef_pred": ef_pred})
    return out


def mean_baseline(train_truth: pd.DataFrame, test_truth: pd.DataFrame, seed: int = 0, digits: int = 4) -> tuple:
    """CRPS of the baseline that predicts, for every study, the training studies' volumes:
    Normal(training mean, training SD) for systole and for diastole. ``(value, ci)``."""
    cdf_sys = normal_cdf(np.full(len(test_truth), train_truth["Systole"].mean()), train_truth["Systole"].std())
    cdf_dia = normal_cdf(np.full(len(test_truth), train_truth["Diastole"].mean()), train_truth["Diastole"].std())
    per_study = 0.5 * (crps(cdf_sys, test_truth["Systole"]) + crps(cdf_dia, test_truth["Diastole"]))
    return evaluation.with_ci(np.mean, test_truth["Id"].to_numpy(), per_study, digits=digits, seed=seed)


def studies_with_volumes(root: str | os.PathLike, frames: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``train.csv`` rows of the cases that have usable frames, and the counts of what was left out."""
    root = layouts.check_layout("dsb2", root)
    truth = dsb2.load_train_csv(root)
    cases = set(frames["case"].astype(str))
    kept = truth[truth["Id"].isin(cases)].reset_index(drop=True)
    return kept, {"n_cases_without_volumes": len(cases - set(kept["Id"])),
                  "n_volumes_without_images": int((~truth["Id"].isin(cases)).sum())}


# ----------------------------------------------------------------------------- plots
def plot_bland_altman(per_study: pd.DataFrame, ax=None):
    """Bland–Altman plot of predicted vs true EDV and ESV: difference against mean, with the
    mean difference (bias) and its ±1.96 SD limits of agreement. Returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    diffs = []
    for name, color in (("edv", "tab:red"), ("esv", "tab:blue")):
        true, pred = per_study[f"{name}_true"], per_study[f"{name}_pred"]
        ax.scatter((true + pred) / 2, pred - true, s=18, color=color, label=name.upper())
        diffs.append(pred - true)
    d = pd.concat(diffs)
    bias, sd = float(d.mean()), float(d.std())
    for y, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
        ax.axhline(y, color="0.4", ls=style, lw=1)
    ax.set(xlabel="mean of predicted and true volume (mL)", ylabel="predicted − true (mL)",
           title=f"Bland–Altman: bias {bias:+.1f} mL, limits ±{1.96 * sd:.1f} mL")
    ax.legend(loc="best", fontsize=8)
    return ax.figure
