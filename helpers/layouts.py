"""The four public dataset layouts (``../shared/DATASETS.md``): names, markers, one clear error.

The bottom of the dataset layer: the readers (:mod:`helpers.rsna`, :mod:`helpers.luna16`,
:mod:`helpers.dsb2`, :mod:`helpers.hcp`) check a folder here and never import the synthetic
generators; :func:`helpers.datasets.resolve`, the entry point that generates a stand-in on
demand, sits above them. :func:`ground_truth` reads the one file only our generator writes,
``ground_truth.json``, and returns ``None`` where it is absent (every real download).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

GROUND_TRUTH = "ground_truth.json"
"""Written last by the generator beside a synthetic dataset; never part of a real download."""

#: The four public layouts, as DATASETS.md states them (shown in error messages).
LAYOUTS = {
    "rsna": ("RSNA Intracranial Hemorrhage Detection (head CT)",
             "stage_2_train/ID_<9 hex>.dcm   one axial slice per file\n"
             "stage_2_train.csv              columns: ID,Label (six rows per image)"),
    "dsb2": ("Kaggle Second Annual Data Science Bowl (cardiac cine MRI)",
             "train/<case>/study/sax_<n>/IM-<4 digits>-<4 digits>.dcm\n"
             "train.csv                      columns: Id,Systole,Diastole\n"
             "lv_centroids.csv               columns: path,row,col"),
    "luna16": ("LUNA16 (lung CT nodules)",
               "subset<k>/<seriesuid>.mhd + <seriesuid>.raw\n"
               "annotations.csv                columns: seriesuid,coordX,coordY,coordZ,diameter_mm"),
    "hcp": ("HCP-style T1 brain MRI, two classes",
            "brain_nii/<Subject>.nii or <Subject>.nii.gz\n"
            "subjects.csv                   columns: Subject,class (1, -1; 0 = unlabelled)"),
}

#: A file or folder whose presence marks each layout.
MARKERS = {
    "rsna": ["stage_2_train"],
    "dsb2": ["train"],
    "luna16": ["annotations.csv"],
    "hcp": ["brain_nii"],
}


class DatasetLayoutError(FileNotFoundError):
    """The folder does not hold the expected public layout."""


def layout_error(name: str, root: Path, problem: str) -> DatasetLayoutError:
    title, layout = LAYOUTS[name]
    return DatasetLayoutError(
        f"{problem}: {root}\nExpected the {title} layout (see ../shared/DATASETS.md):\n"
        + "\n".join("  " + line for line in layout.splitlines())
        + "\nLeave data_dir = None to use the synthetic dataset that 00_setup generates.")


def check_layout(name: str, root: str | os.PathLike) -> Path:
    """Return ``root`` resolved, or raise one clear error naming the expected layout."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(LAYOUTS)}")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise layout_error(name, root, "dataset folder does not exist")
    if not any(root.iterdir()):
        raise layout_error(name, root, "dataset folder is empty")
    missing = [m for m in MARKERS[name] if not (root / m).exists()]
    if missing:
        raise layout_error(name, root, f"dataset folder lacks {', '.join(missing)}")
    return root



def ground_truth(root: str | os.PathLike) -> dict | None:
    """The generator's ``ground_truth.json`` beside a dataset, or ``None`` (real data has none)."""
    path = Path(root) / GROUND_TRUTH
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
