"""Read the HCP-style brain MRI layout (``../shared/DATASETS.md`` §4) into a subjects × voxels study.

The layout::

    brain_nii/<Subject>.nii  or  <Subject>.nii.gz     one 3D T1w volume per subject
    subjects.csv                                      Subject,class  (1, -1; 0 = unlabelled)

Three calls take it from files to arrays:

* :func:`index_subjects` — one row per file: ``subject``, ``path``, ``label`` (1, -1, or 0
  when the class is 0 or the subject has no row), ``status`` (``ok`` / ``unlabelled`` /
  ``unreadable``) and ``error`` (the reason a file is unreadable). Headers are read and the
  data length checked, no voxels loaded.
* :func:`load_volumes` — every labelled readable subject as a cube of ``volume_size³``
  voxels on one common world grid, plus the aligned table and that grid's affine. Each
  volume is loaded once, in parallel (joblib), and the result cached beside the data.
* :func:`split` — a stratified subject split (one volume per subject).

The volume pipeline, per subject (:func:`prepare_volume`):

1. ``nifti.load_canonical``: RAS+ orientation (any stored axis order / flips / tilt).
2. Resample onto a common **lattice** of ``voxel_size_mm`` voxels whose centres sit at
   integer multiples of the voxel size in world mm, so all subjects share one grid.
3. Crop to ``crop_mm`` (a world box ``((x0, x1), (y0, y1), (z0, z1))`` in RAS mm). With
   ``crop_mm=None`` the box is the smallest one holding every subject's brain (each
   subject's foreground bounding box, :func:`helpers.nifti.foreground_mask`, united).
   The seed study cropped 256³ to 155×165×195 voxels; a box in mm says the same thing
   for any voxel size.
4. Zoom the box to a cube of ``volume_size³`` voxels (linear interpolation, corner voxel
   centres kept), so PCA and CNNs get one fixed shape.
5. Intensity normalisation: divide by the subject's **median foreground intensity**
   (foreground as in step 3), so brain tissue sits near 1 and background near 0 whatever
   the scanner gain.

Voxelwise models assume the subjects are registered to a common space (HCP's
``MNINonLinear`` volumes are in MNI152 space, as is the synthetic stand-in); steps 1–4 make
the grids identical, they do not register brains.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from . import cache, layouts, nifti
from .io import error_reason

#: Default common voxel size (mm) before cropping: MNI152's standard 2 mm grid.
VOXEL_SIZE_MM = 2.0
CACHE_VERSION = 1


# --------------------------------------------------------------------------------- index
def _read_subjects_csv(root: Path) -> tuple[dict[str, float], list[str]]:
    """``{subject: class}`` from ``subjects.csv`` (last row wins) and a list of problems."""
    path = root / "subjects.csv"
    if not path.is_file():
        return {}, ["subjects.csv missing: every subject is unlabelled"]
    try:
        table = pd.read_csv(path, dtype={"Subject": str})
    except Exception as err:  # noqa: BLE001
        return {}, [f"subjects.csv unreadable ({type(err).__name__}: {err}): every subject is unlabelled"]
    cols = {c.strip().lower(): c for c in table.columns}
    if "subject" not in cols or "class" not in cols:
        return {}, [f"subjects.csv lacks Subject/class columns (has {list(table.columns)})"]
    subjects = table[cols["subject"]].astype(str).str.strip()
    classes = pd.to_numeric(table[cols["class"]], errors="coerce")
    return dict(zip(subjects, classes)), []


def _header_row(path: Path) -> dict:
    try:
        header = nifti.read_header(path)
        return {"error": None, "shape": "x".join(map(str, header["shape"])),
                "voxel_size_mm": "x".join(f"{v:g}" for v in header["voxel_size_mm"]),
                "orientation": header["orientation"], "format": header["format"]}
    except nifti.NiftiReadError as err:
        return {"error": error_reason(err)}


def index_subjects(root: str | os.PathLike, n_jobs: int = 1) -> pd.DataFrame:
    """One row per NIfTI file in ``brain_nii/``, joined to ``subjects.csv``.

    Columns: ``subject`` (file name without ``.nii``/``.nii.gz``), ``path``, ``label``
    (1 or -1; 0 for class 0, a missing row or an unusable class value), ``status``
    (``"ok"`` labelled and readable, ``"unlabelled"``, ``"unreadable"`` — unreadable wins),
    ``error`` (the reason; missing when the file read), and header facts (``shape``, ``voxel_size_mm``,
    ``orientation``, ``format``). Readability is checked at header level plus the data
    length (truncated files are caught); errors that only a full read reveals are recorded
    later by :func:`load_volumes`. A second file for the same subject is marked unreadable
    (``duplicate``). ``table.attrs`` holds the counts (:func:`summary`) and
    ``n_missing_files`` (``subjects.csv`` rows without a file). Nothing raises for bad
    files; a missing/empty dataset folder raises one :class:`helpers.layouts.DatasetLayoutError`.
    """
    from joblib import Parallel, delayed

    root = layouts.check_layout("hcp", root)
    files = sorted(p for p in (root / "brain_nii").iterdir() if p.is_file() and nifti.is_nifti(p))
    classes, problems = _read_subjects_csv(root)
    headers = Parallel(n_jobs=n_jobs)(delayed(_header_row)(p) for p in files) if files else []
    rows, seen = [], {}
    for path, header in zip(files, headers):
        subject = nifti.stem(path)
        value = classes.get(subject, np.nan)
        label = int(value) if value in (1, -1) else 0
        row = {"subject": subject, "path": str(path), "label": label, **header}
        if subject in seen:
            row["error"] = f"duplicate: subject {subject} also stored as {Path(seen[subject]).name}"
        seen.setdefault(subject, str(path))
        row["status"] = "unreadable" if row["error"] else ("ok" if label != 0 else "unlabelled")
        rows.append(row)
    columns = ["subject", "path", "label", "status", "error", "shape", "voxel_size_mm", "orientation", "format"]
    table = pd.DataFrame(rows, columns=columns)
    table["label"] = table["label"].astype(int)
    table.attrs.update(summary(table))
    table.attrs["n_missing_files"] = int(len(set(classes) - set(table["subject"])))
    table.attrs["problems"] = problems
    return table


def summary(table: pd.DataFrame) -> dict:
    """``n_subjects`` (files), ``n_labelled``, ``n_unreadable``, ``n_unlabelled`` of an index table."""
    status = table["status"].value_counts()
    return {"n_subjects": int(len(table)), "n_labelled": int(status.get("ok", 0)),
            "n_unreadable": int(status.get("unreadable", 0)), "n_unlabelled": int(status.get("unlabelled", 0))}


# --------------------------------------------------------------------------------- volumes
def _lattice(box_mm: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer lattice indices (inclusive lo, hi) of the voxel centres k·voxel inside a world box."""
    return np.ceil(box_mm[:, 0] / voxel - 1e-6).astype(int), np.floor(box_mm[:, 1] / voxel + 1e-6).astype(int)


def _lattice_affine(lo: np.ndarray, voxel: float) -> np.ndarray:
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = lo * voxel
    return affine


def prepare_volume(path: str | os.PathLike, voxel_size_mm: float = VOXEL_SIZE_MM,
                   crop_mm=None, resample: bool = True) -> dict:
    """Steps 1–3 for one file: canonical, on the world lattice, cropped to its brain box.

    Returns ``{"volume": float32, "lo": lattice index of voxel [0, 0, 0], "hi": of the last
    voxel, "error": None}`` or ``{"error": reason}``; the volume covers the subject's
    foreground bounding box (intersected with ``crop_mm`` when given). ``resample=False``
    stops before the resampling (no ``volume``: the box only, for a first pass). Never
    raises for a bad file.
    """
    try:
        array, affine = nifti.load_canonical(path)
        bbox = nifti.bounding_box(nifti.foreground_mask(array))
        if bbox is None:
            return {"error": f"{path}: empty volume (no foreground)"}
        corners = np.array([[a, b, c] for a in (bbox[0][0], bbox[1][0]) for b in (bbox[0][1], bbox[1][1])
                            for c in (bbox[0][2], bbox[1][2])], dtype=float)
        world = nifti.apply_affine(affine, corners)
        box = np.stack([world.min(axis=0), world.max(axis=0)], axis=1)
        if crop_mm is not None:
            crop = np.asarray(crop_mm, dtype=float)
            box = np.stack([np.maximum(box[:, 0], crop[:, 0]), np.minimum(box[:, 1], crop[:, 1])], axis=1)
        lo, hi = _lattice(box, voxel_size_mm)
        if np.any(hi < lo):
            return {"error": f"{path}: brain lies outside crop_mm {np.asarray(crop_mm).tolist()}"}
        if not resample:
            return {"lo": lo, "hi": hi, "error": None}
        volume = nifti.resample_to_grid(array, affine, _lattice_affine(lo, voxel_size_mm), hi - lo + 1)
        return {"volume": volume, "lo": lo, "hi": hi, "error": None}
    except nifti.NiftiReadError as err:   # its message names the file
        return {"error": error_reason(err)}
    except Exception as err:  # noqa: BLE001 - recorded, the dataset goes on
        return {"error": f"{path}: {error_reason(err)}"}


def _to_cube(part: dict, lo: np.ndarray, shape: np.ndarray, volume_size: int) -> np.ndarray:
    """Steps 3–5: paste into the common box, zoom to the cube, normalise by the foreground median."""
    from scipy import ndimage

    box = np.zeros(tuple(shape), dtype=np.float32)
    start = part["lo"] - lo
    src = tuple(slice(max(0, -s), min(n, b - s)) for s, n, b in zip(start, part["volume"].shape, shape))
    dst = tuple(slice(max(0, s), max(0, s) + (sl.stop - sl.start)) for s, sl in zip(start, src))
    box[dst] = part["volume"][src]
    step = (np.asarray(shape) - 1.0) / max(volume_size - 1, 1)        # cube voxel in box voxels
    cube = ndimage.affine_transform(nifti._antialias(box, step), step, output_shape=(volume_size,) * 3,
                                    order=1, mode="nearest", output=np.float32)
    mask = nifti.foreground_mask(cube)
    scale = float(np.median(cube[mask])) if mask.any() else float(np.abs(cube).max() or 1.0)
    return cube / np.float32(scale if scale > 0 else 1.0)


def _cube_affine(lo: np.ndarray, shape: np.ndarray, voxel: float, volume_size: int) -> np.ndarray:
    """Affine of the cube grid: corner voxel centres at the box's corner voxel centres."""
    affine = np.eye(4)
    affine[:3, :3] = np.diag(voxel * (np.asarray(shape) - 1.0) / (volume_size - 1))
    affine[:3, 3] = lo * voxel
    return affine


def _cube(path: str, voxel_size_mm: float, crop_mm, lo: np.ndarray, shape: np.ndarray, volume_size: int) -> dict:
    """One subject end to end in a worker: prepared (steps 1–3) and turned into its cube (3–5)."""
    part = prepare_volume(path, voxel_size_mm, crop_mm)
    if part["error"]:
        return {"error": part["error"]}
    return {"cube": _to_cube(part, lo, shape, volume_size), "error": None}


def _build(table: pd.DataFrame, volume_size: int, voxel_size_mm: float, crop_mm, n_jobs: int) -> dict:
    """Two passes, so that at most one resampled volume per worker is ever in memory.

    Without ``crop_mm`` a first pass reads each file for its brain box only (no resampling)
    and the common box is their union; then each worker prepares one subject and returns
    its cube (``volume_size³``, 0.5 MB at 50³), never the resampled volume.
    """
    from joblib import Parallel, delayed

    usable = table[table["status"] == "ok"]
    paths, subjects = usable["path"].tolist(), usable["subject"].tolist()
    if crop_mm is None:
        boxes = Parallel(n_jobs=n_jobs)(delayed(prepare_volume)(p, voxel_size_mm, None, False) for p in paths)
        good = [b for b in boxes if not b["error"]]
        if good:
            lo = np.min([b["lo"] for b in good], axis=0)
            hi = np.max([b["hi"] for b in good], axis=0)
    else:
        lo, hi = _lattice(np.asarray(crop_mm, dtype=float), voxel_size_mm)
        boxes = [{"error": None}] * len(paths)
    errors = {s: b["error"] for s, b in zip(subjects, boxes) if b["error"]}
    todo = [(s, p) for s, p, b in zip(subjects, paths, boxes) if not b["error"]]
    if not todo:
        raise ValueError(f"no labelled subject could be loaded ({len(errors)} failed); first errors: "
                         + "; ".join(list(errors.values())[:3]))
    shape = hi - lo + 1
    cubes = Parallel(n_jobs=n_jobs)(delayed(_cube)(p, voxel_size_mm, crop_mm, lo, shape, volume_size)
                                    for _, p in todo)
    errors.update({s: c["error"] for (s, _), c in zip(todo, cubes) if c["error"]})
    good = [(s, c["cube"]) for (s, _), c in zip(todo, cubes) if not c["error"]]
    if not good:
        raise ValueError(f"no labelled subject could be loaded ({len(errors)} failed); first errors: "
                         + "; ".join(list(errors.values())[:3]))
    volumes = np.stack([c for _, c in good]).astype(np.float32)
    return {"volumes": volumes, "affine": _cube_affine(lo, shape, voxel_size_mm, volume_size),
            "subjects": np.array([s for s, _ in good]), "failed_subjects": np.array(list(errors)),
            "failed_errors": np.array(list(errors.values()))}


def load_volumes(root: str | os.PathLike, volume_size: int = 50, voxel_size_mm: float = VOXEL_SIZE_MM,
                 crop_mm=None, n_jobs: int = -1) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Every labelled, readable subject as a ``volume_size³`` cube on one world grid.

    Parameters
    ----------
    root : dataset folder in the HCP-style layout.
    volume_size : edge of the output cube, in voxels (50 in the full teaching profile).
    voxel_size_mm : common voxel size (mm) before cropping (default 2.0, MNI152's grid).
    crop_mm : world box ``((x0, x1), (y0, y1), (z0, z1))`` in RAS mm, or ``None`` for the
        smallest box holding every subject's brain (see the module docstring).
    n_jobs : joblib workers (``-1`` all cores). Without ``crop_mm`` each file is read twice
        (its brain box, then its cube), so that at most one resampled volume per worker is
        in memory, whatever the number of subjects.

    Returns
    -------
    volumes : float32 ``(n, volume_size, volume_size, volume_size)``, axes in RAS order,
        intensities divided by each subject's median foreground intensity.
    table : one row per volume, aligned: ``subject``, ``label`` (1/-1), ``path``, header
        facts. ``table.attrs`` holds ``n_subjects``, ``n_labelled``, ``n_unreadable``,
        ``n_unlabelled`` after loading (a file that failed at load time counts as unreadable
        and is listed in ``table.attrs["unreadable"]`` with its reason).
    affine : 4×4, maps cube voxel indices to world RAS mm (for nilearn overlays:
        ``nibabel.Nifti1Image(heatmap, affine)``).

    The result is cached beside the data (``helpers.cache``), keyed by the files' paths,
    sizes and modification times and by the parameters.
    """
    root = Path(root)
    index = index_subjects(root, n_jobs=1)
    crop = None if crop_mm is None else [[float(a), float(b)] for a, b in crop_mm]
    sources = list(index["path"]) + [str(root / "subjects.csv")]
    key = cache.fingerprint(sources, stage="hcp-volumes", version=CACHE_VERSION, volume_size=int(volume_size),
                            voxel_size_mm=float(voxel_size_mm), crop_mm=crop)
    arrays = cache.cached_arrays(cache.cache_dir(root, "hcp") / f"volumes-{key}.npz",
                                 lambda: _build(index, int(volume_size), float(voxel_size_mm), crop, n_jobs))
    failed = dict(zip(arrays["failed_subjects"].tolist(), arrays["failed_errors"].tolist()))
    index = index.copy()
    hit = index["subject"].isin(failed) & (index["status"] == "ok")
    index.loc[hit, "error"] = index.loc[hit, "subject"].map(failed)
    index.loc[hit, "status"] = "unreadable"
    order = {s: i for i, s in enumerate(arrays["subjects"].tolist())}
    table = index[index["subject"].isin(order) & (index["status"] == "ok")].copy()
    table = table.assign(_o=table["subject"].map(order)).sort_values("_o").drop(columns="_o").reset_index(drop=True)
    table = table[["subject", "label", "path", "shape", "voxel_size_mm", "orientation", "format"]]
    table.attrs = {**summary(index), "n_missing_files": index.attrs.get("n_missing_files", 0)}
    bad = index["status"] == "unreadable"
    table.attrs["unreadable"] = dict(zip(index.loc[bad, "subject"], index.loc[bad, "error"].astype(str)))
    table.attrs["unlabelled"] = index.loc[index["status"] == "unlabelled", "subject"].tolist()
    return arrays["volumes"], table, np.asarray(arrays["affine"], dtype=np.float64)


# --------------------------------------------------------------------------------- matrices
def brain_mask(volumes: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Voxels of the cube that hold brain in the mean volume (``nifti.foreground_mask``).

    Restricting the subjects × voxels matrix to these drops the empty background, whose
    noise would otherwise get unit variance after per-voxel scaling. It uses no labels, so
    computing it on all subjects leaks nothing about the classes.
    """
    return nifti.foreground_mask(np.asarray(volumes).mean(axis=0), fraction)


def to_matrix(volumes: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Subjects × voxels float32 matrix: each volume flattened (only ``mask`` voxels if given)."""
    volumes = np.asarray(volumes, dtype=np.float32)
    return volumes[:, mask] if mask is not None else volumes.reshape(len(volumes), -1)


def from_matrix(rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_matrix`: rows ``(n, n_voxels)`` back to volumes ``(n, *mask.shape)``, 0 outside."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float32))
    out = np.zeros((len(rows), *mask.shape), dtype=np.float32)
    out[:, mask] = rows
    return out


# --------------------------------------------------------------------------------- evaluation
def cube_world_coordinates(affine: np.ndarray, volume_size: int) -> np.ndarray:
    """World RAS mm of every cube voxel centre, shape ``(s, s, s, 3)``."""
    ijk = np.stack(np.meshgrid(*[np.arange(volume_size)] * 3, indexing="ij"), axis=-1)
    return nifti.apply_affine(affine, ijk)


def region_mask(root: str | os.PathLike, volume_size: int = 50, voxel_size_mm: float = VOXEL_SIZE_MM,
                crop_mm=None, affine: np.ndarray | None = None, n_jobs: int = -1) -> np.ndarray | None:
    """Boolean ``(s, s, s)`` mask of the generator's class-difference region on the cube grid.

    The region comes from ``root/ground_truth.json`` (``region``: a sphere ``center_mm`` /
    ``radius_mm``, or a ``box_mm``, in world RAS mm), so it maps onto any orientation or
    voxel size. Pass the ``affine`` that :func:`load_volumes` returned, or the same
    parameters (the cached volumes are then reused to get it). Voxels whose centre lies in
    the region are True; at least the voxel nearest the centre is. Returns ``None`` for a
    dataset without ground truth (a real download never has ``ground_truth.json``): the
    maps can then be shown but not scored (:func:`helpers.cam.check_against_region` says so).
    """
    truth = layouts.ground_truth(root)
    region = None if truth is None else truth.get("region")
    if region is None:
        return None
    if affine is None:
        _, _, affine = load_volumes(root, volume_size, voxel_size_mm, crop_mm, n_jobs)
    world = cube_world_coordinates(affine, volume_size)
    if "center_mm" in region:
        centre = np.asarray(region["center_mm"], dtype=float)
        mask = ((world - centre) ** 2).sum(axis=-1) <= float(region["radius_mm"]) ** 2
    else:
        box = np.asarray(region["box_mm"], dtype=float)
        mask = np.all((world >= box[:, 0]) & (world <= box[:, 1]), axis=-1)
        centre = box.mean(axis=1)
    if not mask.any():
        nearest = np.unravel_index(np.argmin(((world - centre) ** 2).sum(axis=-1)), mask.shape)
        mask[nearest] = True
    return mask


def check_aligned(tables) -> list:
    """The subject list shared by several :func:`load_volumes` tables (e.g. one per cube size).

    Volumes at different sizes come from the same files, so their rows must be the same
    subjects in the same order for one split to index them all; raises ``ValueError``
    (naming the first differing table) otherwise, never silently misaligns.
    """
    tables = list(tables)
    first = list(tables[0]["subject"])
    for k, other in enumerate(tables[1:], start=1):
        if list(other["subject"]) != first:
            raise ValueError(f"table {k} holds other subjects (or another order) than table 0: cannot share one split")
    return first


def grid_box_mm(affine: np.ndarray, volume_size: int) -> list:
    """The world box ``((x0, x1), (y0, y1), (z0, z1))`` (RAS mm) spanned by a cube grid.

    Passing it as ``crop_mm`` to :func:`load_volumes` (same ``voxel_size_mm``) puts another
    dataset on exactly this grid (the same ``affine``), so a model trained on one study sees
    the same anatomy at the same voxels of another (external validation).
    """
    affine = np.asarray(affine, dtype=float)
    lo = affine[:3, 3]
    hi = lo + np.diag(affine[:3, :3]) * (int(volume_size) - 1)
    return [[float(a), float(b)] for a, b in zip(np.minimum(lo, hi), np.maximum(lo, hi))]


def split(table: pd.DataFrame, test_size: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split of the rows of ``table`` (positions), by subject.

    One volume per subject (:func:`load_volumes` keeps one), so a row split is a subject
    split; it is also checked. Returns sorted integer positions ``(train_idx, test_idx)``
    into ``table`` and the aligned volumes. Notebooks 05 and 08 use the same call so their
    models are compared on the same held-out subjects.
    """
    from sklearn.model_selection import train_test_split

    if table["subject"].duplicated().any():
        raise ValueError("split expects one row per subject")
    positions = np.arange(len(table))
    train, test = train_test_split(positions, test_size=test_size, random_state=seed,
                                   stratify=table["label"].to_numpy())
    return np.sort(train), np.sort(test)
