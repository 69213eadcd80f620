"""Site variants: a dataset in its public layout, as another scanner or hospital would give it.

``make_variant(name, source, out, **knobs)`` reads a dataset folder in one of the four public
layouts (``../shared/DATASETS.md``; our generator's output or anyone else's) and writes a copy
in the same layout with the differences real sites show. The knobs are transforms of the
files, not of a generator, so they survive a rewrite of the generators:

``spacing_scale``
    pixel / voxel spacing × this factor (images resampled so the anatomy keeps its size in
    mm; > 1 means coarser images with fewer pixels, < 1 finer ones).
``noise``
    MR only (DSB2, HCP): extra Gaussian noise, as a fraction of the median signal.
``noise_hu``
    CT only (RSNA, LUNA16): extra Gaussian noise in Hounsfield units (a lower dose).
``gain``
    MR only: every intensity × this (scanner gain); CT values are physical and keep theirs.
``blur_mm``
    Gaussian blur of this sigma in mm (a softer reconstruction kernel or a coarser coil).
``transpose``
    DSB2: swap rows and columns of every frame (a 256×192 scanner becomes 192×256), with
    the orientation, centroids and masks carried along. HCP: store the volume in another
    axis order / orientation (the affine says so; readers reorient to RAS).
``max_items``
    keep only the first N patients / cases / series / subjects (sorted).

Labels, annotations and masks are transformed with the images, so they still hold.
Files that cannot be read are copied as they are (they stay broken). Generator-only files
(``ground_truth.json`` and the like) are never copied: a variant is what a user brings.
``python -m helpers.synthetic.variants --help`` builds one from the command line, and
``combine("luna16", [a, b], out)`` joins datasets into a larger one (more held-out series).
"""
from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ..io import atomic_dir
from . import GENERATOR_ONLY


@dataclass(frozen=True)
class Site:
    """How one site differs from the source data (see the module docstring)."""

    spacing_scale: float = 1.0
    noise: float = 0.0
    noise_hu: float = 0.0
    gain: float = 1.0
    blur_mm: float = 0.0
    transpose: bool = False
    max_items: int | None = None


#: A few sites unlike our defaults, used by ``bench/generalise.py``.
SITES = {
    "coarse-noisy": Site(spacing_scale=1.4, noise=0.06, noise_hu=25.0, gain=1.8, blur_mm=0.8, transpose=True),
    "fine-soft": Site(spacing_scale=0.8, noise=0.02, noise_hu=8.0, gain=0.6, blur_mm=1.2),
}


def _resample(image: np.ndarray, scale: float, order: int = 1) -> np.ndarray:
    """Resample a 2-D or 3-D array so its spacing is ``scale`` × the old one (same extent)."""
    if scale == 1.0:
        return image
    factor = 1.0 / scale
    return ndimage.zoom(image, factor, order=order, grid_mode=True, mode="grid-constant" if order == 0 else "nearest")


def _degrade(image: np.ndarray, spacing_mm, site: Site, noise_sd: float, rng) -> np.ndarray:
    out = image.astype(np.float32)
    if site.blur_mm > 0:
        out = ndimage.gaussian_filter(out, sigma=site.blur_mm / np.asarray(spacing_mm, float))
    if noise_sd > 0:
        out = out + rng.normal(0.0, noise_sd, out.shape).astype(np.float32)
    return out


def _new_point(rc, old_shape, new_shape) -> np.ndarray:
    """A (row, col, ...) position in pixel-centre coordinates after resampling to ``new_shape``."""
    ratio = np.asarray(new_shape, float) / np.asarray(old_shape, float)
    return (np.asarray(rc, float) + 0.5) * ratio - 0.5


# ----------------------------------------------------------------------------- DICOM layouts
def _store_dicom(ds, values: np.ndarray, path: Path, defective: bool, transpose: bool = False) -> None:
    """Write ``values`` (physical units) back through the file's own rescale and pixel format.

    A slice with the RSNA representation defect (``dicom.is_defective``) is written back
    *with* the defect (the inverse of ``dicom.repair_representation``), so the variant still
    plants exactly the files the cleaning must repair.
    """
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    signed = int(ds.PixelRepresentation) == 1
    bits = int(ds.BitsStored)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    if defective:
        stored = np.clip(np.round((values + 1000.0) / slope), 0, 4095) - 1000
        stored[stored < 0] += 4096
    else:
        stored = np.round((values - intercept) / slope)
    stored = np.clip(stored, lo, hi).astype(np.int16 if signed else np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.PixelData = stored.tobytes()
    if transpose and "ImageOrientationPatient" in ds:
        iop = [float(v) for v in ds.ImageOrientationPatient]
        ds.ImageOrientationPatient = iop[3:] + iop[:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=False)


def _rewrite_dicom(src: Path, dst: Path, site: Site, rng, mr: bool):
    """Resample / degrade one DICOM image; returns ``(old_shape, new_shape)`` or ``None``
    when the file cannot be decoded (it is then copied unchanged)."""
    import pydicom

    from .. import dicom

    try:
        ds = pydicom.dcmread(src)
        defective = not mr and dicom.is_defective(ds)
        values = dicom.read_hu(ds, repair=not mr)   # HU for CT (repaired), signal for MR
    except Exception:  # noqa: BLE001 - broken files stay broken in the variant
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return None
    spacing = np.asarray([float(v) for v in getattr(ds, "PixelSpacing", [1, 1])])
    if site.transpose:
        values, spacing = values.T, spacing[::-1]
    scale_noise = float(np.median(values[values > np.percentile(values, 50)])) if mr else 1.0
    values = _degrade(values, spacing, site, site.noise * scale_noise if mr else site.noise_hu, rng)
    if mr:
        values = values * site.gain
    old_shape = values.shape
    values = _resample(values, site.spacing_scale)
    ds.PixelSpacing = [f"{v:.6g}" for v in spacing * np.asarray(old_shape) / np.asarray(values.shape)]
    _store_dicom(ds, values, dst, defective, transpose=site.transpose)
    return old_shape, values.shape


def _rsna(source: Path, out: Path, site: Site, rng) -> dict:
    labels = pd.read_csv(source / "stage_2_train.csv")
    files = sorted((source / "stage_2_train").glob("*.dcm"))
    if site.max_items:
        import pydicom

        patient = {}
        for f in files:
            try:
                patient[f] = str(pydicom.dcmread(f, stop_before_pixels=True).PatientID)
            except Exception:  # noqa: BLE001
                patient[f] = ""
        keep = set(sorted({p for p in patient.values() if p})[: site.max_items])
        files = [f for f in files if patient[f] in keep]
    for f in files:
        _rewrite_dicom(f, out / "stage_2_train" / f.name, site, rng, mr=False)
    ids = {f.stem for f in files}
    labels[labels["ID"].str.rsplit("_", n=1).str[0].isin(ids)].to_csv(out / "stage_2_train.csv", index=False)
    return {"n_files": len(files)}


def _dsb2(source: Path, out: Path, site: Site, rng) -> dict:
    cases = sorted({p.name for p in (source / "train").iterdir() if p.is_dir()}, key=lambda c: (len(c), c))
    cases = cases[: site.max_items] if site.max_items else cases
    shapes = {}
    for case in cases:
        for f in sorted((source / "train" / case).rglob("*.dcm")):
            rel = f.relative_to(source).as_posix()
            shapes[rel] = _rewrite_dicom(f, out / rel, site, rng, mr=True)
    for name in ("train.csv",):
        table = pd.read_csv(source / name)
        table[table["Id"].astype(str).isin(cases)].to_csv(out / name, index=False)
    centroids = pd.read_csv(source / "lv_centroids.csv")
    centroids = centroids[centroids["path"].isin(shapes)].copy()
    moved = []
    for row, col, path in zip(centroids["row"], centroids["col"], centroids["path"]):
        shape = shapes[path]
        rc = (col, row) if site.transpose else (row, col)
        moved.append(_new_point(rc, *shape) if shape else np.array([row, col], float))
    if moved:
        centroids[["row", "col"]] = np.round(np.array(moved), 3)
    centroids.to_csv(out / "lv_centroids.csv", index=False)
    masks = source / "lv_masks"
    if masks.is_dir():
        from PIL import Image

        for png in sorted(masks.rglob("*.png")):
            rel = png.relative_to(masks).as_posix()[:-4] + ".dcm"   # lv_masks/<path minus .dcm>.png
            if shapes.get(rel) is None:
                continue
            mask = np.asarray(Image.open(png).convert("L")) > 0
            mask = mask.T if site.transpose else mask
            new = ndimage.zoom(mask.astype(np.float32), np.asarray(shapes[rel][1]) / np.asarray(mask.shape), order=1,
                               grid_mode=True, mode="grid-constant") >= 0.5
            dst = out / "lv_masks" / (rel[:-4] + ".png")
            dst.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((new * 255).astype(np.uint8)).save(dst)
    return {"n_cases": len(cases)}


# ----------------------------------------------------------------------------- LUNA16, HCP
def _luna16(source: Path, out: Path, site: Site, rng) -> dict:
    from .. import metaimage

    files = sorted(source.glob("subset*/*.mhd"))
    files = files[: site.max_items] if site.max_items else files
    for f in files:
        dst = out / f.relative_to(source)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            volume, spacing, origin, direction = metaimage.read_mhd(f)
        except Exception:  # noqa: BLE001 - broken series stay broken
            for part in (f, f.with_suffix(".raw")):
                if part.exists():
                    shutil.copyfile(part, out / part.relative_to(source))
            continue
        values = _degrade(volume, spacing, site, site.noise_hu, rng)
        new = _resample(values, site.spacing_scale)
        new_spacing = np.asarray(spacing, float) * np.asarray(volume.shape) / np.asarray(new.shape)
        # keep the world extent: the first voxel centre moves by half the change of voxel size
        shift_zyx = (new_spacing - np.asarray(spacing, float)) / 2
        new_origin = np.asarray(origin, float) + metaimage._direction(direction) @ shift_zyx[::-1]
        metaimage.write_mhd(dst, np.clip(np.round(new), -32768, 32767), new_spacing, new_origin, direction)
    uids = {f.stem for f in files}
    notes = pd.read_csv(source / "annotations.csv")
    notes[notes["seriesuid"].isin(uids)].to_csv(out / "annotations.csv", index=False)
    return {"n_series": len(files)}


def _hcp(source: Path, out: Path, site: Site, rng) -> dict:
    import nibabel as nib

    from .. import nifti

    files = sorted(p for p in (source / "brain_nii").iterdir() if nifti.is_nifti(p))
    files = files[: site.max_items] if site.max_items else files
    (out / "brain_nii").mkdir(parents=True, exist_ok=True)
    for f in files:
        dst = out / "brain_nii" / f.name
        try:
            img = nib.load(str(f))
            values = np.asarray(img.get_fdata(dtype=np.float32))
            affine = img.affine.copy()
        except Exception:  # noqa: BLE001
            shutil.copyfile(f, dst)
            continue
        zooms = nifti.voxel_sizes(affine)
        values = _degrade(values, zooms, site, site.noise * float(np.median(values[values > 0])), rng) * site.gain
        new = _resample(values, site.spacing_scale)
        step = np.asarray(values.shape, float) / np.asarray(new.shape, float)
        affine[:3, :3] = affine[:3, :3] * step
        affine[:3, 3] = affine[:3, 3] + img.affine[:3, :3] @ ((step - 1) / 2)
        if site.transpose:   # store as (j, i, k) with the first axis flipped: another orientation on disk
            new = np.flip(np.swapaxes(new, 0, 1), axis=0)
            swap = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
            flip = np.diag([-1.0, 1, 1, 1])
            flip[0, 3] = new.shape[0] - 1
            affine = affine @ swap @ flip
        nib.save(nib.Nifti1Image(np.maximum(new, 0).astype(np.float32), affine), str(dst))
    subjects = pd.read_csv(source / "subjects.csv")
    subjects[subjects["Subject"].astype(str).isin({nifti.stem(f) for f in files})].to_csv(out / "subjects.csv",
                                                                                         index=False)
    return {"n_subjects": len(files)}


WRITERS = {"rsna": _rsna, "dsb2": _dsb2, "luna16": _luna16, "hcp": _hcp}


def _recorded(out: Path) -> dict | None:
    """The knobs an existing variant was built with (``None`` if there is none)."""
    try:
        return json.loads((out / ".variant.json").read_text())
    except (OSError, ValueError):
        return None


def make_variant(name: str, source, out, site: Site | None = None, seed: int = 0, overwrite: bool = False,
                 **knobs) -> Path:
    """Write ``source`` (a ``name``-layout folder) as another site would give it to ``out``.

    ``site`` (or the same fields as keywords) sets the knobs; ``seed`` the noise. The copy is
    built in a temporary folder and moved into place, so a half-written variant is never read.
    An existing ``out`` built from the same source files (paths, sizes and modification times:
    a regenerated source is a new source) with the same knobs (its ``.variant.json``) is kept;
    one built otherwise is rebuilt, and ``overwrite`` always rebuilds. Returns ``out``.
    """
    from ..cache import fingerprint
    from ..layouts import check_layout

    site = site or Site(**knobs)
    source, out = check_layout(name, source), Path(out)
    files = [p for p in source.rglob("*") if p.is_file()]
    record = {**asdict(site), "seed": seed, "source": str(source), "source_files": fingerprint(files)}
    if not overwrite and _recorded(out) == record:
        return out
    with atomic_dir(out) as tmp:
        WRITERS[name](source, tmp, site, np.random.default_rng(seed))
        for extra in GENERATOR_ONLY:
            assert not list(tmp.rglob(extra)), f"a variant must not carry {extra}"
        (tmp / ".variant.json").write_text(json.dumps(record, indent=1))
    return out


def _combine_luna16(sources: list[Path], out: Path) -> dict:
    """LUNA16 folders side by side: subsets renumbered in order, annotations concatenated."""
    k, notes = 0, []
    for source in sources:
        for subset in sorted((p for p in source.glob("subset*") if p.is_dir()), key=lambda p: (len(p.name), p.name)):
            shutil.copytree(subset, out / f"subset{k}")
            k += 1
        notes.append(pd.read_csv(source / "annotations.csv"))
    table = pd.concat(notes, ignore_index=True)
    uids = [f.stem for f in out.glob("subset*/*.mhd")]
    if len(uids) != len(set(uids)):
        raise ValueError("the sources share series UIDs: they are not independent datasets")
    table.to_csv(out / "annotations.csv", index=False)
    return {"n_series": len(uids), "n_subsets": k}


#: Layouts that ``combine`` can join (one per dataset whose held-out set is small at our sizes).
COMBINERS = {"luna16": _combine_luna16}


def combine(name: str, sources, out, overwrite: bool = False) -> Path:
    """One larger dataset from several in the same layout (e.g. two generator seeds), for
    held-out sets big enough to measure on. Written atomically, like ``make_variant``."""
    from ..layouts import check_layout

    if name not in COMBINERS:
        raise ValueError(f"combine supports {sorted(COMBINERS)}, not {name!r}")
    sources, out = [check_layout(name, s) for s in sources], Path(out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        return out
    with atomic_dir(out) as tmp:
        COMBINERS[name](sources, tmp)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write a dataset as another site would give it.")
    parser.add_argument("name", choices=sorted(WRITERS))
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--site", choices=sorted(SITES), default=None, help="a preset (overrides the knobs)")
    parser.add_argument("--seed", type=int, default=0)
    for field, default in asdict(Site()).items():
        kind = (lambda v: v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else (
            int if field == "max_items" else float)
        parser.add_argument(f"--{field.replace('_', '-')}", type=kind, default=default)
    args = vars(parser.parse_args(argv))
    preset = args.pop("site")
    site = SITES[preset] if preset else Site(**{k: args[k] for k in asdict(Site())})
    print(make_variant(args["name"], args["source"], args["out"], site, seed=args["seed"], overwrite=True))


if __name__ == "__main__":
    main()
