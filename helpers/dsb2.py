"""Read cardiac cine MRI in the Kaggle DSB2 layout (``../shared/DATASETS.md`` §2).

The layout::

    train/<case>/study/sax_<n>/IM-<4 digits>-<4 digits>.dcm   one frame per file
    train.csv                            Id,Systole,Diastole (mL)
    lv_centroids.csv                     path,row,col  (LV centroid, native pixels)
    lv_masks/<relative path>.png         optional binary LV blood-pool masks

:func:`index_frames` turns it into a table with one row per short-axis frame, applying the
layout's rules:

* only ``sax_*`` folders are short-axis slices; ``2ch_*``/``4ch_*`` (long axis) are ignored;
* a folder may hold several slice locations (four-part file names
  ``IM-3097-0008-0001.dcm``): a *series* is one slice location within one folder;
* a slice location acquired twice keeps its **last** acquisition (highest SeriesNumber, then
  AcquisitionTime, then folder number); the earlier one is marked ``superseded``;
* frames of a series are put in cycle order by InstanceNumber, then TriggerTime;
* an unreadable file becomes a row with its ``error`` and no tags; nothing raises.

Pixel coordinates are ``(row, col)`` with pixel centres at integers (as in
:mod:`helpers.augment`); ``lv_row``/``lv_col`` are in each image's own grid.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache, layouts

FILE_NAME = re.compile(r"^IM-(\d+)-(\d+)(?:-(\d+))?\.dcm$", re.IGNORECASE)
TAGS = ["SeriesNumber", "InstanceNumber", "TriggerTime", "SliceLocation", "SliceThickness", "PixelSpacing",
        "Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient", "AcquisitionTime",
        "SeriesInstanceUID"]


def _case_key(case: str):
    return (0, int(case), "") if str(case).isdigit() else (1, 0, str(case))


def short_axis_files(root: str | os.PathLike, split: str = "train") -> list[Path]:
    """Every ``.dcm`` under ``<split>/<case>/study/sax_*/``, sorted (long-axis folders skipped)."""
    root = Path(root)
    return sorted(p for p in (root / split).glob("*/study/sax_*/*") if p.suffix.lower() == ".dcm" and p.is_file())


def ignored_folders(root: str | os.PathLike, split: str = "train") -> list[str]:
    """Folders under ``<split>/<case>/study/`` that are not short-axis (``2ch_*``, ``4ch_*``...)."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in (root / split).glob("*/study/*")
                  if p.is_dir() and not p.name.lower().startswith("sax_"))


def _read_header(path: Path) -> dict:
    """Header tags of one file (no pixels), or ``{"error": reason}``."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=TAGS)
        row = {"error": None}
        for tag in TAGS:
            value = ds.get(tag)
            row[tag] = None if value is None or value == "" else value
        for tag in ("Rows", "Columns", "PixelSpacing"):
            if row[tag] is None:
                raise ValueError(f"missing required tag {tag}")
        return row
    except Exception as err:  # noqa: BLE001 - any unreadable file is recorded, never raised
        from .io import error_reason

        return {"error": error_reason(err)}


def _header_table(paths: list[Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        raw = _read_header(path)
        row = {"error": raw["error"]}
        if raw["error"] is None:
            spacing = [float(v) for v in raw["PixelSpacing"]]
            position = [float(v) for v in raw["ImagePositionPatient"]] if raw["ImagePositionPatient"] else [np.nan] * 3
            orient = [float(v) for v in raw["ImageOrientationPatient"]] if raw["ImageOrientationPatient"] else [np.nan] * 6
            location = raw["SliceLocation"]
            if location is None and np.all(np.isfinite(position + orient)):
                location = float(np.dot(position, np.cross(orient[:3], orient[3:])))   # along the slice normal
            row.update({
                "SeriesNumber": _num(raw["SeriesNumber"]), "InstanceNumber": _num(raw["InstanceNumber"]),
                "TriggerTime": _num(raw["TriggerTime"]), "SliceLocation": _num(location),
                "SliceThickness": _num(raw["SliceThickness"]), "AcquisitionTime": str(raw["AcquisitionTime"] or ""),
                "SeriesInstanceUID": str(raw["SeriesInstanceUID"] or ""),
                "row_spacing_mm": spacing[0], "col_spacing_mm": spacing[1] if len(spacing) > 1 else spacing[0],
                "rows": int(raw["Rows"]), "cols": int(raw["Columns"]),
                "position_x": position[0], "position_y": position[1], "position_z": position[2],
                **dict(zip(("normal_x", "normal_y", "normal_z"), _normal(orient))),
            })
        rows.append(row)
    return pd.DataFrame(rows)


def _normal(orient: list[float]) -> np.ndarray:
    """The slice normal (unit vector) from ImageOrientationPatient's row and column cosines."""
    normal = np.cross(orient[:3], orient[3:])
    length = float(np.linalg.norm(normal)) if np.all(np.isfinite(normal)) else 0.0
    return normal / length if length > 0 else np.full(3, np.nan)


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def index_frames(root: str | os.PathLike, split: str = "train") -> pd.DataFrame:
    """One row per short-axis frame file of a DSB2-layout folder.

    Columns
    -------
    case, slice (``sax_<n>`` folder), series_id (``slice``, or ``slice@location`` when the
    folder holds several locations), path (relative to ``root``, POSIX), abs_path,
    file_series / file_frame / file_part (the numbers in ``IM-a-b[-c].dcm``; ``file_part``
    NaN for three-part names), SeriesNumber, InstanceNumber, TriggerTime, SliceLocation,
    SliceThickness (mm), AcquisitionTime, row_spacing_mm / col_spacing_mm (PixelSpacing),
    rows, cols, position_x/y/z (ImagePositionPatient, mm), normal_x/y/z (the slice normal from
    ImageOrientationPatient: row cosines × column cosines), error (None when readable),
    superseded (an earlier acquisition of a re-acquired location), usable (readable and not
    superseded), frame (0-based position in the cycle) and n_frames, slice_index (rank of
    the location within the case, 0..n_slices-1, sorted by SliceLocation) and n_slices,
    lv_row / lv_col (from ``lv_centroids.csv``; NaN when unlabelled), mask_path (relative
    path of ``lv_masks/<path>.png`` when it exists, else None).

    Rows are sorted by case, slice_index, frame; unreadable files come last in their case.
    A missing or empty folder raises :class:`helpers.layouts.DatasetLayoutError`.
    """
    root = layouts.check_layout("dsb2", root)
    files = short_axis_files(root, split)
    if not files:
        raise layouts.layout_error("dsb2", root, f"no short-axis DICOM files under {split}/<case>/study/sax_*/")
    key = cache.fingerprint(files, stage="dsb2-index", version=2, split=split)
    table = cache.cached_table(cache.cache_dir(root, "dsb2") / f"index-{key}.parquet",
                               lambda: _index_table(root, files))
    for col in ("slice_index", "n_slices", "frame", "n_frames"):
        table[col] = table[col].astype("Int64")
    table["abs_path"] = [str(root / p) for p in table["path"]]     # the cache may come from another mount
    table = _join_labels(root, table)
    return table.reset_index(drop=True)


def _index_table(root: Path, files: list[Path]) -> pd.DataFrame:
    """The header part of :func:`index_frames` (cached; labels and masks are joined afterwards)."""
    rel = [p.relative_to(root).as_posix() for p in files]
    table = pd.DataFrame({
        "case": [p.parts[-4] for p in files], "slice": [p.parent.name for p in files],
        "path": rel, "abs_path": [str(p) for p in files]})
    parts = table["path"].str.rsplit("/", n=1).str[-1].str.extract(FILE_NAME).astype(float)
    table[["file_series", "file_frame", "file_part"]] = parts.to_numpy()
    table = pd.concat([table, _header_table(files)], axis=1)
    return _series_and_order(table).reset_index(drop=True)


def _series_and_order(table: pd.DataFrame) -> pd.DataFrame:
    ok = table["error"].isna()
    loc = table["SliceLocation"].round(1)
    n_locations = table[ok].assign(loc=loc).groupby(["case", "slice"])["loc"].transform("nunique")
    multi = pd.Series(False, index=table.index)
    multi[n_locations.index] = n_locations > 1
    table["series_id"] = np.where(multi, table["slice"] + "@" + loc.map(lambda v: f"{v:g}"), table["slice"])
    # a location acquired twice keeps its last acquisition
    series = (table[ok].assign(loc=loc[ok], folder_no=table.loc[ok, "slice"].str.extract(r"(\d+)$")[0].astype(float))
              .groupby(["case", "series_id"], as_index=False)
              .agg(loc=("loc", "first"), SeriesNumber=("SeriesNumber", "max"),
                   AcquisitionTime=("AcquisitionTime", "max"), folder_no=("folder_no", "first")))
    series = series.sort_values(["case", "loc", "SeriesNumber", "AcquisitionTime", "folder_no"])
    series["superseded"] = series.duplicated(["case", "loc"], keep="last")
    kept = series[~series["superseded"]].copy()
    kept["slice_index"] = kept.groupby("case")["loc"].rank(method="first").astype(int) - 1
    kept["n_slices"] = kept.groupby("case")["slice_index"].transform("size")
    table = table.merge(series[["case", "series_id", "superseded"]], on=["case", "series_id"], how="left")
    table = table.merge(kept[["case", "series_id", "slice_index", "n_slices"]], on=["case", "series_id"], how="left")
    table["superseded"] = table["superseded"].fillna(False).astype(bool)
    table["usable"] = table["error"].isna() & ~table["superseded"]
    table = table.sort_values(["case", "series_id", "InstanceNumber", "TriggerTime", "path"])
    table["frame"] = table[table["usable"]].groupby(["case", "series_id"]).cumcount()
    table["n_frames"] = table[table["usable"]].groupby(["case", "series_id"])["path"].transform("size")
    case_rank = {case: i for i, case in enumerate(sorted(table["case"].unique(), key=_case_key))}
    table = (table.assign(_case_rank=table["case"].map(case_rank))
             .sort_values(["_case_rank", "slice_index", "frame", "path"], na_position="last")
             .drop(columns="_case_rank"))
    for col in ("slice_index", "n_slices", "frame", "n_frames"):
        table[col] = table[col].astype("Int64")
    return table


def _join_labels(root: Path, table: pd.DataFrame) -> pd.DataFrame:
    labels_path = root / "lv_centroids.csv"
    if labels_path.is_file():
        labels = pd.read_csv(labels_path)
        labels["path"] = labels["path"].astype(str).str.replace("\\", "/", regex=False).str.lstrip("./")
        labels = labels.drop_duplicates("path", keep="last").rename(columns={"row": "lv_row", "col": "lv_col"})
        table = table.merge(labels[["path", "lv_row", "lv_col"]], on="path", how="left")
    else:
        table["lv_row"], table["lv_col"] = np.nan, np.nan
    mask_rel = "lv_masks/" + table["path"].str.slice(0, -4) + ".png"
    table["mask_path"] = [m if (root / m).is_file() else None for m in mask_rel]
    return table


def usable_frames(frames: pd.DataFrame) -> pd.DataFrame:
    """The frames a model reads: readable and not superseded (a new table)."""
    return frames[frames["usable"]].reset_index(drop=True)


def summary(frames: pd.DataFrame) -> dict:
    """Counts a notebook reports: files, unreadable (with reasons), superseded, usable..."""
    usable = frames[frames["usable"]]
    reasons = frames.loc[frames["error"].notna(), "error"].str.split(":").str[0].value_counts().to_dict()
    return {"n_files": int(len(frames)), "n_unreadable": int(frames["error"].notna().sum()),
            "unreadable_reasons": reasons, "n_superseded": int(frames["superseded"].sum()),
            "n_frames": int(len(usable)), "n_cases": int(usable["case"].nunique()),
            "n_series": int(usable.groupby(["case", "series_id"]).ngroups),
            "n_labelled": int(usable["lv_row"].notna().sum()),
            "n_with_mask": int(usable["mask_path"].notna().sum())}


def load_train_csv(root: str | os.PathLike) -> pd.DataFrame:
    """``train.csv`` as a table: ``Id`` (the case folder name, str), ``Systole``, ``Diastole`` (mL)."""
    root = layouts.check_layout("dsb2", root)
    path = root / "train.csv"
    if not path.is_file():
        raise layouts.layout_error("dsb2", root, "train.csv is missing")
    table = pd.read_csv(path, dtype={"Id": str})
    return table.drop_duplicates("Id", keep="last").reset_index(drop=True)


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """Pixels of one frame as float32 ``(rows, cols)`` (MR signal, arbitrary units).

    Rescale slope/intercept are applied when present. Raises ``ValueError`` naming the file
    and the reason when its pixels cannot be decoded (e.g. the codec package that would help).
    """
    from .dicom import read_hu

    # The same rescale as for CT, without the RSNA repair: that CT-specific condition
    # (unsigned pixels, intercept >= -100) holds for ordinary MR frames.
    return read_hu(path, repair=False)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A PNG mask as a boolean ``(rows, cols)`` array (any non-zero pixel is foreground)."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L")) > 0


def load_series(frames: pd.DataFrame, root: str | os.PathLike | None = None) -> np.ndarray:
    """Stack the frames of ONE series (rows of :func:`index_frames`) in cycle order: ``(T, H, W)`` float32.

    ``frames`` must be usable rows of a single ``(case, series_id)``; paths are read from
    ``abs_path`` (or ``root / path`` when ``root`` is given). Raises ``ValueError`` for an
    unreadable frame or frames of different sizes.
    """
    frames = frames.sort_values("frame")
    paths = frames["abs_path"] if root is None else [Path(root) / p for p in frames["path"]]
    stack = [read_frame(p) for p in paths]
    if len({s.shape for s in stack}) > 1:
        raise ValueError("frames of different sizes")
    return np.stack(stack)


def load_series_masks(frames: pd.DataFrame, root: str | os.PathLike) -> np.ndarray:
    """Masks of one series in cycle order, ``(T, H, W)`` bool; frames without a mask are all False."""
    frames = frames.sort_values("frame")
    shape = (int(frames["rows"].iloc[0]), int(frames["cols"].iloc[0]))
    return np.stack([read_mask(Path(root) / m) if isinstance(m, str) else np.zeros(shape, bool)
                     for m in frames["mask_path"]])
