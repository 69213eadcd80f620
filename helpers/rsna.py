"""The RSNA Intracranial Hemorrhage layout: labels, pixel groups, cleaning and the cleaned dataset.

Layout (``../shared/DATASETS.md`` §1)::

    stage_2_train/ID_<hex>.dcm     one axial CT slice per file
    stage_2_train.csv              ID,Label  with six rows per image (ID_<hex>_<subtype>)

The data flow of notebook 01, one call per arrow::

    files --dicom.index_dicoms--> header table --join_labels(load_labels)--> labelled table
          --clean_slice (read_hu with the defect repaired, brain_fraction, head_crop, resize)-->
          cleaned arrays in HU + table        (load_clean: cached under data/processed/)

:func:`load_clean` is what later notebooks call: it returns ``(images, table)``, rebuilding
the cleaned dataset when it is missing. Raw files are only ever read.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache, dicom, layouts, paths, shards
from .ct import named_window
from .io import error_reason, write_json

SUBTYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
LABELS = SUBTYPES + ("any",)
IMAGE_FOLDER = "stage_2_train"
LABELS_CSV = "stage_2_train.csv"
BRAIN_WINDOW = (0.0, 80.0)
CLEAN_VERSION = 3
"""Bumped whenever cleaning changes, so cleaned datasets of an older version are rebuilt."""
AIR_HU = -1000
AIR_FLOOR = -1024
"""Cleaned slices are clipped below at this HU: lower values are padding outside the scanner's
reconstruction circle (e.g. -3024 or -2000), not tissue."""
#: File meta (group 0002) tags: about the file, not the image; left out of the cleaned table.
FILE_META = ("FileMetaInformationGroupLength", "FileMetaInformationVersion", "MediaStorageSOPClassUID",
             "MediaStorageSOPInstanceUID", "TransferSyntaxUID", "ImplementationClassUID",
             "ImplementationVersionName", "SourceApplicationEntityTitle")
_ID = re.compile(r"^(ID_[0-9A-Za-z]+)_(" + "|".join(LABELS) + r")$")


# ---------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------
def load_labels(root: str | os.PathLike) -> pd.DataFrame:
    """``stage_2_train.csv`` pivoted to one row per image: ``image_id`` + six 0/1 columns.

    Exact duplicate rows are dropped; when one ``ID`` has conflicting labels the last row
    wins. Rows whose ID does not end in one of the six subtypes are ignored. Images that
    lack one of their six rows keep ``NaN`` there (:func:`join_labels` treats them as
    unlabelled). Counts go in ``table.attrs``: ``n_rows`` (CSV rows), ``n_duplicate_rows``
    (exact duplicates), ``n_conflicting_rows``, ``n_bad_rows``, ``n_incomplete`` (images
    with fewer than six labels).
    """
    root = Path(root)
    path = root / LABELS_CSV
    if not path.is_file():
        raise layouts.layout_error("rsna", root, f"{LABELS_CSV} is missing")
    raw = pd.read_csv(path, dtype={"ID": str}, usecols=["ID", "Label"])
    n_rows = len(raw)
    dup = raw.duplicated()
    raw = raw[~dup]
    parts = raw["ID"].str.strip().str.extract(_ID)
    bad = parts[0].isna() | pd.to_numeric(raw["Label"], errors="coerce").isna()
    raw = raw.assign(image_id=parts[0], subtype=parts[1], Label=pd.to_numeric(raw["Label"], errors="coerce"))[~bad]
    conflicting = raw.duplicated(["image_id", "subtype"], keep="last")
    raw = raw[~conflicting]
    table = raw.pivot(index="image_id", columns="subtype", values="Label").reindex(columns=list(LABELS))
    table = table.reset_index().rename_axis(columns=None)
    incomplete = table[list(LABELS)].isna().any(axis=1)
    for col in LABELS:
        table[col] = table[col].astype("Int8") if table[col].isna().any() else table[col].astype(np.int8)
    table.attrs.update(n_rows=int(n_rows), n_duplicate_rows=int(dup.sum()),
                       n_conflicting_rows=int(conflicting.sum()), n_bad_rows=int(bad.sum()),
                       n_incomplete=int(incomplete.sum()))
    return table


def image_ids(index: pd.DataFrame) -> pd.Series:
    """The image ID of each index row: ``SOPInstanceUID``, or the file name's stem when it is missing.

    (In the RSNA data the file is named after its SOPInstanceUID; broken files have no
    header, so the stem is their only ID.)
    """
    stem = index["path"].map(lambda p: Path(p).stem)
    if "SOPInstanceUID" not in index:
        return stem
    sop = index["SOPInstanceUID"].astype(object)
    return sop.where(sop.notna() & (sop.astype(str).str.len() > 0), stem).astype(str)


def join_labels(index: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Join the label table to a DICOM index by image ID (never by row order).

    Adds ``image_id`` and the six label columns (NaN where the image has no complete label
    set) and ``labelled`` (bool). Rows keep the index's order; the input is not modified.
    """
    table = index.copy()
    table["image_id"] = image_ids(index).to_numpy()
    table = table.merge(labels[["image_id", *LABELS]], on="image_id", how="left", validate="many_to_one")
    table["labelled"] = table[list(LABELS)].notna().all(axis=1)
    return table


# ---------------------------------------------------------------------------------------
# Pixel-format groups and the representation defect
# ---------------------------------------------------------------------------------------
def pixel_groups(table: pd.DataFrame) -> pd.DataFrame:
    """The pixel-format groups: one row per (BitsStored, PixelRepresentation, intercept >= -100).

    Columns: ``n_slices``, ``n_patients``, ``intercepts`` (the values seen), ``defective``
    (the group meets the defect condition of :func:`helpers.dicom.is_defective`) and, when
    the table has labels, ``any_rate`` (fraction of positive slices). Readable rows only.
    """
    ok = table[table["error"].isna()] if "error" in table else table
    ok = ok.assign(intercept_ge_minus100=ok["RescaleIntercept"].astype(float) >= dicom.DEFECT_INTERCEPT)
    keys = ["BitsStored", "PixelRepresentation", "intercept_ge_minus100"]
    patient = "PatientID" if "PatientID" in ok else "patient_id"
    agg = {"n_slices": ("RescaleIntercept", "size"), "n_patients": (patient, "nunique"),
           "intercepts": ("RescaleIntercept", lambda s: ", ".join(f"{v:g}" for v in sorted(s.astype(float).unique())))}
    if "any" in ok:
        agg["any_rate"] = ("any", lambda s: round(float(s.astype(float).mean()), 3))
    groups = ok.groupby(keys, dropna=False).agg(**agg).reset_index()
    groups["defective"] = (groups["PixelRepresentation"].astype(float) == 0) & groups["intercept_ge_minus100"]
    for col in ("BitsStored", "PixelRepresentation"):
        groups[col] = groups[col].astype(int)
    return groups


def naive_rule_hu(path_or_dataset) -> np.ndarray:
    """HU as a *naive* rule would compute them: any intercept >= -100 is "missing its offset".

    The naive rule looks at the intercept alone and shifts every slice whose
    RescaleIntercept is >= -100 down to an intercept of -1024 (the usual value). It ignores
    PixelRepresentation, so it also shifts the correct signed 12-bit slices (intercept 0)
    by -1024 HU — and it does not undo the wrapped values of the truly defective ones.
    For teaching only; :func:`helpers.dicom.read_hu` applies the exact condition.
    """
    ds = path_or_dataset
    if isinstance(ds, (str, os.PathLike)):
        import pydicom

        ds = pydicom.dcmread(ds)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    if intercept >= dicom.DEFECT_INTERCEPT:
        intercept = -1024.0
    return (ds.pixel_array.astype(np.float32) * slope + intercept).astype(np.float32)


# ---------------------------------------------------------------------------------------
# One slice: brain fraction, head crop, resize
# ---------------------------------------------------------------------------------------
def brain_fraction(hu: np.ndarray, lo: float = BRAIN_WINDOW[0], hi: float = BRAIN_WINDOW[1]) -> float:
    """Fraction of pixels strictly inside ``(lo, hi)`` HU (fastai's ``img_pct_window``).

    Compute it on HU *after* the representation repair: with the defect, brain is stored
    where air should be and the fraction is meaningless.
    """
    hu = np.asarray(hu)
    return float(((hu > lo) & (hu < hi)).mean()) if hu.size else 0.0


def head_mask(hu: np.ndarray, sigma: float | None = None, threshold: float = 0.05, fill: bool = True) -> np.ndarray:
    """Boolean mask of the head: brain window of a blurred image > ``threshold``, largest component.

    The brain window (40/80) makes soft tissue, brain and bone bright and air, padding and
    most of the scanner table dark; blurring (``sigma`` in pixels, default 1 % of the image
    width) removes isolated noisy pixels; keeping the largest connected component drops
    the head-rest and other detached objects. Holes are filled (``fill``).
    """
    from scipy import ndimage

    hu = np.asarray(hu, np.float32)
    sigma = max(hu.shape) / 100.0 if sigma is None else sigma
    blurred = ndimage.gaussian_filter(named_window(hu, "brain"), sigma)
    mask = blurred > threshold
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = labels == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(largest) if fill else largest


def head_crop(hu: np.ndarray, margin: float = 0.02, sigma: float | None = None,
              max_side: int = 128) -> tuple[int, int, int]:
    """A square box around the head: ``(row0, col0, size)`` in the slice's pixels.

    The bounding box of :func:`head_mask`, grown by ``margin`` × image size on each side
    and squared around its centre (the longer side wins). The box may reach outside the
    image; :func:`crop_square` fills that part with air. No head found: the whole image.
    For speed the mask is computed on a copy shrunk by block averages to at most
    ``max_side`` pixels (a 512 px slice: 4 × 4 blocks); the box is exact to one block.
    """
    hu = np.asarray(hu, np.float32)
    n_rows, n_cols = hu.shape
    f = max(1, int(np.ceil(max(n_rows, n_cols) / max_side)))
    small = hu if f == 1 else hu[: n_rows // f * f, : n_cols // f * f].reshape(
        n_rows // f, f, n_cols // f, f).mean(axis=(1, 3))
    mask = head_mask(small, sigma if sigma is None else sigma / f, fill=False)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if rows.size == 0:
        size = max(n_rows, n_cols)
        return (n_rows - size) // 2, (n_cols - size) // 2, int(size)
    pad = int(round(margin * max(n_rows, n_cols)))
    r0, r1 = rows[0] * f - pad, min((rows[-1] + 1) * f, n_rows) + pad
    c0, c1 = cols[0] * f - pad, min((cols[-1] + 1) * f, n_cols) + pad
    size = int(max(r1 - r0, c1 - c0))
    return int((r0 + r1 - size) // 2), int((c0 + c1 - size) // 2), size


def crop_square(hu: np.ndarray, box: tuple[int, int, int], fill: float = AIR_HU) -> np.ndarray:
    """Cut ``box = (row0, col0, size)`` out of ``hu``; parts outside the image become ``fill`` HU."""
    r0, c0, size = box
    out = np.full((size, size), fill, np.float32)
    rs, cs = max(r0, 0), max(c0, 0)
    re_, ce = min(r0 + size, hu.shape[0]), min(c0 + size, hu.shape[1])
    if re_ > rs and ce > cs:
        out[rs - r0:re_ - r0, cs - c0:ce - c0] = hu[rs:re_, cs:ce]
    return out


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D float image to ``size × size`` (bilinear, area-aware when shrinking)."""
    from PIL import Image

    if image.shape == (size, size):
        return image.astype(np.float32)
    return np.asarray(Image.fromarray(np.asarray(image, np.float32), mode="F")
                      .resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def clean_slice(path: str | os.PathLike, image_size: int = 256) -> tuple[np.ndarray, dict]:
    """One slice end to end: HU (defect repaired) → brain fraction → head crop → resize.

    HU below -1024 (padding) are raised to -1024 before the crop.

    Returns ``(image, info)``: ``image`` float32 ``(image_size, image_size)`` in HU and
    ``info`` with ``brain_fraction`` (on the full slice), ``repaired`` (the defect was
    fixed), ``crop_row0``, ``crop_col0``, ``crop_size`` (the square box in the slice's own
    pixels), ``rows``, ``cols``. Raises ``ValueError`` (naming the file) when the pixels
    cannot be read.
    """
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # RSNA's "ID_..." UIDs are not valid UIs
            ds = pydicom.dcmread(path)
    except Exception as err:   # noqa: BLE001
        raise ValueError(f"cannot read DICOM file {path}: {type(err).__name__}: {err}") from err
    hu = dicom.read_hu(ds)
    if hu.ndim != 2:
        raise ValueError(f"{path}: expected one 2-D slice, got pixel array of shape {hu.shape}")
    box = head_crop(hu)
    image = resize(crop_square(np.maximum(hu, AIR_FLOOR), box), image_size)
    info = {"brain_fraction": brain_fraction(hu), "repaired": bool(dicom.is_defective(ds)),
            "crop_row0": box[0], "crop_col0": box[1], "crop_size": box[2],
            "rows": int(hu.shape[0]), "cols": int(hu.shape[1])}
    return image, info


_INFO_COLUMNS = ("brain_fraction", "repaired", "crop_row0", "crop_col0", "crop_size", "rows", "cols", "hu_min", "hu_max")


def clean_shard(paths: list[str], image_size: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Clean one shard of files: int16 HU images ``(len(paths), size, size)`` and one table row per file.

    The work of one task of the cleaning build (:func:`helpers.shards.build`); it runs in a
    worker. The table adds ``hu_min`` / ``hu_max`` of each stored image (so a summary over the
    dataset needs no second pass over the pixels). A file whose pixels cannot be read gets a
    zero image and its reason in ``pixel_error``; nothing is raised.
    """
    images = np.zeros((len(paths), image_size, image_size), np.int16)
    rows = []
    for k, p in enumerate(paths):
        try:
            image, info = clean_slice(p, image_size)
            images[k] = np.clip(np.rint(image), -32768, 32767).astype(np.int16)
            rows.append({"path": p, "pixel_error": None, **info,
                         "hu_min": int(images[k].min()), "hu_max": int(images[k].max())})
        except Exception as err:   # noqa: BLE001 - recorded, never raised
            rows.append({"path": p, "pixel_error": error_reason(err)})
    table = pd.DataFrame(rows, columns=["path", "pixel_error", *_INFO_COLUMNS])
    table["pixel_error"] = table["pixel_error"].astype(object)
    table["repaired"] = table["repaired"].fillna(False).astype(bool)
    return images, table


# ---------------------------------------------------------------------------------------
# The cleaned dataset
# ---------------------------------------------------------------------------------------
SHARD_BYTES = 32 * 2**20
"""Target size of one shard of cleaned slices (int16): 512 slices of 256 px, 2,048 of 128 px."""


def shard_size(n_files: int, image_size: int) -> int:
    """Slices per shard: about 64 shards for a small set (parallel work), at most ``SHARD_BYTES`` a shard.

    Depends only on the number of files and the image size (never on the worker count), so an
    interrupted build resumes with the same shards on any machine.
    """
    cap = max(16, SHARD_BYTES // (2 * image_size * image_size))
    return int(min(cap, max(16, -(-n_files // 64))))


def _clean_folder(root: Path, cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return paths.processed_dir(f"rsna-clean-{root.name}-{digest}")


def _assemble(index: pd.DataFrame, labels: pd.DataFrame, cleaned: pd.DataFrame) -> pd.DataFrame:
    """The per-file table: index + labels + what cleaning found; ``image_row`` = row in the store."""
    table = join_labels(index, labels)
    readable = table.index[table["error"].isna()]
    if len(readable) != len(cleaned) or not (table.loc[readable, "path"].to_numpy() == cleaned["path"].to_numpy()).all():
        raise ValueError("the cleaned shards do not match the index (files changed during the build?)")
    table["image_row"] = -1
    table["pixel_error"] = None
    for col in _INFO_COLUMNS:
        table[col] = np.nan
    table["repaired"] = False
    ok = cleaned["pixel_error"].isna().to_numpy()
    table.loc[readable[ok], "image_row"] = np.flatnonzero(ok)
    table.loc[readable[~ok], "pixel_error"] = cleaned.loc[~ok, "pixel_error"].to_numpy()
    for col in _INFO_COLUMNS:
        table.loc[readable[ok], col] = cleaned.loc[ok, col].to_numpy()
    table["repaired"] = table["repaired"].astype(bool)
    return table


def _tidy(table: pd.DataFrame) -> pd.DataFrame:
    """Name the ID and position columns the way later notebooks read them."""
    renames = {"PatientID": "patient_id", "StudyInstanceUID": "study_id", "SeriesInstanceUID": "series_id"}
    table = table.rename(columns={k: v for k, v in renames.items() if k in table})
    for col in renames.values():
        if col not in table:
            table[col] = None
    table["z"] = pd.to_numeric(table.get("ImagePositionPatient2"), errors="coerce")
    table["file"] = table["path"].map(lambda p: Path(p).name)
    return table


def build_report(root: str | os.PathLike, image_size: int = 256, cache_dir=None) -> dict | None:
    """How the last cleaning build of ``root`` went: the store's manifest plus ``n_built`` / ``n_reused`` shards."""
    folder = _clean_folder(Path(root), cache_dir)
    found = sorted(folder.glob(f"clean-{int(image_size)}px-*/build-report.json"))
    return json.loads(found[-1].read_text()) if found else None


def _cleaned(root: str | os.PathLike, image_size: int, n_jobs: int, cache_dir) -> tuple[Path, pd.DataFrame]:
    """The cleaned store (built or finished when needed) and its per-file table.

    Slices are cleaned shard by shard in joblib's active backend (:func:`helpers.shards.build`);
    each worker writes its shard, so memory does not grow with the number of files, and an
    interrupted build resumes from its last complete shard.
    """
    from functools import partial

    root = layouts.check_layout("rsna", root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        index = dicom.index_dicoms(root / IMAGE_FOLDER, n_jobs=n_jobs)
    files = index["path"].tolist() + [str(root / LABELS_CSV)]
    key = cache.fingerprint(files, stage="rsna-clean", version=CLEAN_VERSION, image_size=int(image_size))
    folder = _clean_folder(root, cache_dir)
    stem = f"clean-{int(image_size)}px-"
    store, table_path = folder / f"{stem}{key}", folder / f"{stem}{key}.parquet"
    readable = index.loc[index["error"].isna(), "path"].tolist()
    built = False
    if not shards.is_complete(store, key):
        report = shards.build(store, readable, partial(clean_shard, image_size=int(image_size)),
                              {"images": ((int(image_size), int(image_size)), np.int16)},
                              shard_size=shard_size(len(readable), int(image_size)), n_jobs=n_jobs, key=key,
                              params={"stage": "rsna-clean", "image_size": int(image_size)},
                              progress=len(readable) > dicom.AUTO_PROGRESS, desc="cleaning")
        write_json(store / "build-report.json", report)
        table_path.unlink(missing_ok=True)
        built = True
    table = cache.cached_table(table_path, lambda: _assemble(index, load_labels(root), shards.read_table(store)))
    if built:   # a new build supersedes older ones of the same size (changed files or code)
        shards.supersede(folder, stem, key)
    return store, _tidy(table)


def cleaning_table(root: str | os.PathLike, image_size: int = 256, n_jobs: int = -1,
                   cache_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """What cleaning found for every file: one row per ``.dcm`` file (same cache as :func:`load_clean`).

    Columns: ``path``, ``file``, ``image_id``, ``error`` (header could not be read),
    ``pixel_error`` (pixels could not be read), ``readable``, ``labelled``, the six labels
    (NaN when unlabelled), ``brain_fraction``, ``repaired``, the crop box, and the header
    columns. Use it to see what a threshold drops before choosing one.
    """
    _, table = _cleaned(root, image_size, n_jobs, cache_dir)
    table = table.assign(readable=table["image_row"] >= 0)
    return table.drop(columns=["image_row"]).reset_index(drop=True)


def load_clean(root: str | os.PathLike, image_size: int = 256, brain_threshold: float = 0.02, n_jobs: int = -1,
               cache_dir: str | os.PathLike | None = None,
               dtype=np.float32) -> tuple[shards.ShardedArray, pd.DataFrame]:
    """The cleaned RSNA dataset: ``(images, table)``, aligned row by row.

    ``images`` is an on-disk array (:class:`helpers.shards.ShardedArray`) of shape
    ``(n, image_size, image_size)``: indexing reads rows from disk (``images[i]``,
    ``images[rows]`` give NumPy arrays in ``dtype``), ``images.take(rows)`` and
    ``images.map(fn)`` are lazy views, and :func:`helpers.training.make_dataset` streams it,
    so nothing holds the whole dataset in memory. Values in HU: each slice read with the
    rescale applied and the representation defect repaired, values below -1024 HU
    (padding outside the reconstruction circle) raised to -1024, cropped to a square around the
    head (:func:`head_crop`, outside the image filled with -1000 HU) and resized. Kept:
    readable, labelled slices whose :func:`brain_fraction` is >= ``brain_threshold``.

    ``table`` columns (one row per image, same order): ``image_id, patient_id, study_id, series_id, z``
    (ImagePositionPatient z, mm), ``slice_index`` (rank of z in its series, from 0,
    counted over the kept slices) and ``n_slices``, the six labels ``epidural,
    intraparenchymal, intraventricular, subarachnoid, subdural, any`` (int), ``brain_fraction``,
    ``repaired``, ``crop_row0, crop_col0, crop_size`` (the square in the original pixels),
    ``rows, cols`` (original size), ``file`` (file name) and the DICOM header columns of
    :func:`helpers.dicom.index_dicoms` (``BitsStored``, ``PixelRepresentation``,
    ``RescaleIntercept``, ``WindowCenter0``, ``ImagePositionPatient0..2``, ...). Sorted by
    patient, study, series and z.

    Cache: the cleaned slices are stored as **int16 HU** (rounded to 1 HU; 2 bytes a pixel)
    in ``data/processed/rsna-clean-<root name>-<hash>/clean-<size>px-<key>/``, a store of
    ``.npy`` shards (:mod:`helpers.shards`), with the per-file table beside it as Parquet;
    ``key`` hashes every file's path, size and modification time and ``image_size``. A
    missing or stale cache is rebuilt shard by shard (``n_jobs`` workers of joblib's active
    backend, a Dask cluster included); an interrupted build resumes from its last complete
    shard (:func:`build_report` says how many were reused); the raw files are never
    written. ``brain_threshold`` is applied on loading, so changing it needs no rebuild.
    Counts of what was dropped: :func:`summary`. ``dtype=np.int16`` reads the stored
    int16 HU as they are (half the bytes of float32 per batch).
    """
    store, table = _cleaned(root, image_size, n_jobs, cache_dir)
    keep = _kept(table, brain_threshold)
    kept = table[keep].copy()
    kept = kept.sort_values(["patient_id", "study_id", "series_id", "z", "image_id"], na_position="last")
    out = shards.ShardedArray(store).take(kept["image_row"].to_numpy()).astype(dtype)
    for col in LABELS:
        kept[col] = kept[col].astype(int)
    kept["slice_index"] = kept.groupby("series_id", dropna=False)["z"].rank(method="first", na_option="bottom").astype(int) - 1
    kept["n_slices"] = kept.groupby("series_id", dropna=False)["z"].transform("size").astype(int)
    for col in ("crop_row0", "crop_col0", "crop_size", "rows", "cols"):
        kept[col] = kept[col].astype(int)
    first = ["image_id", "patient_id", "study_id", "series_id", "z", "slice_index", "n_slices", *LABELS,
             "brain_fraction", "repaired", "crop_row0", "crop_col0", "crop_size", "rows", "cols", "file"]
    drop = {"path", "error", "pixel_error", "labelled", "image_row", "SOPInstanceUID", *FILE_META}
    rest = [c for c in kept.columns if c not in first and c not in drop]
    return out, kept[first + rest].reset_index(drop=True)


def _kept(table: pd.DataFrame, brain_threshold: float) -> pd.Series:
    readable = table["image_row"] >= 0
    return readable & table["labelled"] & (table["brain_fraction"] >= brain_threshold)


def summary(root: str | os.PathLike, image_size: int = 256, brain_threshold: float = 0.02, n_jobs: int = -1,
                 cache_dir: str | os.PathLike | None = None) -> dict:
    """What cleaning did, as counts (notebook 01's metrics); reads the same cache as :func:`load_clean`.

    ``n_files`` (``.dcm`` files), ``n_unreadable`` (header or pixels could not be read),
    ``n_images`` (readable slices), ``n_unlabelled`` (readable slices without a complete
    set of six labels), ``n_repaired`` (readable slices with the representation defect,
    repaired), ``n_dropped_low_brain`` (readable labelled slices below ``brain_threshold``),
    ``n_positive_dropped`` (of those, ``any`` = 1), ``n_kept``; plus ``unreadable``
    ({file name: reason}) and the label file's ``n_label_rows`` / ``n_duplicate_label_rows``.
    """
    _, table = _cleaned(root, image_size, n_jobs, cache_dir)
    labels = load_labels(root)
    readable = table["image_row"] >= 0
    labelled = readable & table["labelled"]
    low = labelled & (table["brain_fraction"] < brain_threshold)
    reason = table["error"].where(table["error"].notna(), table["pixel_error"])
    return {
        "n_files": int(len(table)), "n_unreadable": int((~readable).sum()), "n_images": int(readable.sum()),
        "n_unlabelled": int((readable & ~table["labelled"]).sum()),
        "n_repaired": int((readable & table["repaired"].astype(bool)).sum()),
        "n_dropped_low_brain": int(low.sum()),
        "n_positive_dropped": int((low & (table["any"] == 1)).sum()),
        "n_kept": int(_kept(table, brain_threshold).sum()),
        "unreadable": {f: r for f, r in zip(table.loc[~readable, "file"], reason[~readable])},
        "n_label_rows": labels.attrs["n_rows"], "n_duplicate_label_rows": labels.attrs["n_duplicate_rows"],
    }


def lesion_boxes(root: str | os.PathLike, table: pd.DataFrame, image_size: int) -> pd.DataFrame:
    """Ground-truth lesion boxes (synthetic data only) mapped into the cleaned images' pixels.

    Reads ``ground_truth_lesions.csv`` beside a synthetic dataset (``image_id, subtype,
    row0, col0, row1, col1`` in original pixels, end exclusive) and maps each box through
    the slice's crop (``crop_row0, crop_col0, crop_size`` of :func:`load_clean`'s table)
    into ``image_size`` pixels. Returns the boxes of images present in ``table``, with
    ``clean_row0, clean_col0, clean_row1, clean_col1`` (floats) and ``row`` (the image's
    row in ``table``). Raises ``FileNotFoundError`` for real data, which has no boxes.
    """
    boxes = pd.read_csv(Path(root) / "ground_truth_lesions.csv")
    crops = table[["image_id", "crop_row0", "crop_col0", "crop_size"]].reset_index().rename(columns={"index": "row"})
    boxes = boxes.merge(crops, on="image_id", how="inner")
    scale = image_size / boxes["crop_size"]
    for a, origin in (("row", "crop_row0"), ("col", "crop_col0")):
        for end in ("0", "1"):
            boxes[f"clean_{a}{end}"] = (boxes[f"{a}{end}"] - boxes[origin]) * scale
    return boxes.drop(columns=["crop_row0", "crop_col0", "crop_size"])
