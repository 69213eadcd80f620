"""Left-ventricle keypoint regression on cardiac cine MRI (DSB2 layout): data, training, evaluation.

The pipeline of notebook 07, one helper per arrow::

    index_frames (helpers.dsb2) → mid_slices → build_inputs → split_cases → fit
        → predict → evaluate / summary → crop_physical, cycle_gif

Coordinates
-----------
``(row, col)`` in pixels, pixel ``(i, j)`` centred at ``(i, j)`` (as in :mod:`helpers.augment`).
A native coordinate ``r`` on an image of ``rows`` rows becomes the **target**
``t = 2 (r + 0.5) / rows - 1``, so ``-1`` and ``+1`` are the image's outer edges whatever its
size; :func:`to_native` inverts it. The same ``t`` on the network's ``S × S`` input is the
pixel ``(t + 1) S / 2 - 0.5`` (the convention of :func:`skimage.transform.resize`), so a
prediction maps back to native pixels, and with ``PixelSpacing`` to millimetres, through the
per-sample ``rows``/``cols`` and spacings kept by :func:`build_inputs`. Non-square images are
squeezed anisotropically to ``S × S``; the two scale factors are undone exactly.

Inputs
------
Two channels per frame: channel 0 is the frame at time ``t`` (per-series normalised:
``(x - p1) / (p99.5 - p1)`` of the whole series), channel 1 is ``frame[t] - frame[(t + k) % T]``
(``k = motion_offset``, wrapping through the cycle): the beating heart changes, the chest wall,
spine and aorta do not.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import augment as aug
from . import cache, dsb2, shards
from .io import error_reason

#: Augmentation of the training images: rotation and reflection (with a little zoom and shift);
#: the targets move with the image (helpers.augment). Never applied to validation or test data.
TRAIN_AUGMENT = aug.AugmentConfig(flip_lr=0.5, flip_ud=0.5, rotation_deg=20.0, zoom=(0.9, 1.1), translate=0.05)

#: Radius (mm) of the fallback "inside the LV" test when a frame has no lv_masks/ mask: a
#: prediction within this distance of the labelled centroid counts as inside. 10 mm is well
#: inside an adult mid-ventricular blood pool even at end systole (diameter ≈ 25–35 mm).
FALLBACK_RADIUS_MM = 10.0


# --------------------------------------------------------------------------- coordinates
def to_target(rc, shape) -> np.ndarray:
    """Native ``(row, col)`` pixels (``(..., 2)``) → targets in ``[-1, 1]``; ``shape`` is ``(rows, cols)`` (broadcasts)."""
    rc = np.asarray(rc, float)
    size = np.asarray(shape, float)
    return 2.0 * (rc + 0.5) / size - 1.0


def to_native(target, shape) -> np.ndarray:
    """Targets in ``[-1, 1]`` → native ``(row, col)`` pixels of an image of ``shape`` (broadcasts)."""
    size = np.asarray(shape, float)
    return (np.asarray(target, float) + 1.0) * size / 2.0 - 0.5


def to_input_px(target, image_size: int) -> np.ndarray:
    """Targets → pixel coordinates on the ``image_size × image_size`` network input (:func:`to_native`)."""
    return to_native(target, image_size)


def from_input_px(rc, image_size: int) -> np.ndarray:
    """Pixel coordinates on the network input → targets (:func:`to_target`)."""
    return to_target(rc, image_size)


# --------------------------------------------------------------------------- data
def mid_slices(frames: pd.DataFrame, fraction: float = 0.5) -> pd.DataFrame:
    """Usable frames of the mid-ventricular slices: the central ``fraction`` of each case's stack.

    A slice at rank ``slice_index`` of ``n_slices`` sits at ``p = slice_index / (n_slices - 1)``
    (0 and 1 are the ends of the stack, base or apex); it is kept when
    ``|p - 0.5| <= fraction / 2``. A case whose stack is too short keeps its middle slice.
    Returns a new table (rows of :func:`helpers.dsb2.index_frames`).
    """
    usable = dsb2.usable_frames(frames)
    n = usable["n_slices"].astype(float)
    p = np.where(n > 1, usable["slice_index"].astype(float) / (n - 1).clip(lower=1), 0.5)
    dist = np.round(np.abs(p - 0.5), 9)
    usable = usable.assign(_dist=dist)
    closest = usable.groupby("case")["_dist"].transform("min")
    keep = (usable["_dist"] <= fraction / 2 + 1e-9) | (usable["_dist"] == closest)
    return usable[keep].drop(columns="_dist").reset_index(drop=True)


def normalise_series(stack: np.ndarray) -> np.ndarray:
    """Per-series intensity scaling ``(x - p1) / (p99.5 - p1)`` (float32; MR signal has no units)."""
    lo, hi = np.percentile(stack, [1.0, 99.5])
    return ((stack - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def series_channels(stack: np.ndarray, image_size: int, motion_offset: int = 8) -> np.ndarray:
    """``(T, H, W)`` native series → ``(T, S, S, 2)`` float32: normalised frame and motion channel."""
    from skimage.transform import resize

    norm = normalise_series(np.asarray(stack, np.float32))
    small = resize(norm, (norm.shape[0], image_size, image_size), order=1, anti_aliasing=True,
                   preserve_range=True).astype(np.float32)
    later = np.roll(small, -int(motion_offset), axis=0)        # frame (t + k) % T
    return np.stack([small, small - later], axis=-1)


def build_inputs(frames: pd.DataFrame, root: str | os.PathLike, image_size: int = 96,
                 motion_offset: int = 8, n_jobs: int = -1) -> dict:
    """Model-ready inputs for every frame of the series in ``frames`` (written to disk, cached beside the data).

    ``frames`` are usable rows (e.g. from :func:`mid_slices`). Returns a dict, one entry per
    frame, in table order:

    ``x`` ``(N, S, S, 2)`` float16 (channels: frame, motion) **on disk**
    (:class:`helpers.shards.ShardedArray`: indexing reads; :func:`fit` and :func:`predict`
    stream it); in memory ``y`` ``(N, 2)`` targets in ``[-1, 1]`` (NaN when unlabelled),
    ``labelled`` bool, ``case``, ``series_id``, ``path`` (relative), ``mask_path`` (``""``
    when none), ``frame``, ``n_frames``, ``rows``, ``cols``, ``spacing`` ``(N, 2)`` mm (row,
    col), ``lv`` ``(N, 2)`` native labelled centroid.

    Built by ``n_jobs`` workers of joblib's active backend, a few series per shard, each
    worker writing its shard (:mod:`helpers.shards`): memory does not grow with the number
    of series, and an interrupted build resumes. Series whose pixels cannot be read are
    skipped and listed in ``skipped`` (``path: reason``).
    """
    from functools import partial

    from . import shards

    root = Path(root)
    frames = frames.sort_values(["case", "series_id", "frame"]).reset_index(drop=True)
    key = cache.fingerprint(frames["abs_path"].tolist(), stage="keypoint-inputs", version=2,
                            image_size=int(image_size), motion_offset=int(motion_offset),
                            labels=int(pd.util.hash_pandas_object(frames[["path", "lv_row", "lv_col", "mask_path"]],
                                                                    index=False).sum()))
    folder = cache.cache_dir(root, "dsb2")
    store = folder / f"keypoint-inputs-{key}"
    if not shards.is_complete(store, key):
        series = [group for _, group in frames.groupby(["case", "series_id"], sort=False)]
        size = int(image_size)
        shards.build(store, series, partial(_inputs_shard, image_size=size, motion_offset=int(motion_offset)),
                     {"x": ((size, size, 2), np.float16)}, shard_size=int(max(1, min(32, -(-len(series) // 16)))),
                     n_jobs=n_jobs, key=key, params={"stage": "keypoint-inputs"}, desc="keypoint inputs")
        shards.supersede(folder, "keypoint-inputs-", key)
    table = shards.read_table(store)
    ok = table["skipped"].isna().to_numpy()
    table = table[ok].reset_index(drop=True).astype({"frame": int, "n_frames": int, "rows": int, "cols": int})
    shape = table[["rows", "cols"]].to_numpy(float)
    lv = table[["lv_row", "lv_col"]].to_numpy(float)
    return {
        "x": shards.ShardedArray(store, "x").take(np.flatnonzero(ok)),
        "y": to_target(lv, shape).astype(np.float32), "labelled": np.isfinite(lv).all(axis=1),
        "case": _strings(table["case"]), "series_id": _strings(table["series_id"]), "path": _strings(table["path"]),
        "mask_path": _strings(table["mask_path"].fillna("")),
        "frame": table["frame"].to_numpy(), "n_frames": table["n_frames"].to_numpy(),
        "rows": table["rows"].to_numpy(), "cols": table["cols"].to_numpy(),
        "spacing": table[["row_spacing_mm", "col_spacing_mm"]].to_numpy(float), "lv": lv,
        "skipped": shards.read_table(store).loc[~ok, "skipped"].to_numpy(dtype=str),
    }


_INPUT_COLUMNS = ["case", "series_id", "path", "mask_path", "frame", "n_frames", "rows", "cols",
                  "row_spacing_mm", "col_spacing_mm", "lv_row", "lv_col"]


def _inputs_shard(series_list: list[pd.DataFrame], image_size: int, motion_offset: int):
    """The work of one shard of :func:`build_inputs`: a few series read and turned into channels.

    A series that cannot be read gets one row with its reason in ``skipped`` (and a zero
    input), so the reason survives in the table; :func:`build_inputs` drops those rows.
    """
    xs, rows = [], []
    for series in series_list:
        try:
            stack = dsb2.load_series(series)
        except ValueError as err:           # an unreadable frame or frames of different sizes: skip, say why
            xs.append(np.zeros((1, image_size, image_size, 2), np.float16))
            first = series.iloc[[0]][_INPUT_COLUMNS].assign(skipped=f"{series['path'].iloc[0]}: {error_reason(err)}")
            rows.append(first)
            continue
        xs.append(series_channels(stack, image_size, motion_offset).astype(np.float16))
        rows.append(series[_INPUT_COLUMNS].assign(skipped=None))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=[*_INPUT_COLUMNS, "skipped"])
    table["skipped"] = table["skipped"].astype(object)
    table["mask_path"] = table["mask_path"].astype(object)
    x = np.concatenate(xs) if xs else np.zeros((0, image_size, image_size, 2), np.float16)
    return x, table


def _strings(column: pd.Series) -> np.ndarray:
    """A fixed-width unicode array (never ``object``: the ``.npz`` cache is read without pickle)."""
    return np.array([str(v) for v in column], dtype=str)


def split_cases(cases, test_fraction: float = 0.25, val_fraction: float = 0.15, seed: int = 0) -> dict:
    """Split case IDs (never frames) into ``{"train", "val", "test"}`` sorted lists; each gets ≥ 1 case."""
    unique = np.array(sorted(set(map(str, cases))))
    if len(unique) < 3:
        raise ValueError(f"need at least 3 cases to split by case, got {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = max(1, int(round(test_fraction * len(unique))))
    n_val = max(1, int(round(val_fraction * len(unique))))
    n_test = min(n_test, len(unique) - n_val - 1)
    return {"test": sorted(unique[order[:n_test]]), "val": sorted(unique[order[n_test:n_test + n_val]]),
            "train": sorted(unique[order[n_test + n_val:]])}


def select(data: dict, cases, labelled_only: bool = True, frame_step: int = 1) -> np.ndarray:
    """Indices of the samples of ``cases`` (labelled ones by default; every ``frame_step``-th frame)."""
    mask = np.isin(data["case"], list(cases)) & (data["frame"] % max(int(frame_step), 1) == 0)
    if labelled_only:
        mask &= data["labelled"]
    return np.flatnonzero(mask)


# --------------------------------------------------------------------------- training
def train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int = 32, seed: int = 0,
                  config: aug.AugmentConfig | None = TRAIN_AUGMENT):
    """A shuffled, augmented ``tf.data`` pipeline of ``(image, target)`` batches (training data only).

    Targets are converted to input pixels, moved with the image by
    :func:`helpers.augment.augment_dataset` (one affine matrix per sample), and converted back.
    ``config=None`` turns augmentation off.
    """
    import tensorflow as tf

    size = x.shape[1]
    targets = to_input_px(y, size).astype(np.float32)
    from . import training

    if shards.is_on_disk(x):            # read from disk: shuffled row numbers, same order as in memory
        ds = training.stream_rows(x, targets, shuffle=True, seed=seed, read_size=batch_size)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, targets))
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if config is not None:
        ds = aug.augment_dataset(ds, config, seed=seed, target="keypoints")
    ds = ds.map(lambda im, kp: (tf.cast(im, tf.float32), (kp + 0.5) * (2.0 / size) - 1.0))
    return ds.batch(batch_size).prefetch(2)


def fit(model, data: dict, train_idx, val_idx, channels=(0, 1), epochs: int = 30, batch_size: int = 32,
        patience: int = 6, min_epochs: int = 5, reduce_lr_patience: int | None = 3, seed: int = 0,
        config: aug.AugmentConfig | None = TRAIN_AUGMENT):
    """Train ``model`` on ``data["x"][train_idx][..., channels]`` with augmentation; validate unaugmented.

    Early stopping on the validation loss (watched from epoch ``min_epochs`` on, so the first
    plateau does not end training) restores the best weights. The learning rate is halved
    when the validation loss has not improved for ``reduce_lr_patience`` epochs (``None``:
    constant). Returns the Keras History.
    """
    import keras

    from . import training

    channels = list(channels)
    x_train, x_val = (_channels(data["x"], idx, channels) for idx in (train_idx, val_idx))
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True,
                                         start_from_epoch=min_epochs)
    callbacks = [stop]
    if reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=reduce_lr_patience,
                                                           min_lr=1e-5))
    import tensorflow as tf

    y_val = data["y"][val_idx].astype(np.float32)
    val = (training.stream_rows(x_val, y_val, read_size=256) if shards.is_on_disk(x_val) else
           tf.data.Dataset.from_tensor_slices((x_val, y_val))).batch(256)
    return model.fit(train_dataset(x_train, data["y"][train_idx], batch_size, seed, config), validation_data=val,
                     epochs=epochs, callbacks=callbacks, shuffle=False, verbose=0)


def _channels(x, idx, channels: list):
    """Rows ``idx`` of ``x`` with the ``channels`` kept, as float32: a lazy view of an on-disk array."""
    if shards.is_on_disk(x):
        return x.take(np.asarray(idx, dtype=np.int64)).map(lambda b: b[..., channels].astype(np.float32))
    return np.asarray(np.asarray(x)[idx][..., channels], np.float32)


def predict(model, data: dict, idx, channels=(0, 1), batch_size: int = 64) -> np.ndarray:
    """Predicted targets ``(n, 2)`` in ``[-1, 1]`` for the samples ``idx`` (no augmentation; read batch by batch)."""
    x = _channels(data["x"], idx, list(channels))
    batches = [np.asarray(model.predict_on_batch(np.asarray(x[i:i + batch_size], np.float32)))
               for i in range(0, len(x), batch_size)]
    return np.concatenate(batches).astype(float) if batches else np.zeros((0, 2))


# --------------------------------------------------------------------------- evaluation
def inside_lv(root: str | os.PathLike, mask_path: str, point_rc, truth_rc, spacing,
              fallback_radius_mm: float = FALLBACK_RADIUS_MM) -> tuple[bool, str]:
    """Is a native ``(row, col)`` prediction inside the LV blood pool? Returns ``(inside, rule)``.

    With a mask (``lv_masks/…png``) the rule is ``"mask"``: the pixel nearest the prediction is
    foreground (a prediction off the image is outside). Without one the rule is ``"radius"``:
    within ``fallback_radius_mm`` of the labelled centroid (see :data:`FALLBACK_RADIUS_MM`).
    """
    point = np.asarray(point_rc, float)
    if mask_path:
        try:
            mask = dsb2.read_mask(Path(root) / mask_path)
            r, c = np.round(point).astype(int)
            ok = 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and bool(mask[r, c])
            return ok, "mask"
        except (OSError, ValueError):
            pass                            # an unreadable mask falls back to the radius rule
    dist_mm = np.hypot(*((point - np.asarray(truth_rc, float)) * np.asarray(spacing, float)))
    return bool(dist_mm <= fallback_radius_mm), "radius"


def evaluate(data: dict, idx, pred_targets, root: str | os.PathLike) -> pd.DataFrame:
    """Per-frame errors of predictions, in native pixels and mm, and the inside-LV test.

    Columns: case, series_id, frame, path, true_row/true_col, pred_row/pred_col (native px),
    error_px, error_mm, inside_lv (bool), inside_rule ("mask" or "radius").
    """
    idx = np.asarray(idx)
    shape = np.stack([data["rows"][idx], data["cols"][idx]], axis=1)
    pred = to_native(pred_targets, shape)
    truth = data["lv"][idx]
    spacing = data["spacing"][idx]
    diff = pred - truth
    table = pd.DataFrame({
        "case": data["case"][idx], "series_id": data["series_id"][idx], "frame": data["frame"][idx],
        "path": data["path"][idx], "true_row": truth[:, 0], "true_col": truth[:, 1],
        "pred_row": pred[:, 0], "pred_col": pred[:, 1], "error_px": np.hypot(diff[:, 0], diff[:, 1]),
        "error_mm": np.hypot(diff[:, 0] * spacing[:, 0], diff[:, 1] * spacing[:, 1])})
    tests = [inside_lv(root, m, p, t, s) for m, p, t, s in zip(data["mask_path"][idx], pred, truth, spacing)]
    table["inside_lv"] = [t[0] for t in tests]
    table["inside_rule"] = [t[1] for t in tests]
    return table


def summary(table: pd.DataFrame) -> dict:
    """Headline numbers of :func:`evaluate`'s table (medians and 95th percentiles, inside-LV rate)."""
    return {"median_error_px": float(table["error_px"].median()),
            "p95_error_px": float(table["error_px"].quantile(0.95)),
            "median_error_mm": float(table["error_mm"].median()),
            "p95_error_mm": float(table["error_mm"].quantile(0.95)),
            "inside_lv_rate": float(table["inside_lv"].mean()), "n_test_frames": int(len(table))}


#: The headline numbers of :func:`summary` that get a 95 % interval (resampling cases).
HEADLINE = ("median_error_px", "p95_error_px", "median_error_mm", "p95_error_mm", "inside_lv_rate")
_STATISTIC = {"median_error_px": ("error_px", np.median), "p95_error_px": ("error_px", lambda v: np.quantile(v, 0.95)),
              "median_error_mm": ("error_mm", np.median), "p95_error_mm": ("error_mm", lambda v: np.quantile(v, 0.95)),
              "inside_lv_rate": ("inside_lv", np.mean)}


def summary_with_ci(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0, digits: int = 4) -> dict:
    """:func:`summary` plus ``<key>_ci`` (``[low, high]``) for each :data:`HEADLINE` key.

    The intervals resample whole **cases** (``table["case"]``): frames of one patient are
    near copies, so resampling frames would give intervals that are far too narrow
    (:func:`helpers.evaluation.bootstrap_ci`). Also ``n_cases``.
    """
    from .evaluation import with_ci

    out = summary(table)
    for key in HEADLINE:
        column, stat = _STATISTIC[key]
        out[key], out[f"{key}_ci"] = with_ci(stat, table["case"].to_numpy(), table[column].to_numpy(float),
                                             digits=digits, n_boot=n_boot, seed=seed)
    out["n_cases"] = int(table["case"].nunique())
    return out


def paired_gain(table: pd.DataFrame, baseline: pd.DataFrame, column: str = "error_mm", n_boot: int = 1000,
                seed: int = 0, digits: int = 4) -> tuple[float, list | None]:
    """How much lower the median ``column`` of ``table`` is than that of ``baseline``, with a paired interval.

    Both tables score the **same frames** in the same order (two models on one test set), so
    each bootstrap replicate draws cases once and takes the difference of the two medians on
    those cases: a paired bootstrap, much tighter than comparing two separate intervals,
    because a hard case is hard for both models. Returns ``(gain, [low, high])`` with
    ``gain = median(baseline) - median(table)``: positive means ``table``'s model errs less.
    """
    from .evaluation import with_ci

    if len(table) != len(baseline) or not np.array_equal(table["path"].to_numpy(), baseline["path"].to_numpy()):
        raise ValueError("paired_gain needs two evaluations of the same frames in the same order")
    return with_ci(lambda a, b: np.median(b) - np.median(a), table["case"].to_numpy(),
                   table[column].to_numpy(float), baseline[column].to_numpy(float), digits=digits,
                   n_boot=n_boot, seed=seed)


def describe_gain(gain, ci, what: str = "the motion channel", unit: str = "mm", digits: int = 2) -> str:
    """One sentence for :func:`paired_gain`'s result that stays true whichever way it falls."""
    if gain is None:
        return f"no estimate of what {what} changes (no test frames)"
    if ci is None:
        return f"{what} changes the median error by {-gain:+.{digits}f} {unit} (too few cases for an interval)"
    span = f"95 % CI of the paired difference {ci[0]:.{digits}f} to {ci[1]:.{digits}f} {unit}"
    if ci[0] > 0:
        return f"{what} lowers the median error by {gain:.{digits}f} {unit} ({span})"
    if ci[1] < 0:
        return f"{what} raises the median error by {-gain:.{digits}f} {unit} ({span})"
    return f"no clear difference: {what} changes the median error by {-gain:+.{digits}f} {unit} ({span}, contains 0)"


def describe_transfer(key: str, internal: dict, external: dict, digits: int = 2) -> str:
    """``key`` of two :func:`summary_with_ci` results (internal test, external data) in one
    sentence whose verdict follows from whether the intervals overlap."""
    from .evaluation import format_ci, intervals_overlap

    a, b = internal[key], external[key]
    text = f"{key}: internal {format_ci(a, internal[f'{key}_ci'], digits)}, external {format_ci(b, external[f'{key}_ci'], digits)}"
    overlap = intervals_overlap(internal[f"{key}_ci"], external[f"{key}_ci"])
    if overlap is None:
        return text + " (an interval is missing: no verdict)"
    if overlap:
        return text + " (intervals overlap: no clear change on the external data)"
    return text + f" (intervals do not overlap: clearly {'lower' if b < a else 'higher'} on the external data)"


def evaluate_external(model, root: str | os.PathLike, image_size: int, motion_offset: int = 8,
                      mid_fraction: float = 0.5, channels=(0, 1), n_boot: int = 1000, seed: int = 0) -> dict:
    """Score a trained model, unchanged, on every labelled frame of another DSB2-layout folder.

    The same preprocessing as for training (:func:`helpers.dsb2.index_frames`,
    :func:`mid_slices`, :func:`build_inputs` with the same ``image_size`` and
    ``motion_offset``); every labelled case is a test case. Returns ``table``
    (:func:`evaluate`), ``summary`` (:func:`summary_with_ci`, intervals by case),
    ``n_cases`` and ``skipped`` (series that could not be read).
    """
    frames = dsb2.index_frames(root)
    data = build_inputs(mid_slices(frames, mid_fraction), root, image_size, motion_offset)
    idx = np.flatnonzero(data["labelled"])
    if len(idx) == 0:
        raise ValueError(f"{root}: no labelled frame (lv_centroids.csv) to validate against")
    table = evaluate(data, idx, predict(model, data, idx, channels), root)
    return {"table": table, "summary": summary_with_ci(table, n_boot=n_boot, seed=seed),
            "n_cases": int(table["case"].nunique()), "skipped": list(data["skipped"])}


# --------------------------------------------------------------------------- crops and figures
def crop_physical(image: np.ndarray, centre_rc, spacing, size_mm: float = 100.0, out_px: int = 64,
                  order: int = 1) -> np.ndarray:
    """A square of ``size_mm × size_mm`` centred on ``centre_rc`` (native px), resampled to ``out_px²``.

    ``spacing`` is ``(row, col)`` mm per pixel (PixelSpacing), so the crop covers the same
    anatomy whatever the scanner's grid; outside the image is filled with 0. Returns float32
    ``(out_px, out_px)``, each output pixel ``size_mm / out_px`` mm wide.
    """
    from scipy import ndimage

    offsets = ((np.arange(out_px) + 0.5) / out_px - 0.5) * size_mm               # mm from the centre
    rows = centre_rc[0] + offsets / float(spacing[0])
    cols = centre_rc[1] + offsets / float(spacing[1])
    grid = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(np.asarray(image, np.float32), grid, order=order, mode="constant",
                                   cval=0.0).astype(np.float32)


def plot_channels(x: np.ndarray, point_rc=None, titles=("frame t", "frame t − frame t+k (motion)"), axes=None,
                  ax=None):
    """Show the two input channels of one sample ``(S, S, 2)`` side by side; returns the figure.

    ``ax`` (or its older name ``axes``): the axes to draw on, one per channel."""
    import matplotlib.pyplot as plt

    axes = ax if ax is not None else axes
    if axes is None:
        fig, axes = plt.subplots(1, x.shape[-1], figsize=(3.2 * x.shape[-1], 3.2))
    axes = np.ravel(axes)
    for k, ax in enumerate(axes):
        channel = np.asarray(x[..., k], float)
        lim = np.abs(channel).max() or 1.0
        ax.imshow(channel, cmap="gray" if k == 0 else "RdBu_r", vmin=None if k == 0 else -lim,
                  vmax=None if k == 0 else lim)
        if point_rc is not None:
            ax.plot(point_rc[1], point_rc[0], "+", color="yellow", ms=12, mew=2)
        ax.set_title(titles[k] if k < len(titles) else f"channel {k}", fontsize=9)
        ax.axis("off")
    axes[0].figure.tight_layout()
    return axes[0].figure


def plot_keypoints(images, truth_rc=None, pred_rc=None, titles=None, ncols: int = 4, size: float = 2.6, ax=None):
    """Images in a grid with labelled (green ○) and predicted (red +) ``(row, col)`` points; returns the figure.

    ``images`` is a sequence of 2-D arrays (each may have its own size); ``truth_rc`` and
    ``pred_rc`` are ``(n, 2)`` in each image's own pixel grid (either may be ``None``).
    """
    from .plotting import panels

    images = list(images)
    ncols = min(ncols, max(len(images), 1))
    nrows = int(np.ceil(len(images) / ncols)) or 1
    fig, grid = panels(nrows, ncols, (size * ncols, size * nrows), ax)
    for k, ax in enumerate(grid.ravel()):  # noqa: B020 - the loop's own axes
        ax.axis("off")
        if k >= len(images):
            continue
        ax.imshow(np.asarray(images[k], float), cmap="gray")
        if truth_rc is not None and np.all(np.isfinite(truth_rc[k])):
            ax.plot(truth_rc[k][1], truth_rc[k][0], "o", mfc="none", mec="lime", ms=9, mew=1.5)
        if pred_rc is not None:
            ax.plot(pred_rc[k][1], pred_rc[k][0], "+", color="red", ms=11, mew=2)
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    return fig


def _to_uint8(stack: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(stack, [1.0, 99.5])
    return (np.clip((stack - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def cycle_gif(stack: np.ndarray, points_rc, path: str | os.PathLike, truth_rc=None, fps: float = 10.0,
              max_px: int = 128) -> Path:
    """Write an animated GIF of one series ``(T, H, W)`` with the predicted centroid (red cross).

    ``points_rc`` (and optional ``truth_rc``, green, NaN rows skipped) are ``(T, 2)`` native
    ``(row, col)``. Frames are scaled so the longer side is at most ``max_px`` pixels (a small
    file that embeds well in a notebook). Loops forever; returns the path.
    """
    from PIL import Image, ImageDraw
    from skimage.transform import resize

    stack = np.asarray(stack, np.float32)
    scale = min(1.0, max_px / max(stack.shape[1:]))
    out_shape = (max(1, round(stack.shape[1] * scale)), max(1, round(stack.shape[2] * scale)))
    small = _to_uint8(resize(stack, (stack.shape[0], *out_shape), order=1, anti_aliasing=True, preserve_range=True))
    factor = np.array(out_shape, float) / np.array(stack.shape[1:], float)
    images = []
    for t, frame in enumerate(small):
        im = Image.fromarray(frame).convert("RGB")
        draw = ImageDraw.Draw(im)
        for pts, colour, shape in ((truth_rc, (0, 220, 0), "circle"), (points_rc, (255, 40, 40), "cross")):
            if pts is None or not np.all(np.isfinite(pts[t])):
                continue
            r, c = (np.asarray(pts[t], float) + 0.5) * factor - 0.5
            if shape == "cross":
                draw.line([(c - 5, r), (c + 5, r)], fill=colour, width=2)
                draw.line([(c, r - 5), (c, r + 5)], fill=colour, width=2)
            else:
                draw.ellipse([(c - 4, r - 4), (c + 4, r + 4)], outline=colour, width=1)
        images.append(im.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
    return path
