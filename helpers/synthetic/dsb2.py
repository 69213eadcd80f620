"""Synthetic cardiac cine MRI in the Kaggle Second Annual Data Science Bowl (DSB2) layout.

Writes (see ``../shared/DATASETS.md`` §2)::

    train/<case>/study/sax_<n>/IM-<series 4>-<frame 4>.dcm     one MR frame per file
    train/<case>/study/sax_<n>/IM-<series>-<frame>-<part>.dcm   folders holding several slices
    train/<case>/study/2ch_<n>/, 4ch_<n>/                       long-axis views (to be ignored)
    train.csv                                                   Id,Systole,Diastole (mL)
    lv_centroids.csv                                            path,row,col (native pixels)
    lv_masks/<same relative path>.png                           binary LV blood-pool masks

Each case is a chest in physical units (mm), seen in bright-blood (SSFP-like) cine MRI: body
outline with a bright fat layer and ribs, dark lungs, spine, a static bright descending aorta
(a distractor as bright as blood), the liver rising into the lower slices, and a beating heart:
the left ventricle (LV: bright blood pool with an irregular, trabeculated endocardial border
and two papillary muscles, in a myocardial ring that keeps its volume) and the right
ventricle beside it. The heart's position, the image size (never assumed square), the pixel
spacing, the scanner gain (per case and per series), the surface coil's intensity shading
and the noise vary between cases. Some cases have long-axis folders, a folder with four-part
file names holding two slice locations, a slice location acquired twice (the later
acquisition, with a higher SeriesNumber, is the one to keep), and one file is broken.

What it matches of real cine MRI, and the tests that check it (``tests/unit/test_dsb2.py``):

- **EF range**: a quarter of the hearts are dilated with a reduced EF (0.15–0.40), the rest
  have an EF of 0.45–0.72, so ``train.csv`` spans the classes of the heart-failure guidelines
  (reduced < 0.40, mildly reduced 0.40–0.49, preserved ≥ 0.50); checked:
  ``test_volumes_span_reduced_and_normal_ejection_fractions``.
- **Contraction curve**: not a sinusoid but ejection in the first 32–40 % of the RR interval,
  rapid filling, a slow diastasis and the atrial kick at the end; checked: systole is
  shorter than diastole in every case (``test_the_cycle_ejects_fast_and_fills_slowly``).
- **Base to apex**: the LV narrows towards the apex and closes just beyond the last slice,
  papillary muscles appear only in the mid-ventricular slices, and the base descends towards
  the apex in systole (through-plane motion: a basal slice cuts the LV nearer its base at end
  systole). Each slice images its whole slab (partial volume over ``SliceThickness``), so
  borders blur where the LV changes fast along its axis, at the apex most; the blood's
  signal against the myocardium varies between cases.
- **Ground truth is exact**: masks are the blood pool *including* the papillary muscles and
  trabeculae (the convention of contouring the endocardial border), and every volume in
  ``train.csv`` is the same analytic area × slice gap, summed; checked against the masks
  (``test_masks_give_the_ground_truth_volumes``).
LV volumes are those of small hearts with short stacks (full set: EDV 43–164 mL, median 90;
EF 0.13–0.71), so the LV with its wall fits in notebook 09's 100 mm crop.

Pixel convention: pixel ``(i, j)`` has its centre at ``(i, j)``; the LV centre in mm maps to
``(row, col) = (mm - first pixel centre) / spacing``. Labels are the analytic blood-pool
centre, in that grid.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import MRImageStorage

from . import image_header

#: Bumped whenever the generator writes different data for the same seed: a dataset written
#: by another version is regenerated on first use (``synthetic.is_complete``). Version 2: the heart
#: in a chest (papillary muscles, trabeculae, partial volume, reduced-EF hearts).
VERSION = 2

SIZES = {
    # n_cases, frames per slice, slices per case (min, max)
    "smoke": {"n_cases": 12, "n_frames": 20, "slices": (4, 5), "long_axis_frames": 4},
    "full": {"n_cases": 48, "n_frames": 30, "slices": (6, 9), "long_axis_frames": 30},
}
#: (rows, cols) drawn per case: real DSB2 mixes portrait, landscape and square grids.
IMAGE_SHAPES = [(256, 192), (192, 256), (224, 224), (208, 176), (176, 208), (240, 200)]
UID_ROOT = "1.2.826.0.1.3680043.8.498."


def _soft_disk(dist_mm: np.ndarray, radius_mm: float, spacing: float) -> np.ndarray:
    """Anti-aliased disk: 1 inside, 0 outside, a one-pixel ramp on the edge."""
    return np.clip((radius_mm - dist_mm) / spacing + 0.5, 0.0, 1.0)


def _case_design(rng: np.random.Generator, case: int, cfg: dict) -> dict:
    rows, cols = IMAGE_SHAPES[rng.integers(len(IMAGE_SHAPES))]
    spacing = float(rng.uniform(1.3, 1.7))
    n_slices = int(rng.integers(cfg["slices"][0], cfg["slices"][1] + 1))
    fov = np.array([rows, cols]) * spacing
    body_centre = fov / 2 + rng.uniform(-10, 10, 2)
    reduced = bool(rng.uniform() < 0.25)              # a dilated heart with a reduced ejection fraction
    ef = float(rng.uniform(0.15, 0.40) if reduced else rng.uniform(0.45, 0.72))
    ejection = float(1 - np.sqrt(1 - ef))             # blood-pool radius shrink giving about that EF
    return {
        "case": str(case), "rows": int(rows), "cols": int(cols), "spacing": spacing,
        "n_slices": n_slices, "slice_gap": float(rng.uniform(8, 11)), "thickness": 8.0,
        "body_centre": body_centre, "body_axes": np.array([rng.uniform(95, 115), rng.uniform(135, 160)]),
        # LV: anterior (up) and to the patient's left (image right) of the body centre
        "lv_offset": np.array([rng.uniform(-45, 5), rng.uniform(0, 45)]),
        "lv_radius": float(rng.uniform(25, 30) if reduced else rng.uniform(20, 26)),  # ED blood pool, base (mm)
        "ejection": ejection,                        # radius shrink at end systole
        "wall": float(rng.uniform(7, 9) if reduced else rng.uniform(8, 11)),  # myocardium at ED (mm)
        "harmonics": rng.uniform(0.015, 0.045, 3), "harmonic_phase": rng.uniform(0, 2 * np.pi, 3),
        "trabeculae": int(rng.integers(16, 28)), "trabecula_phase": float(rng.uniform(0, 2 * np.pi)),
        "papillary_angle": float(rng.uniform(0, 2 * np.pi)), "papillary_radius": float(rng.uniform(2.5, 4.0)),
        "t_es": float(rng.uniform(0.32, 0.40)),      # end systole, as a fraction of the RR interval
        "base_descent": float(rng.uniform(0.05, 0.12)),  # through-plane motion of the base (stack fractions)
        "coil_depth": float(rng.uniform(80, 160)), "coil_tilt": float(rng.uniform(-0.25, 0.25)),
        "blood_signal": float(rng.uniform(300, 470)),  # blood-myocardium contrast varies with scanner and flow
        "gain": float(rng.uniform(0.6, 2.2)), "noise": float(rng.uniform(8, 16)),
        "phase": float(rng.uniform(0, 1)), "rr_ms": float(rng.uniform(750, 1000)),
        "series_base": int(rng.integers(1000, 9000)), "folder_base": int(rng.integers(5, 40)),
        "location_start": float(rng.uniform(-60, 60)), "location_sign": float(rng.choice([-1, 1])),
        "ef_class": "reduced" if reduced else "normal",
        "seed": int(rng.integers(2**31)),
    }


def _static_chest(d: dict, rr: np.ndarray, cc: np.ndarray, lv_centre: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Everything that does not beat, in arbitrary MR units (before gain, shading and noise);
    ``level`` (0 base .. 1 apex) raises the liver into the lower slices."""
    sp = d["spacing"]
    b = d["body_centre"]
    a = d["body_axes"]
    ell = np.sqrt(((rr - b[0]) / a[0]) ** 2 + ((cc - b[1]) / a[1]) ** 2)
    img = 180.0 * np.clip((1 - ell) * a[0] / sp + 0.5, 0, 1)                      # body
    img += 140.0 * np.clip((1 - ell) * a[0] / sp + 0.5, 0, 1) * (ell > 0.9)          # fat layer
    for side in (-1, 1):                                                            # lungs
        centre = b + np.array([-5.0, side * 0.5 * a[1]])
        dist = np.sqrt(((rr - centre[0]) / 0.65) ** 2 + ((cc - centre[1]) / 0.8) ** 2)
        img = img - 150.0 * _soft_disk(dist, 0.42 * a[1], sp)
    liver_c = b + np.array([0.3 * a[0], -0.5 * a[1]])                               # liver: patient's right
    grow = 0.35 + 0.65 * float(np.clip((level - 0.2) / 0.7, 0, 1))
    ell_liver = np.sqrt(((rr - liver_c[0]) / (0.6 * a[0])) ** 2 + ((cc - liver_c[1]) / (0.45 * a[1])) ** 2)
    liver = np.clip((grow - ell_liver) * 0.6 * a[0] / sp + 0.5, 0, 1) * (ell < 0.95)
    img = img * (1 - liver) + 125.0 * liver
    for k in range(12):                                                               # ribs: cortex and marrow
        phi = 2 * np.pi * k / 12 + 0.13
        rib = b + 0.86 * a * np.array([np.cos(phi), np.sin(phi)])
        dist = np.hypot(rr - rib[0], cc - rib[1])
        img = img * (1 - _soft_disk(dist, 6.0, sp)) + 30.0 * _soft_disk(dist, 6.0, sp)
        img = img + 140.0 * _soft_disk(dist, 4.0, sp)
    heart = np.hypot(rr - (lv_centre[0] + 5), cc - (lv_centre[1] - 20))
    img = np.maximum(img, 150.0 * _soft_disk(heart, 62.0, sp))                      # mediastinum
    spine_c = b + np.array([0.7 * a[0], 0.0])
    img += 60.0 * _soft_disk(np.hypot(rr - spine_c[0], cc - spine_c[1]), 17.0, sp)  # vertebra
    aorta_c = spine_c + np.array([-22.0, 22.0])
    img = np.where(np.hypot(rr - aorta_c[0], cc - aorta_c[1]) < 11.0, 430.0, img)  # bright aorta
    return img


def contraction(u: float, t_es: float) -> float:
    """How far the LV has contracted (0 at end diastole, 1 at end systole) at the cycle
    fraction ``u`` (0 = end diastole): ejection until ``t_es``, rapid filling to a quarter in
    the next 22 % of the cycle, a slow diastasis, and the atrial contraction in the last 15 %."""
    u = float(u) % 1.0
    if u < t_es:
        return 0.5 * (1 - np.cos(np.pi * u / t_es))
    if u < t_es + 0.22:
        return 0.25 + 0.375 * (1 + np.cos(np.pi * (u - t_es) / 0.22))
    if u < 0.85:
        return 0.25 - 0.07 * (u - t_es - 0.22) / (0.85 - t_es - 0.22)
    return 0.09 * (1 + np.cos(np.pi * (u - 0.85) / 0.15))


def _lv_state(d: dict, level: float, t: float) -> tuple[np.ndarray, float, float, float]:
    """LV centre (mm), blood-pool and outer wall radii (mm), contraction (0 ED..1 ES).

    ``level`` is the position of the slice in the stack (0 base .. 1 apex), ``t`` the cycle
    fraction. The base descends towards the apex in systole, so the slice cuts the LV at
    ``level − base_descent × contraction × (1 − level)`` (the apex barely moves).
    """
    contraction_ = contraction(t + d["phase"], d["t_es"])
    level = level - d["base_descent"] * contraction_ * (1 - level)
    taper = 1.0 - 0.55 * max(level, 0.0) ** 2 if level <= 1 else 0.45 * max(0.0, 1 - (level - 1) / 0.15)  # apex
    r_ed = d["lv_radius"] * taper
    r_blood = r_ed * (1 - d["ejection"] * contraction_)
    wall_area = np.pi * ((r_ed + d["wall"]) ** 2 - r_ed**2)                      # myocardium is incompressible
    r_outer = np.sqrt(r_blood**2 + wall_area / np.pi)
    centre = d["body_centre"] + d["lv_offset"] + np.array([1.5, -1.5]) * contraction_ + np.array([0.0, -6.0]) * level
    return centre, float(r_blood), float(r_outer), float(contraction_)


def blood_pool_area(d: dict, r_blood: float) -> float:
    """Area (mm²) inside the endocardial border ``r(θ) = r_blood (1 + Σ a_k cos(kθ + φ_k))``,
    k = 3, 5, 7: ``π r_blood² (1 + Σ a_k² / 2)`` (the cross terms integrate to zero)."""
    return float(np.pi * r_blood**2 * (1 + 0.5 * np.sum(np.square(d["harmonics"]))))


def _frame(d: dict, static: np.ndarray, rr, cc, level: float, t: float, noise_pool: np.ndarray, rng,
           gain: float | None = None, shading: np.ndarray | None = None):
    """One cine frame (uint16), its LV blood-pool mask and (row_px, col_px, blood-pool area mm²).

    The heart is drawn only inside a box around it (the rest of the chest is static);
    Rician noise comes from a shared pool of normals at a random offset (fast, different
    for every frame).
    """
    sp = d["spacing"]
    # partial volume: the slice images its whole slab, so blood and wall are averaged over three
    # planes across SliceThickness; the middle one is the slice's own plane (its mask, its centre)
    slab = d["thickness"] / (max(d["n_slices"] - 1, 1) * d["slice_gap"])
    planes = [_lv_state(d, level + k * slab / 3, t) for k in (-1, 0, 1)]
    centre, r_blood, r_outer, squeeze = planes[1]
    box = (slice(max(int((centre[0] - 75) / sp), 0), int((centre[0] + 75) / sp) + 1),
           slice(max(int((centre[1] - 100) / sp), 0), int((centre[1] + 75) / sp) + 1))
    r, c = rr[box], cc[box]
    dist = np.hypot(r - centre[0], c - centre[1])
    theta = np.arctan2(c - centre[1], r - centre[0])
    shape = 1 + sum(a * np.cos(k * theta + p) for a, k, p in zip(d["harmonics"], (3, 5, 7), d["harmonic_phase"]))
    border = r_blood * shape                                                       # the mid-plane: the mask
    outer = np.mean([_soft_disk(dist, p[2], sp) for p in planes], axis=0)
    blood = np.mean([_soft_disk(dist, p[1] * shape, sp) for p in planes], axis=0)
    band = np.clip((dist - (border - 3.0)) / 3.0, 0, 1)                           # trabeculated rim
    rim = band * (0.5 + 0.5 * np.cos(d["trabeculae"] * theta + d["trabecula_phase"]))
    mid = float(np.clip(1 - abs(level - 0.5) / 0.35, 0, 1))                       # papillary muscles: mid slices
    muscle = np.zeros_like(dist)
    if mid > 0:
        for angle in (d["papillary_angle"], d["papillary_angle"] + 2.3):
            pm = centre + 0.6 * r_blood * np.array([np.cos(angle), np.sin(angle)])
            radius = d["papillary_radius"] * (0.5 + 0.5 * mid) * (1 + 0.4 * squeeze)
            muscle = np.maximum(muscle, _soft_disk(np.hypot(r - pm[0], c - pm[1]), radius, sp))
    rv_c = centre + np.array([-6.0, -(r_outer + 2.0)])                             # RV: a crescent on the septum
    rv = np.sqrt(((r - rv_c[0]) / 1.25) ** 2 + ((c - rv_c[1]) / 0.7) ** 2)
    rv_blood = _soft_disk(rv, (26.0 - 16.0 * level) * (1 - 0.3 * squeeze), sp) * (1 - outer)
    heart = static[box] * (1 - outer) + 110.0 * outer                                # myocardium
    heart = heart * (1 - blood) + d["blood_signal"] * (1 - 0.5 * rim) * blood         # LV blood pool
    heart = heart * (1 - muscle * blood) + 110.0 * muscle * blood                    # papillary muscles
    heart = heart * (1 - rv_blood) + 0.87 * d["blood_signal"] * rv_blood             # RV blood pool
    img = static.copy()
    img[box] = heart
    gain = d["gain"] if gain is None else gain
    img *= gain if shading is None else gain * shading
    n = img.size
    start = rng.integers(0, noise_pool.size - 2 * n)
    noise = noise_pool[start:start + 2 * n].reshape(2, *img.shape) * np.float32(d["noise"] * gain)
    img = np.hypot(img + noise[0], noise[1])                                          # Rician magnitude
    mask = np.zeros(img.shape, bool)
    mask[box] = dist <= border
    return (np.clip(img, 0, 4095).astype(np.uint16), mask,
            (float(centre[0] / sp), float(centre[1] / sp), blood_pool_area(d, r_blood)))


def coil_shading(d: dict, rr: np.ndarray, cc: np.ndarray) -> np.ndarray:
    """The receive coil's smooth intensity profile (multiplies the image, not the noise): bright
    near the anterior chest wall, fading with depth, slightly brighter on one side."""
    depth = np.clip(rr - (d["body_centre"][0] - d["body_axes"][0]), 0, None)
    side = (cc - d["body_centre"][1]) / d["body_axes"][1]
    return (0.55 + 0.75 * np.exp(-depth / d["coil_depth"])) * (1 + d["coil_tilt"] * side)


def _series_template(d: dict, shape, series_uid: str, study_uid: str, series_number: int, location: float,
                     position, orientation, acq_time: str, description: str) -> pydicom.Dataset:
    """The header shared by every frame of one series (per-frame tags set in :func:`_write_frame`)."""
    ds = image_header(MRImageStorage, "MR", f"DSB2-{int(d['case']):04d}", study_uid, series_uid, shape[0], shape[1],
                      12, 0)
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.AcquisitionTime = acq_time
    ds.SliceLocation = round(location, 4)
    ds.SliceThickness = d["thickness"]
    ds.PixelSpacing = [round(d["spacing"], 6), round(d["spacing"], 6)]
    ds.ImagePositionPatient = [round(float(v), 4) for v in position]
    ds.ImageOrientationPatient = [round(float(v), 6) for v in orientation]
    return ds


def _write_frame(template: pydicom.Dataset, pixels: np.ndarray, sop_uid: str, instance: int, trigger_ms: float,
                 path: Path) -> None:
    template.file_meta.MediaStorageSOPInstanceUID = sop_uid
    template.SOPInstanceUID = sop_uid
    template.InstanceNumber = instance
    template.TriggerTime = round(trigger_ms, 1)
    template.PixelData = pixels.tobytes()
    template.save_as(path, enforce_file_format=True)


def generate(out: Path, size: str = "smoke", seed: int = 0) -> dict:
    """Write a DSB2-layout dataset under ``out`` and return its ground truth (JSON-able).

    Ground truth: ``n_cases``, ``n_frames`` (short-axis frames kept by a correct reader:
    readable, not superseded), ``n_files`` (all short-axis ``.dcm`` files), ``n_unreadable``,
    ``n_superseded`` (frames of the earlier acquisition of a re-acquired location),
    ``n_ignored_long_axis``, ``n_labelled``, ``image_shapes`` and per-case ``cases``
    (shape, spacing, LV centre per kept slice at end diastole in native px, radii in mm,
    systolic/diastolic volume in mL, special layouts).
    """
    cfg = SIZES[size]
    out = Path(out)
    rng = np.random.default_rng(seed)
    n_cases, n_frames = cfg["n_cases"], cfg["n_frames"]
    designs = [_case_design(rng, i + 1, cfg) for i in range(n_cases)]
    noise_pool = rng.standard_normal(2 * 256 * 256 + 500_000, dtype=np.float32)
    # special layouts, on distinct cases
    special = rng.permutation(n_cases)
    four_part_case, reacquired_case, broken_case = (designs[i]["case"] for i in special[:3])
    long_axis_cases = {designs[i]["case"] for i in special[3:3 + max(2, n_cases // 6)]} | {four_part_case}

    train_rows, label_rows = [], []
    truth_cases = {}
    counts = {"n_files": 0, "n_unreadable": 0, "n_superseded": 0, "n_ignored_long_axis": 0, "n_frames": 0,
              "n_labelled": 0}
    for d in designs:
        crng = np.random.default_rng(d["seed"])
        case_dir = out / "train" / d["case"] / "study"
        rows, cols, sp = d["rows"], d["cols"], d["spacing"]
        rr, cc = np.mgrid[:rows, :cols].astype(np.float32) * sp
        shading = coil_shading(d, rr, cc).astype(np.float32)
        uid = f"{UID_ROOT}{seed}.{d['case']}"           # deterministic UIDs
        study_uid = uid + ".1"
        theta = crng.uniform(0.3, 0.9)
        row_cos = np.array([np.cos(theta), np.sin(theta), 0.0])
        col_cos = np.array([-0.2 * np.sin(theta), 0.2 * np.cos(theta), -0.98])
        col_cos /= np.linalg.norm(col_cos)
        normal = np.cross(row_cos, col_cos)
        origin = crng.uniform(-150, -100, 3)
        # acquisition plan: (folder, file part or None, level, series number, superseded?)
        plan, folder = [], d["folder_base"]
        levels = np.linspace(0.0, 1.0, d["n_slices"])
        for k, level in enumerate(levels):
            plan.append([f"sax_{folder}", None, k, level, d["series_base"] + folder, False])
            folder += 1
        if d["case"] == four_part_case:                  # two slice locations in one folder
            plan[-1][0] = plan[-2][0]
            plan[-2][1], plan[-1][1] = 1, 2
            plan[-1][4] = plan[-2][4]
        if d["case"] == reacquired_case:                 # mid slice acquired again, later
            k = d["n_slices"] // 2
            plan[k][5] = True
            plan.append([f"sax_{folder}", None, k, levels[k], d["series_base"] + folder, False])
        broken_done = d["case"] != broken_case
        volumes = np.zeros(n_frames)
        centres = {}
        for i_acq, (folder_name, part, k, level, series_number, superseded) in enumerate(plan):
            location = d["location_start"] + d["location_sign"] * k * d["slice_gap"]
            position = origin + k * d["slice_gap"] * normal
            template = _series_template(d, (rows, cols), f"{uid}.2.{i_acq}", study_uid, series_number, location,
                                        position, np.concatenate([row_cos, col_cos]), f"{10 + i_acq:02d}0000.00", "sax")
            static = _static_chest(d, rr, cc, _lv_state(d, level, 0.0)[0], level)
            series_gain = d["gain"] * float(crng.uniform(0.85, 1.15))              # per-series receiver gain
            folder_dir = case_dir / folder_name
            folder_dir.mkdir(parents=True, exist_ok=True)
            for f in range(n_frames):
                t = f / n_frames
                pixels, mask, (r_px, c_px, area) = _frame(d, static, rr, cc, level, t, noise_pool, crng,
                                                         series_gain, shading)
                name = (f"IM-{series_number % 10000:04d}-{f + 1:04d}.dcm" if part is None
                        else f"IM-{series_number % 10000:04d}-{f + 1:04d}-{part:04d}.dcm")
                instance = f + 1 if part is None else (part - 1) * n_frames + f + 1
                path = folder_dir / name
                _write_frame(template, pixels, f"{uid}.3.{i_acq}.{f}", instance, t * d["rr_ms"], path)
                counts["n_files"] += 1
                rel = path.relative_to(out).as_posix()
                if not superseded:                      # the heart's volume, whatever happens to the file
                    volumes[f] += area * d["slice_gap"] / 1000.0
                if not broken_done and k == d["n_slices"] // 2 and f == 3 and not superseded:
                    path.write_bytes(path.read_bytes()[:300])      # truncated: header cut mid-way
                    counts["n_unreadable"] += 1
                    broken_done = True
                    truth_cases.setdefault("_broken", []).append(rel)
                    continue
                if superseded:
                    counts["n_superseded"] += 1
                    continue
                counts["n_frames"] += 1
                if f == 0:
                    centres[folder_name + ("" if part is None else f"-{part:04d}")] = [r_px, c_px]
                if crng.uniform() < 0.9:                               # not every frame labelled
                    label_rows.append((rel, round(r_px, 3), round(c_px, 3)))
                    counts["n_labelled"] += 1
                    mask_path = out / "lv_masks" / (rel[:-4] + ".png")
                    mask_path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
        if d["case"] in long_axis_cases:
            for view in ("2ch", "4ch"):
                view_dir = case_dir / f"{view}_{folder + (view == '4ch')}"
                view_dir.mkdir(parents=True, exist_ok=True)
                img = (_static_chest(d, rr, cc, d["body_centre"]) * d["gain"]).astype(np.uint16)
                template = _series_template(d, img.shape, f"{uid}.4.{view[0]}", study_uid, d["series_base"] + 900, 0.0,
                                            origin, [1, 0, 0, 0, 0, -1], "200000.00", view)
                for f in range(cfg["long_axis_frames"]):
                    _write_frame(template, img, f"{uid}.5.{view[0]}.{f}", f + 1, f / n_frames * d["rr_ms"],
                                 view_dir / f"IM-{d['series_base'] + 900:04d}-{f + 1:04d}.dcm")
                    counts["n_ignored_long_axis"] += 1
        train_rows.append((int(d["case"]), round(float(volumes.min()), 2), round(float(volumes.max()), 2)))
        truth_cases[d["case"]] = {
            "rows": rows, "cols": cols, "pixel_spacing_mm": round(sp, 6), "n_slices": d["n_slices"],
            "lv_centre_px_first_frame": centres, "lv_radius_ed_mm": round(d["lv_radius"], 3),
            "ejection_radius_fraction": round(d["ejection"], 3),
            "systole_ml": train_rows[-1][1], "diastole_ml": train_rows[-1][2],
            "volume_curve_ml": [round(float(v), 3) for v in volumes], "slice_gap_mm": round(d["slice_gap"], 4),
            "reduced_ef": d["ef_class"] == "reduced",
            "four_part_names": d["case"] == four_part_case, "reacquired": d["case"] == reacquired_case,
            "long_axis_folders": d["case"] in long_axis_cases,
        }

    with open(out / "train.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Id", "Systole", "Diastole"])
        writer.writerows(train_rows)
    with open(out / "lv_centroids.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "row", "col"])
        writer.writerows(label_rows)
    broken = truth_cases.pop("_broken", [])
    shapes = sorted({(c["rows"], c["cols"]) for c in truth_cases.values()})
    return {"n_cases": n_cases, "frames_per_slice": n_frames, **counts, "broken_files": broken,
            "image_shapes": [list(s) for s in shapes], "four_part_case": four_part_case,
            "reacquired_case": reacquired_case, "cases": truth_cases}
