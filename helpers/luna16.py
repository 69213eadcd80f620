"""Read lung CT in the LUNA16 layout (``../shared/DATASETS.md`` §3) and build 2-D training slices.

The layout::

    subset<k>/<seriesuid>.mhd + <seriesuid>.raw     MetaImage volumes (Hounsfield units)
    annotations.csv                                 seriesuid,coordX,coordY,coordZ,diameter_mm

The data flow, one helper per arrow:

``index_series`` (one row per ``.mhd``, header only, cached) → ``join_annotations`` (one
row per nodule, world mm → voxel (z, y, x)) → ``nodule_mask`` / ``lung_mask`` on a volume
read with :func:`helpers.metaimage.read_mhd` → ``build_slices`` (2-D slices through nodules
plus nodule-free lung slices, scaled to [0, 1], resized; cached) for training, and
``iter_scans`` (every lung slice of each scan, the same preprocessing, one series at a
time) for whole-scan evaluation.

Axis orders follow :mod:`helpers.metaimage`: arrays and voxel coordinates (z, y, x), spacing
(z, y, x) mm, world coordinates and origin (x, y, z) mm.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache, ct, layouts, metaimage
from .io import error_reason

HU_WINDOW = (-1000.0, 400.0)
ANNOTATION_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]


def series_files(root: str | os.PathLike) -> list[Path]:
    """Every ``subset*/*.mhd`` under ``root``, sorted."""
    root = Path(root)
    return sorted(p for p in root.glob("subset*/*") if p.suffix.lower() == ".mhd" and p.is_file())


def _source_files(root: Path) -> list[Path]:
    files = series_files(root)
    raws = [p.with_suffix(".raw") for p in files]
    return files + [p for p in raws if p.exists()] + [p for p in [root / "annotations.csv"] if p.exists()]


def _index_row(path: Path, root: Path) -> dict:
    row = {"seriesuid": path.stem, "subset": path.parent.name, "path": path.relative_to(root).as_posix(),
           "abs_path": str(path), "shape": None, "spacing": None, "origin": None, "direction": None,
           "error": None}
    try:
        info = metaimage.read_info(path)
        row.update(shape=list(info["shape"]), spacing=list(info["spacing"]), origin=list(info["origin"]),
                   direction=[float(v) for v in info["direction"].ravel()])
    except Exception as err:  # noqa: BLE001 - a bad file is recorded, never raised
        row["error"] = error_reason(err)
    return row


def index_series(root: str | os.PathLike, use_cache: bool = True) -> pd.DataFrame:
    """One row per ``.mhd`` file: ``seriesuid, subset, path, abs_path, shape (z, y, x),
    spacing (z, y, x) mm, origin (x, y, z) mm, direction (9 values, row-major), error``.

    Only headers are read (plus a size check of each ``.raw``), so indexing the 888 real
    LUNA16 scans takes seconds. ``error`` is None for a readable series, else the reason.
    The table is cached beside the data (:mod:`helpers.cache`). A missing or empty folder
    raises :class:`helpers.layouts.DatasetLayoutError`.
    """
    root = layouts.check_layout("luna16", root)
    files = series_files(root)
    if not files:
        raise layouts.layout_error("luna16", root, "no subset*/<seriesuid>.mhd files")

    def build():
        return pd.DataFrame([_index_row(p, root) for p in files])

    if not use_cache:
        return build()
    key = cache.fingerprint(_source_files(root), stage="luna16-index", version=1)
    return cache.cached_table(cache.cache_dir(root, "luna16") / f"luna16-index-{key}.parquet", build)


def load_annotations(root: str | os.PathLike) -> pd.DataFrame:
    """``annotations.csv`` as a table (world mm); exact duplicate rows dropped."""
    root = layouts.check_layout("luna16", root)
    table = pd.read_csv(root / "annotations.csv", dtype={"seriesuid": str})
    missing = set(ANNOTATION_COLUMNS) - set(table.columns)
    if missing:
        raise layouts.layout_error("luna16", root, f"annotations.csv lacks columns {sorted(missing)}")
    return table[ANNOTATION_COLUMNS].drop_duplicates().reset_index(drop=True)


def join_annotations(series: pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    """One row per annotated nodule with its voxel position in its series.

    Adds ``voxel_z, voxel_y, voxel_x`` (continuous voxel coordinates, array order),
    ``nodule_id`` (1-based, stable: the row order of ``annotations``), ``subset`` and
    ``status``: ``ok``, ``series unreadable``, ``series not found`` or ``outside volume``.
    A series may have zero, one or several nodules.
    """
    ann = annotations.reset_index(drop=True).copy()
    ann["nodule_id"] = np.arange(1, len(ann) + 1)
    by_uid = series.drop_duplicates("seriesuid").set_index("seriesuid")
    voxels, status, subset = [], [], []
    for row in ann.itertuples(index=False):
        if row.seriesuid not in by_uid.index:
            voxels.append([np.nan] * 3), status.append("series not found"), subset.append(None)
            continue
        s = by_uid.loc[row.seriesuid]
        subset.append(s["subset"])
        if pd.notna(s["error"]):
            voxels.append([np.nan] * 3), status.append("series unreadable")
            continue
        zyx = metaimage.world_to_voxel([row.coordX, row.coordY, row.coordZ], s["origin"], s["spacing"],
                                       np.asarray(s["direction"], float).reshape(3, 3))
        voxels.append(list(zyx))
        inside = all(-0.5 <= v <= n - 0.5 for v, n in zip(zyx, s["shape"]))
        status.append("ok" if inside else "outside volume")
    ann[["voxel_z", "voxel_y", "voxel_x"]] = np.asarray(voxels, float).reshape(-1, 3)
    ann["subset"], ann["status"] = subset, status
    return ann


def summary(series: pd.DataFrame, nodules: pd.DataFrame) -> dict:
    """Counts a notebook reports: series read / unreadable (with reasons), nodules by status."""
    ok = series["error"].isna()
    usable = nodules[nodules["status"] == "ok"]
    return {"n_series": int(len(series)), "n_unreadable": int((~ok).sum()),
            "unreadable": series.loc[~ok, "error"].str.split(":").str[-1].str.strip().tolist(),
            "n_annotations": int(len(nodules)), "n_nodules": int(len(usable)),
            "nodule_status": nodules["status"].value_counts().to_dict(),
            "n_series_without_nodules": int(ok.sum() - usable["seriesuid"].nunique())}


def nodule_mask(shape, spacing, origin, direction, nodules, labels: bool = False) -> np.ndarray:
    """Spheres of radius ``diameter_mm / 2`` around each nodule centre, in PHYSICAL units.

    ``shape`` and ``spacing`` are (z, y, x) (spacing in mm), ``origin`` (x, y, z) mm,
    ``direction`` 3×3 or None; ``nodules`` is a table (or list of dicts) with ``coordX,
    coordY, coordZ`` (world mm) and ``diameter_mm``. A voxel is inside when the physical
    distance between its centre and the nodule centre is at most the radius, so with
    anisotropic spacing the sphere spans more voxels in-plane than across slices.

    Common bug: LUNA16 gives the *diameter*; using it as the radius makes every mask
    twice as wide and eight times the volume, swallowing vessels and lung wall.

    Returns a bool mask (z, y, x), or with ``labels=True`` an int32 mask where voxel value
    k is the k-th nodule (1-based, in the order given; ``nodule_id`` when present).
    """
    shape = tuple(int(v) for v in shape)
    spacing = np.asarray(spacing, float)
    out = np.zeros(shape, np.int32 if labels else bool)
    rows = nodules.to_dict("records") if isinstance(nodules, pd.DataFrame) else list(nodules)
    for k, n in enumerate(rows, start=1):
        centre = metaimage.world_to_voxel([n["coordX"], n["coordY"], n["coordZ"]], origin, spacing, direction)
        radius = float(n["diameter_mm"]) / 2.0
        lo = np.maximum(np.floor(centre - radius / spacing).astype(int), 0)
        hi = np.minimum(np.ceil(centre + radius / spacing).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        grids = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        # a direction matrix is orthonormal, so index offsets × spacing give physical distances
        dist2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing))
        inside = dist2 <= radius**2
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        if labels:
            out[box][inside] = int(n.get("nodule_id", k))
        else:
            out[box] |= inside
    return out


def lung_mask(volume: np.ndarray, threshold: float = -400.0, max_components: int = 2,
              min_fraction: float = 0.1) -> np.ndarray:
    """Boolean lung region of a CT volume (z, y, x) in HU.

    1. Voxels below ``threshold`` HU are air or lung.
    2. Air connected to the in-plane border of the volume is outside the body: removed.
    3. The largest 3-D components are kept (at most ``max_components``: two lungs, or one
       when they touch), each at least ``min_fraction`` of the largest (drops bowel gas).
    4. Holes are filled slice by slice (vessels and nodules inside the lung belong to the
       region of interest) and the mask is closed with a small structuring element.
    """
    from scipy import ndimage

    air = np.asarray(volume) < threshold
    lab, n = ndimage.label(air)
    if n == 0:
        return np.zeros(air.shape, bool)
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    sizes[border] = 0
    order = np.argsort(sizes)[::-1][:max_components]
    keep = [k for k in order if sizes[k] > 0 and sizes[k] >= min_fraction * sizes[order[0]]]
    mask = np.isin(lab, keep)
    for z in range(mask.shape[0]):
        if mask[z].any():
            mask[z] = ndimage.binary_fill_holes(mask[z])
    return ndimage.binary_closing(mask, structure=np.ones((1, 3, 3), bool), iterations=2) | mask


def hu_to_unit(hu: np.ndarray, window=HU_WINDOW) -> np.ndarray:
    """Clip HU to ``window`` (default [-1000, 400]) and scale linearly to [0, 1] (float32).

    The same fixed window for every series and for training and test: no statistics are
    learned from the data, so nothing leaks from the test set.
    """
    lo, hi = window
    return ct.window(hu, level=(lo + hi) / 2, width=hi - lo)


def pad_square(image: np.ndarray, value=0) -> np.ndarray:
    """Pad a 2-D image symmetrically to a square (keeps the pixel aspect ratio when resized)."""
    h, w = image.shape
    n = max(h, w)
    top, left = (n - h) // 2, (n - w) // 2
    return np.pad(image, ((top, n - h - top), (left, n - w - left)), constant_values=value)


def resize_pair(image: np.ndarray, labels: np.ndarray, image_size: int, pad_value=0.0):
    """Pad to square and resize an image (bilinear, anti-aliased) and its label mask.

    Each labelled object is resized on its own (bilinear, kept where ≥ 0.5), so small
    objects survive better than with nearest-neighbour sampling. Returns float32, int32.
    """
    from skimage.transform import resize

    img = resize(pad_square(image, pad_value), (image_size, image_size), order=1, anti_aliasing=True,
                 preserve_range=True).astype(np.float32)
    sq = pad_square(labels, 0)
    out = np.zeros((image_size, image_size), np.int32)
    for k in np.unique(sq[sq > 0]):
        ind = resize((sq == k).astype(np.float32), (image_size, image_size), order=1, anti_aliasing=False)
        out[ind >= 0.5] = k
    return img, out


def lung_box(lungs: np.ndarray, spacing, margin_mm: float = 4.0) -> tuple[slice, slice]:
    """In-plane bounding box (rows, columns) of a lung mask (z, y, x) over all its slices,
    widened by ``margin_mm`` on each side (clipped to the image). The one crop that
    :func:`lung_roi` applies to every slice of a volume."""
    ys, xs = np.flatnonzero(lungs.any(axis=(0, 2))), np.flatnonzero(lungs.any(axis=(0, 1)))
    my, mx = (int(np.ceil(margin_mm / float(s))) for s in spacing[1:])
    return slice(max(ys[0] - my, 0), ys[-1] + my + 1), slice(max(xs[0] - mx, 0), xs[-1] + mx + 1)


def lung_roi(volume: np.ndarray, labels: np.ndarray, lungs: np.ndarray, spacing, crop: bool = True,
             mask: bool = True, margin_mm: float = 4.0, mask_margin_mm: float = 3.0):
    """Crop a volume and its labels to the lungs' in-plane bounding box and/or blank the outside.

    ``crop``: keep the rows/columns of :func:`lung_box` (the lung mask's bounding box over all
    slices plus ``margin_mm``). ``mask``: set voxels farther than ``mask_margin_mm`` in-plane
    from the lung mask to -1000 HU. Returns new arrays (the inputs are not modified).
    """
    from scipy import ndimage

    if not lungs.any():
        return volume, labels
    if mask:
        radius = max(int(round(mask_margin_mm / float(spacing[1]))), 1)
        near = ndimage.binary_dilation(lungs, structure=np.ones((1, 2 * radius + 1, 2 * radius + 1), bool))
        volume = np.where(near, volume, np.asarray(HU_WINDOW[0], volume.dtype))
    if crop:
        box = (slice(None),) + lung_box(lungs, spacing, margin_mm)
        volume, labels = volume[box], labels[box]
    return volume, labels


def series_per_shard(n_series: int) -> int:
    """Series per shard of :func:`build_slices`: about 16 shards for a small set, at most 8 series each."""
    return int(max(1, min(8, -(-n_series // 16))))


def build_slices(root: str | os.PathLike, image_size: int = 96, negatives_per_series: int = 4,
                 min_lung_fraction: float = 0.05, crop_to_lungs: bool = True, mask_outside_lungs: bool = True,
                 seed: int = 0, use_cache: bool = True, n_jobs: int = -1) -> dict:
    """2-D training data from a LUNA16-layout folder, written to disk shard by shard.

    For every readable series: each axial slice that cuts a nodule sphere, plus
    ``negatives_per_series`` randomly chosen nodule-free slices whose lung region covers at
    least ``min_lung_fraction`` of the slice. With ``crop_to_lungs`` each series is cropped
    to the in-plane bounding box of its lung mask (plus a 4 mm margin), so the lungs fill
    the image; with ``mask_outside_lungs`` everything more than 3 mm outside the lung mask
    is set to -1000 HU (air), so body wall, spine and table cannot distract the model.
    HU are clipped to [-1000, 400] and scaled to [0, 1]; slices are padded to square and
    resized to ``image_size``.

    Returns a dict over N slices: on disk (:class:`helpers.shards.ShardedArray`, indexing
    reads) ``images`` float32 (N, S, S), ``masks`` uint8 (N, S, S), ``labels`` int32
    (N, S, S, value = ``nodule_id`` of join_annotations); in memory ``groups`` (seriesuid
    per slice: split on it), ``slice_z`` (index in the volume), ``spacing`` (N, 3) mm and
    ``foreground_px`` (nodule pixels per slice). Built by ``n_jobs`` workers of joblib's
    active backend, a few series per shard (:func:`series_per_shard`), each worker reading
    one scan at a time and writing its shard, so memory does not grow with the number of
    series; an interrupted build resumes. Cached beside the data, keyed by the files and the
    parameters (``use_cache=False``: built in a temporary folder, removed at exit).
    """
    from functools import partial

    from . import shards

    root = layouts.check_layout("luna16", root)
    params = dict(stage="luna16-slices", version=3, image_size=int(image_size),
                  negatives_per_series=int(negatives_per_series), min_lung_fraction=float(min_lung_fraction),
                  crop_to_lungs=bool(crop_to_lungs), mask_outside_lungs=bool(mask_outside_lungs), seed=int(seed))
    key = cache.fingerprint(_source_files(root), **params)
    folder = cache.cache_dir(root, "luna16") if use_cache else shards.scratch_folder("luna16-slices-")
    store = folder / f"luna16-slices-{key}"
    if not shards.is_complete(store, key):
        series = index_series(root)
        nodules = join_annotations(series, load_annotations(root))
        records = series[series["error"].isna()].to_dict("records")
        size = int(image_size)
        shards.build(store, records, partial(_slices_shard, nodules=nodules, params=params),
                     {"images": ((size, size), np.float32), "masks": ((size, size), np.uint8),
                      "labels": ((size, size), np.int32)}, shard_size=series_per_shard(len(records)),
                     n_jobs=n_jobs, key=key, params=params, desc="slices")
        shards.supersede(folder, "luna16-slices-", key)
    return shards.slice_set(store, {"groups": "group", "slice_z": "slice_z",
                                    "spacing": ["spacing_z", "spacing_y", "spacing_x"],
                                    "foreground_px": "foreground_px"})


def _slices_shard(records: list[dict], nodules: pd.DataFrame, params: dict):
    """The work of one shard of :func:`build_slices`: the selected slices of a few series."""
    parts = [_series_slices(s, nodules, params) for s in records]
    size = params["image_size"]
    if not parts:
        empty = np.zeros((0, size, size))
        return ({"images": empty.astype(np.float32), "masks": empty.astype(np.uint8),
                 "labels": empty.astype(np.int32)},
                pd.DataFrame(columns=["group", "slice_z", "spacing_z", "spacing_y", "spacing_x", "foreground_px"]))
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    table = pd.DataFrame({"group": data["groups"].astype(str), "slice_z": data["slice_z"].astype(int),
                          "spacing_z": data["spacing"][:, 0], "spacing_y": data["spacing"][:, 1],
                          "spacing_x": data["spacing"][:, 2],
                          "foreground_px": data["masks"].reshape(len(data["masks"]), -1).sum(axis=1).astype(int)})
    return {"images": data["images"], "masks": data["masks"], "labels": data["labels"]}, table


def _series_arrays(s: dict, nodules: pd.DataFrame, params: dict) -> dict:
    """One series read and prepared for slicing: the lung-ROI volume (cropped and blanked as
    ``params`` say), its nodule labels, the lung share of each slice, its nodules and geometry."""
    volume, spacing, origin, direction = metaimage.read_mhd(s["abs_path"])
    mine = nodules[(nodules["seriesuid"] == s["seriesuid"]) & (nodules["status"] == "ok")]
    labels = nodule_mask(volume.shape, spacing, origin, direction, mine, labels=True)
    lungs = lung_mask(volume)
    crop = params["crop_to_lungs"] and lungs.any()
    box = lung_box(lungs, spacing) if crop else (slice(0, volume.shape[1]), slice(0, volume.shape[2]))
    roi, roi_labels = lung_roi(volume, labels, lungs, spacing, params["crop_to_lungs"], params["mask_outside_lungs"])
    return {"volume": roi, "labels": roi_labels, "lung_share": lungs.reshape(len(lungs), -1).mean(axis=1),
            "spacing": np.asarray(spacing, float), "box": box, "nodules": mine}


def _resized_slices(roi: dict, zs, size: int):
    """Window, pad square and resize the slices ``zs`` of a prepared series (the model input)."""
    images = np.zeros((len(zs), size, size), np.float32)
    labs = np.zeros((len(zs), size, size), np.int32)
    for i, z in enumerate(zs):
        images[i], labs[i] = resize_pair(hu_to_unit(roi["volume"][z]), roi["labels"][z], size)
    return images, labs


def _series_slices(s: dict, nodules: pd.DataFrame, params: dict) -> dict:
    roi = _series_arrays(s, nodules, params)
    labels, lung_share = roi["labels"], roi["lung_share"]
    positive = np.flatnonzero(labels.reshape(len(labels), -1).any(axis=1))
    free = np.flatnonzero((lung_share >= params["min_lung_fraction"]) & ~np.isin(np.arange(len(labels)), positive))
    rng = np.random.default_rng([params["seed"], int(sum(map(ord, s["seriesuid"])))])
    negative = rng.choice(free, min(params["negatives_per_series"], len(free)), replace=False) if len(free) else []
    zs = np.sort(np.concatenate([positive, np.asarray(negative, int)])).astype(int)
    images, labs = _resized_slices(roi, zs, params["image_size"])
    return {"images": images, "masks": (labs > 0).astype(np.uint8), "labels": labs,
            "groups": np.array([s["seriesuid"]] * len(zs), dtype=str), "slice_z": zs,
            "spacing": np.tile(roi["spacing"], (len(zs), 1))}


def iter_scans(root: str | os.PathLike, image_size: int = 96, seriesuids=None, crop_to_lungs: bool = True,
               mask_outside_lungs: bool = True):
    """Whole scans for evaluation, ONE SERIES AT A TIME (memory does not grow with the number of series).

    For each readable series (only those in ``seriesuids`` when given, in index order) yields
    a dict with every axial slice from the first to the last slice that shows lung or nodule,
    preprocessed exactly as :func:`build_slices` prepares training slices (the same lung-ROI
    crop box of that volume, blanking, HU window, pad to square, resize):

    * ``seriesuid``; ``images`` float32 (Z, S, S) in [0, 1]; ``labels`` int32 (Z, S, S)
      (``nodule_id``, 0 = background); ``slice_z`` (Z,) index of each slice in the volume;
    * ``spacing_zyx`` (3,) mm of the resized stack: the volume's z spacing and the in-plane
      spacing after crop, pad and resize (``spacing * side / image_size``);
    * ``nodules_zyx_mm`` (K, 3) nodule centres in the mm frame of the STACK (stack index ×
      ``spacing_zyx``; z counted from the first yielded slice, ``slice_z[0]``, so a voxel
      (i, r, c) of ``images`` lies at (i, r, c) × ``spacing_zyx``), ``radii_mm`` (K,) = diameter / 2,
      ``nodule_ids`` (K,).
    """
    root = layouts.check_layout("luna16", root)
    series = index_series(root)
    nodules = join_annotations(series, load_annotations(root))
    rows = series[series["error"].isna()]
    if seriesuids is not None:
        rows = rows[rows["seriesuid"].isin(set(map(str, seriesuids)))]
    params = dict(crop_to_lungs=bool(crop_to_lungs), mask_outside_lungs=bool(mask_outside_lungs))
    size = int(image_size)
    for s in rows.to_dict("records"):
        roi = _series_arrays(s, nodules, params)
        shown = np.flatnonzero((roi["lung_share"] > 0) | roi["labels"].reshape(len(roi["labels"]), -1).any(axis=1))
        zs = np.arange(shown[0], shown[-1] + 1) if len(shown) else np.arange(len(roi["labels"]))
        images, labs = _resized_slices(roi, zs, size)
        (y0, _), (x0, _) = ((b.start, b.stop) for b in roi["box"])
        h, w = roi["volume"].shape[1:]
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        scale = size / side
        spacing = roi["spacing"]
        spacing_zyx = np.array([spacing[0], spacing[1] / scale, spacing[2] / scale])
        mine = roi["nodules"]
        centre = np.column_stack([mine["voxel_z"].to_numpy(float) - zs[0],
                                  (mine["voxel_y"].to_numpy(float) - y0 + top + 0.5) * scale - 0.5,
                                  (mine["voxel_x"].to_numpy(float) - x0 + left + 0.5) * scale - 0.5]).reshape(-1, 3)
        yield {"seriesuid": s["seriesuid"], "images": images, "labels": labs, "slice_z": zs,
               "spacing_zyx": spacing_zyx, "nodules_zyx_mm": centre * spacing_zyx,
               "radii_mm": mine["diameter_mm"].to_numpy(float) / 2.0,
               "nodule_ids": mine["nodule_id"].to_numpy(int)}
