"""Synthetic stand-ins for the four public datasets, in their exact layouts.

Each dataset has its own module (``rsna``, ``dsb2``, ``luna16``, ``hcp``) with
``generate(out, size, seed) -> dict``: it writes the dataset under ``out`` and returns the
ground truth, which is also written to ``out/ground_truth.json``. Generation is
deterministic per seed. It is written into a temporary sibling folder and renamed into
place when complete, so an interrupted run never leaves a half dataset that looks whole,
and re-running over an existing dataset is safe (the complete one is kept).

Command line: ``python -m helpers.synthetic --out data/synthetic/smoke --size smoke``.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ..layouts import GROUND_TRUTH  # the one file only the generator writes

DATASETS = ("rsna", "dsb2", "luna16", "hcp")
SIZES = ("smoke", "full")
#: Files only our generators write: not part of any public layout, so optional for every reader.
GENERATOR_ONLY = (GROUND_TRUTH, "ground_truth_lesions.csv")


def image_header(sop_class_uid: str, modality: str, patient_id: str, study_uid: str, series_uid: str,
                 rows: int, cols: int, bits_stored: int, pixel_representation: int):
    """The DICOM header every generated (and benchmark) image shares: a ``pydicom.Dataset``.

    File meta (SOP class, explicit VR little endian), SOP class, modality, patient, study
    and series UIDs, and a single-channel MONOCHROME2 16-bit pixel description. Callers add
    their modality's own tags and, per instance, the SOP instance UID and ``PixelData``.
    pydicom writes elements in tag order, so where a tag is set does not change the file.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.BitsAllocated, ds.BitsStored = 16, int(bits_stored)
    ds.HighBit, ds.PixelRepresentation = int(bits_stored) - 1, int(pixel_representation)
    return ds


def is_complete(root: str | os.PathLike) -> bool:
    """True when ``root`` holds a finished synthetic dataset (its ground truth is written last)
    written by the current version of its generator (an older one is stale: regenerate)."""
    if not (Path(root) / GROUND_TRUTH).is_file():
        return False
    try:
        truth = load_ground_truth(root)
        module = importlib.import_module(f"{__name__}.{truth['dataset']}")
    except (ValueError, KeyError, ImportError):
        return False
    return truth.get("generator_version") == module.VERSION


def load_ground_truth(root: str | os.PathLike) -> dict:
    """The ground truth written beside a synthetic dataset."""
    return json.loads((Path(root) / GROUND_TRUTH).read_text())


def generate(name: str, out: str | os.PathLike, size: str = "smoke", seed: int = 0,
             overwrite: bool = False) -> dict:
    """Generate dataset ``name`` under ``out`` and return its ground truth.

    An existing complete dataset is kept (and its ground truth returned) unless
    ``overwrite=True``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
    out = Path(out)
    if is_complete(out) and not overwrite:
        return load_ground_truth(out)
    module = importlib.import_module(f"{__name__}.{name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        truth = module.generate(tmp, size=size, seed=seed)
        truth = {"dataset": name, "size": size, "seed": seed, "generator_version": module.VERSION, **truth}
        from ..io import write_json

        write_json(tmp / GROUND_TRUTH, truth)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return truth


def generate_all(out: str | os.PathLike, size: str = "smoke", seed: int = 0,
                 names=DATASETS, overwrite: bool = False) -> dict:
    """Generate every dataset under ``out/<name>``; returns {name: seconds taken}."""
    timings = {}
    for name in names:
        start = time.perf_counter()
        generate(name, Path(out) / name, size=size, seed=seed, overwrite=overwrite)
        timings[name] = round(time.perf_counter() - start, 2)
    return timings
