"""Synthetic T1-weighted brain MRI in the HCP-style layout (``../shared/DATASETS.md`` §4).

Writes::

    brain_nii/<Subject>.nii  or  <Subject>.nii.gz     one 3D volume per subject
    subjects.csv                                      Subject,class  (1, -1; 0 = unlabelled)

**Anatomy.** Every subject is the MNI152 2009a T1 template (skull-stripped, shipped inside
nilearn's wheel, read offline from the package folder; BSD-3 licence with the McGill
notice) and its grey-matter probability map, warped by a smooth random deformation (a few
mm) plus a small global scale/shift, with a multiplicative bias field, a per-subject grey/
white contrast and scanner gain, and Rician noise. World coordinates are MNI mm (RAS+), as
in HCP's ``MNINonLinear`` volumes.

**Classes.** Class 1 subjects have local grey-matter atrophy in a sphere defined in world
MNI mm (``ground_truth["region"]``): grey matter there darkens towards CSF by a random
subject amount (class -1 draws a small amount too, so classes overlap). Every subject also
gets atrophy of the same kind in two random *distractor* spheres elsewhere, unrelated to
the class. The effect is set so linear models do clearly better than chance while nearest
neighbours struggle (see notebook 05).

**Storage.** Each subject draws, independently of its class, an orientation (axis order and
flips, e.g. RAS, LAS, LPS, PSR, ASL; one in a few slightly oblique), a voxel size
(1.5–2.5 mm, some anisotropic), a field of view and the format (``.nii`` / ``.nii.gz``),
so no metadata predicts the label. Array and affine always describe the same anatomy.

**Bad input.** A few files are unlabelled (``class`` 0, or no row in ``subjects.csv``), one
``subjects.csv`` row has no file, and two labelled files are corrupt (a truncated
``.nii.gz`` and a ``.nii`` whose data stops early).
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np

#: Bumped whenever the generator writes different data for the same seed: a dataset written
#: by another version is regenerated on first use (``synthetic.is_complete``).
VERSION = 1

SIZES = {
    # labelled readable subjects, class-0 rows, files without a row, corrupt files
    "smoke": {"n_labelled": 34, "n_class0": 2, "n_norow": 1, "n_corrupt": 2, "voxels": "coarse"},
    "full": {"n_labelled": 104, "n_class0": 4, "n_norow": 1, "n_corrupt": 2, "voxels": "fine"},
}
#: The class-difference region: a sphere in world MNI mm (left temporal / insular cortex).
REGION = {"center_mm": [-40.0, -10.0, 0.0], "radius_mm": 24.0}
#: Distractor atrophy centres (world MNI mm, cortex), two drawn per subject.
DISTRACTORS = [[38.0, -60.0, 30.0], [30.0, 30.0, 30.0], [-30.0, 40.0, 20.0], [42.0, -20.0, 45.0],
               [-35.0, -70.0, 25.0], [10.0, -80.0, 10.0], [-12.0, 45.0, 35.0], [50.0, 0.0, -5.0]]
#: Atrophy amount (fraction of the grey→CSF contrast) per class: mean, sd.
EFFECT = {1: (0.8, 0.2), -1: (0.05, 0.1)}
DISTRACTOR_EFFECT = (0.25, 0.15)
#: Inter-subject anatomy left after registration: global scale (±fraction), shift (±mm), warp (mm).
ANATOMY = {"scale": 0.03, "shift_mm": 2.0, "warp_mm": 2.0}
#: Residual bias field (sd of its log) and Rician noise sd (fraction of white matter).
BIAS, NOISE = 0.08, (0.02, 0.04)
#: Voxel sizes (mm) drawn per subject; the small dataset uses coarser ones to generate fast.
VOXEL_SIZES = {"fine": [(2.0, 2.0, 2.0), (2.0, 2.0, 2.0), (2.5, 2.5, 2.5), (1.75, 1.75, 1.75), (2.0, 2.0, 2.5),
                        (1.5, 1.5, 2.0), (2.2, 2.2, 2.2)],
               "coarse": [(2.5, 2.5, 2.5), (3.0, 3.0, 3.0), (2.5, 2.5, 3.0), (2.0, 2.0, 2.0), (3.0, 3.0, 2.5)]}
#: Axis codes drawn per subject (voxel axis i, j, k point towards these directions).
ORIENTATIONS = ["RAS", "LAS", "LPS", "RPI", "PSR", "ASL", "LIP", "SRA"]
#: Field of view in world mm (RAS extents) before a random shift: the brain plus a margin.
FOV_MM = np.array([[-82.0, 82.0], [-120.0, 84.0], [-72.0, 90.0]])
T1_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
GM_FILE = "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"


@lru_cache(maxsize=1)
def mni_template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t1, gm, affine)``: nilearn's bundled MNI152 2009a T1 (0–1) and GM probability, 2 mm.

    Read straight from nilearn's package data (no network, no download), averaged over
    2×2×2 blocks of the 1 mm grid; float32, RAS+.
    """
    import nibabel as nib
    from nilearn import datasets

    folder = Path(datasets.__file__).parent / "data"
    t1_img = nib.load(str(folder / T1_FILE))
    out = []
    for img in (t1_img, nib.load(str(folder / GM_FILE))):
        data = np.asarray(img.dataobj, dtype=np.float32)
        data = np.pad(data, [(0, s % 2) for s in data.shape])
        out.append(data.reshape(data.shape[0] // 2, 2, data.shape[1] // 2, 2, data.shape[2] // 2, 2).mean(axis=(1, 3, 5)))
    t1, gm = out
    t1 /= np.percentile(t1[t1 > 0.05 * t1.max()], 99.5)
    gm /= max(float(gm.max()), 1e-6)
    affine = np.asarray(t1_img.affine, dtype=np.float64) @ np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] += 0.5 * np.diag(t1_img.affine)[:3]        # block centres
    nz = np.argwhere(t1 > 0.01)                              # crop to the brain (+2 voxels)
    lo, hi = np.maximum(nz.min(axis=0) - 2, 0), nz.max(axis=0) + 3
    affine[:3, 3] += np.diag(affine)[:3] * lo
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return np.ascontiguousarray(t1[box]), np.ascontiguousarray(gm[box]), affine


@lru_cache(maxsize=1)
def _atrophy_maps() -> dict:
    """Template-space maps: the grey-matter signal that atrophy removes, and each region's weight."""
    t1, gm, affine = mni_template()
    ijk = [np.arange(n, dtype=np.float32) for n in t1.shape]
    mm = [affine[a, a] * ijk[a] + affine[a, 3] for a in range(3)]
    loss = gm * np.clip(t1 - 0.25, 0.0, None)                  # grey matter darkening towards CSF
    weights = {}
    for name, centre, radius in [("region", REGION["center_mm"], REGION["radius_mm"])] + [
            (i, c, 16.0) for i, c in enumerate(DISTRACTORS)]:
        d2 = sum((m[sl] - c) ** 2 for m, c, sl in zip(mm, centre, [np.s_[:, None, None], np.s_[None, :, None],
                                                                  np.s_[None, None, :]]))
        ramp = np.clip((np.sqrt(d2) - radius) / 6.0, 0.0, 1.0)
        weights[name] = ((0.5 + 0.5 * np.cos(np.pi * ramp)) * loss).astype(np.float32)
    return {"loss": loss, "weights": weights}


def _axis_affine(codes: str, voxel: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Affine and shape of a grid with axis codes ``codes`` covering the world box [lo, hi]."""
    world_axis = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    affine = np.eye(4)
    shape = []
    for k, code in enumerate(codes):
        axis, sign = world_axis[code]
        n = int(np.ceil((hi[axis] - lo[axis]) / voxel[k]))
        affine[:3, k] = 0.0
        affine[axis, k] = sign * voxel[k]
        affine[axis, 3] = lo[axis] if sign > 0 else lo[axis] + (n - 1) * voxel[k]
        shape.append(n)
    return affine, tuple(shape)


def _rotation(rng: np.random.Generator, degrees: float) -> np.ndarray:
    angles = np.deg2rad(rng.uniform(-degrees, degrees, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smooth_field(rng: np.random.Generator, shape, n_ctrl: int = 4, n_fields: int = 1) -> np.ndarray:
    """``n_fields`` smooth random fields on ``shape``: random coefficients of a separable cosine basis.

    Built as tensor products (small matrix products), so it costs little more than writing
    the output; roughly unit standard deviation. Shape ``(n_fields, *shape)``.
    """
    bases = [np.cos(np.pi * np.outer(np.linspace(0, 1, n, dtype=np.float32), np.arange(n_ctrl))).astype(np.float32)
             for n in shape]
    coef = rng.standard_normal((n_fields, n_ctrl, n_ctrl, n_ctrl)).astype(np.float32)
    coef /= (1.0 + np.add.outer(np.add.outer(np.arange(n_ctrl), np.arange(n_ctrl)), np.arange(n_ctrl))).astype(np.float32)
    small = np.einsum("fabc,zc->fabz", coef, bases[2])
    small = np.einsum("fabz,yb->fayz", small, bases[1])                    # (f, a, y, z)
    return np.einsum("xa,fayz->fxyz", bases[0], small, optimize=True)


def _subject_volume(rng: np.random.Generator, label: int, storage: dict) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one subject; returns the stored int16 array and its affine."""
    from scipy import ndimage

    t1, gm, tmpl_affine = mni_template()
    maps = _atrophy_maps()
    # the subject's anatomy in template space: contrast, class atrophy, distractor atrophy
    anatomy = t1 + np.float32(rng.uniform(-0.12, 0.12)) * (gm - 0.5) * t1        # grey/white contrast
    mean, sd = EFFECT[label]
    anatomy -= np.float32(min(max(rng.normal(mean, sd), 0.0), 0.9)) * maps["weights"]["region"]
    for idx in rng.choice(len(DISTRACTORS), 2, replace=False):
        anatomy -= np.float32(min(max(rng.normal(*DISTRACTOR_EFFECT), 0.0), 0.9)) * maps["weights"][int(idx)]
    # storage grid: orientation, voxel size, field of view (and sometimes an oblique tilt)
    voxel = np.asarray(storage["voxel"], dtype=float)
    shift = rng.uniform(-6, 6, 3)
    affine, shape = _axis_affine(storage["orientation"], voxel, FOV_MM[:, 0] + shift, FOV_MM[:, 1] + shift)
    if storage["oblique"]:
        rot = np.eye(4)
        rot[:3, :3] = _rotation(rng, 8.0)
        centre = FOV_MM.mean(axis=1) + shift
        to_c, back = np.eye(4), np.eye(4)
        to_c[:3, 3], back[:3, 3] = -centre, centre
        affine = back @ rot @ to_c @ affine
    # stored voxel -> template voxel: world (affine), global scale/shift, then a smooth warp (mm)
    glob = np.diag([1.0 / rng.uniform(1 - ANATOMY["scale"], 1 + ANATOMY["scale"])] * 3 + [1.0])
    glob[:3, 3] = rng.uniform(-ANATOMY["shift_mm"], ANATOMY["shift_mm"], 3)
    to_tmpl = (np.linalg.inv(tmpl_affine) @ glob @ affine).astype(np.float32)
    ijk = [np.arange(n, dtype=np.float32) for n in shape]
    sl = [np.s_[:, None, None], np.s_[None, :, None], np.s_[None, None, :]]
    step = np.float32(ANATOMY["warp_mm"] / tmpl_affine[0, 0])
    coords = step * _smooth_field(rng, shape, 4, 3)
    for a in range(3):
        coords[a] += sum(to_tmpl[a, b] * ijk[b][sl[b]] for b in range(3)) + to_tmpl[a, 3]
    signal = ndimage.map_coordinates(anatomy, coords, order=1, mode="constant", cval=0.0, prefilter=False)
    del coords
    signal *= np.exp(np.float32(BIAS) * _smooth_field(rng, shape, 3)[0])            # bias field
    sigma = np.float32(rng.uniform(*NOISE))
    noisy = np.sqrt((signal + sigma * rng.standard_normal(shape, dtype=np.float32)) ** 2
                    + (sigma * rng.standard_normal(shape, dtype=np.float32)) ** 2)   # Rician magnitude
    gain = rng.uniform(600, 1400)
    return np.clip(np.round(noisy * gain), 0, 32767).astype(np.int16), affine


def _write(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=4)   # 4 = MNI152 space
    img.header.set_sform(affine, code=4)
    img.header["descrip"] = b"synthetic T1w (MNI152 2009a based)"
    nib.save(img, str(path))


def _corrupt(path: Path, rng: np.random.Generator) -> str:
    """Damage a written file in place (it is ours, in the temp folder): truncate its data."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        cut = int(len(data) * rng.uniform(0.3, 0.7))
        reason = "truncated .nii.gz (gzip stream cut)"
    else:
        cut = 352 + int((len(data) - 352) * rng.uniform(0.2, 0.6))
        reason = "truncated .nii (data shorter than the header says)"
    path.write_bytes(data[:cut])
    return reason


def generate(out: Path, size: str = "smoke", seed: int = 0) -> dict:
    """Write an HCP-style dataset under ``out`` and return its ground truth (JSON-able).

    Ground truth: ``n_subjects`` (files in ``brain_nii``), ``n_labelled`` (readable, class
    ±1), ``n_unlabelled`` (readable, class 0 or no row), ``n_unreadable`` (corrupt files),
    ``n_missing_files`` (``subjects.csv`` rows without a file), ``region`` (the class-
    difference sphere in world RAS mm, with its bounding box), per-subject ``subjects``
    (label, orientation, voxel size, format, status), and ``corrupt`` (subject -> reason).
    """
    cfg = SIZES[size]
    out = Path(out)
    (out / "brain_nii").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_readable = cfg["n_labelled"] + cfg["n_class0"] + cfg["n_norow"]
    n_files = n_readable + cfg["n_corrupt"]
    ids = [str(s) for s in rng.choice(np.arange(100000, 999999), n_files + 1, replace=False)]
    labels = [1, -1] * (cfg["n_labelled"] // 2) + [1] * (cfg["n_labelled"] % 2)
    labels = list(rng.permutation(labels)) + [0] * cfg["n_class0"] + [None] * cfg["n_norow"]
    labels += [int(v) for v in rng.choice([1, -1], cfg["n_corrupt"])]
    order = rng.permutation(n_files)
    ids_files, missing_id = ids[:n_files], ids[n_files]
    corrupt_at = set(range(n_readable, n_files))
    subjects, rows, corrupt = {}, [], {}
    for pos in order:                      # files written in a shuffled order; labels fixed above
        subject, label = ids_files[pos], labels[pos]
        srng = np.random.default_rng([seed, int(subject)])      # storage: independent of the class
        storage = {"orientation": str(srng.choice(ORIENTATIONS)),
                   "voxel": VOXEL_SIZES[cfg["voxels"]][srng.integers(len(VOXEL_SIZES[cfg["voxels"]]))],
                   "oblique": bool(srng.random() < 0.15),
                   "format": "nii.gz" if srng.random() < 0.5 else "nii"}
        if pos in corrupt_at:   # one corrupt file of each format
            storage["format"] = "nii.gz" if pos == n_readable else "nii"
        simulated_label = label if label in (1, -1) else int(srng.choice([1, -1]))
        array, affine = _subject_volume(np.random.default_rng([seed, int(subject), 1]), simulated_label, storage)
        path = out / "brain_nii" / f"{subject}.{storage['format']}"
        _write(path, array, affine)
        status = "ok" if label in (1, -1) else "unlabelled"
        if pos in corrupt_at:
            corrupt[subject] = _corrupt(path, srng)
            status = "unreadable"
        if label is not None:
            rows.append((subject, label))
        subjects[subject] = {"label": label, "status": status, "orientation": storage["orientation"],
                             "voxel_size_mm": list(storage["voxel"]), "oblique": storage["oblique"],
                             "format": storage["format"], "shape": list(array.shape)}
    rows.append((missing_id, int(rng.choice([1, -1]))))          # a row whose scan is missing
    rows = [rows[i] for i in rng.permutation(len(rows))]
    with open(out / "subjects.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Subject", "class"])
        writer.writerows(rows)
    centre, radius = np.asarray(REGION["center_mm"]), REGION["radius_mm"]
    statuses = [s["status"] for s in subjects.values()]
    return {
        "n_subjects": n_files,
        "n_labelled": statuses.count("ok"),
        "n_unlabelled": statuses.count("unlabelled"),
        "n_unreadable": statuses.count("unreadable"),
        "n_missing_files": 1,
        "n_class": {"1": int(sum(1 for s in subjects.values() if s["status"] == "ok" and s["label"] == 1)),
                    "-1": int(sum(1 for s in subjects.values() if s["status"] == "ok" and s["label"] == -1))},
        "region": {"space": "world RAS mm (MNI152)", "shape": "sphere", "center_mm": centre.tolist(),
                   "radius_mm": radius,
                   "box_mm": np.stack([centre - radius, centre + radius], axis=1).tolist()},
        "effect": {"class_1": list(EFFECT[1]), "class_-1": list(EFFECT[-1]),
                   "distractor": list(DISTRACTOR_EFFECT)},
        "corrupt": corrupt,
        "subjects": subjects,
        "template": "MNI152 2009a symmetric T1 + GM map from nilearn's package data",
    }

