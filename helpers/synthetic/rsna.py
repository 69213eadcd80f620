"""Synthetic head CT in the RSNA Intracranial Hemorrhage Detection layout.

Writes (see ``../shared/DATASETS.md`` §1)::

    stage_2_train/ID_<9 hex>.dcm     one axial CT slice per file, flat folder
    stage_2_train.csv                ID,Label  (six rows per image: ID_<hex>_<subtype>)
    ground_truth_lesions.csv         image_id,subtype,row0,col0,row1,col1 (beside the data)

Each patient has one study with one axial series running from the skull base to the
vertex (``ImagePositionPatient`` z orders the slices; the files are named by random IDs).
The head is a phantom in Hounsfield units: air (-1000), scalp (~40), skull (+700..+1300
bone rim with a darker diploe), a thin CSF layer and cortex (grey matter ~38 HU), white
matter (~27 HU), lateral ventricles (CSF ~8 HU) at mid levels, deep grey nuclei, and near
the skull base bone and air sinuses that leave little brain; near the vertex the slice is
mostly skull. Scanner noise is Gaussian (a few HU).

Hemorrhages are 3-D: each spans several adjacent slices of its patient (65-90 HU), with
one geometry per subtype: **epidural** a biconvex lens against the inner skull table,
**subdural** a thin crescent along the skull, **subarachnoid** a band along the brain
surface with blood in sulci, **intraparenchymal** a blob (with an oedema halo) in the
brain, **intraventricular** blood layering in the ventricles. A slice's labels come from the
lesion pixels written on it; ``any`` is their OR.

Pixel formats follow the three groups of the real data, drawn per patient (independently
of the lesions): BitsStored 12 / PixelRepresentation 0 / intercept -1024; BitsStored 12 /
PixelRepresentation 1 / intercept 0; BitsStored 16 / PixelRepresentation 1 / intercept
-1024 (with -3024 HU padding outside the reconstruction circle). A few patients carry the
planted representation defect: PixelRepresentation 0, intercept >= -100, signed 12-bit
values stored as unsigned (background mode 3096). Window tags are single or multi-valued,
also per patient. Nothing in the headers predicts the labels: the table position (z
offset), in-plane offset, pixel spacing, scanner group and window tags are all drawn
independently of the lesions.

Broken files: one truncated inside the header, one truncated inside the pixel data (its
header still reads) and one text file named ``ID_<hex>.dcm``. Some CSV rows are duplicated.
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import CTImageStorage

from . import image_header

#: Bumped whenever the generator writes different data for the same seed: a dataset written
#: by another version is regenerated on first use (``synthetic.is_complete``).
VERSION = 1

SUBTYPES = ("epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
LABELS = SUBTYPES + ("any",)
#: profile: patients, slices per patient (min, max), image size by seed parity
SIZES = {
    "smoke": {"n_patients": 14, "slices": (18, 24), "image_size": (128, 160)},
    "full": {"n_patients": 70, "slices": (28, 36), "image_size": (256, 224)},
}
#: pixel-format groups: (BitsStored, PixelRepresentation, RescaleIntercept)
GROUPS = {"12u": (12, 0, -1024.0), "12s": (12, 1, 0.0), "16s": (16, 1, -1024.0), "defect": (12, 0, 0.0)}
#: (WindowCenter, WindowWidth) tag values, some multi-valued as in the real data
WINDOW_TAGS = [("40", "80"), ([36, 36], [80, 80]), ([40, 350], [80, 2000]), ("30", "90"), ([50, 40], [100, 80])]
BRAIN_WINDOW = (0.0, 80.0)       # strictly inside: the rule cleaning uses (img_pct_window)
LOW_BRAIN_THRESHOLD = 0.02
FOV_MM = (220.0, 260.0)


def _patient_design(rng: np.random.Generator, i: int, size: int, cfg: dict) -> dict:
    n_slices = int(rng.integers(cfg["slices"][0], cfg["slices"][1] + 1))
    return {
        "index": i, "size": size, "n_slices": n_slices,
        "fov": float(rng.uniform(*FOV_MM)),
        "axes": np.array([rng.uniform(88, 100), rng.uniform(70, 80), rng.uniform(92, 102)]),  # AP, LR, SI semi-axes (mm)
        "offset": rng.uniform(-8, 8, 2), "angle": float(rng.uniform(-0.15, 0.15)),
        "scalp": float(rng.uniform(4, 6)), "skull": float(rng.uniform(6, 9)),
        "grey": float(rng.uniform(36, 41)), "white": float(rng.uniform(25, 30)),
        "noise": float(rng.uniform(3, 6)),
        "t_range": (float(rng.uniform(-0.97, -0.9)), float(rng.uniform(0.95, 0.99))),
        "z_table": float(rng.uniform(-400, 400)), "xy_table": rng.uniform(-140, -100, 2),
        "window": int(rng.integers(len(WINDOW_TAGS))),
        "seed": int(rng.integers(2**31)),
    }


def _lesion(rng: np.random.Generator, subtype: str, d: dict) -> dict:
    """One hemorrhage: subtype, centre level (mm from the head centre), half extent in z, shape."""
    c = d["axes"][2]
    if subtype == "intraventricular":
        zc = rng.uniform(0.0, 0.3) * c
    else:
        zc = rng.uniform(-0.35, 0.6 if subtype == "intraparenchymal" else 0.9) * c
    return {"subtype": subtype, "zc": float(zc), "hz": float(rng.uniform(11, 22)),
            "theta": float(rng.uniform(-np.pi, np.pi)), "hu": float(rng.uniform(65, 90)),
            "width": float({"epidural": rng.uniform(0.35, 0.55), "subdural": rng.uniform(0.9, 1.4),
                            "subarachnoid": rng.uniform(0.6, 1.0)}.get(subtype, 0.0)),
            "thick": float({"epidural": rng.uniform(11, 16), "subdural": rng.uniform(8, 12),
                            "subarachnoid": rng.uniform(4.0, 6.0)}.get(subtype, 0.0)),
            "radius": float(rng.uniform(10, 17)), "rpos": float(rng.uniform(0.2, 0.55)),
            "side": float(rng.choice([-1.0, 1.0]))}


def _grids(d: dict):
    n = d["size"]
    sp = d["fov"] / n
    coords = (np.arange(n, dtype=np.float32) - (n - 1) / 2) * sp
    yy, xx = np.meshgrid(coords, coords, indexing="ij")        # rows: anterior -> posterior
    yy, xx = yy - d["offset"][0], xx - d["offset"][1]
    ca, sa = np.cos(d["angle"]), np.sin(d["angle"])
    y = ca * yy - sa * xx
    x = sa * yy + ca * xx
    return y.astype(np.float32), x.astype(np.float32), sp


def _slice_hu(d: dict, y, x, z: float, lesions: list[dict], rng) -> tuple[np.ndarray, dict]:
    """HU image of the slice at height ``z`` (mm from the head centre) and the lesion masks."""
    a, b, c = d["axes"]
    t = z / c
    s = np.sqrt(max(1.0 - t * t, 1e-4))
    r = np.sqrt((y / (a * s)) ** 2 + (x / (b * s)) ** 2)        # 1 on the scalp surface
    depth = (1.0 - r) * min(a, b) * s                          # ~ mm below the surface
    theta = np.arctan2(x, y)
    img = np.full(y.shape, -1000.0, np.float32)
    head = depth > 0
    img[head] = 40.0                                            # scalp / soft tissue
    skull_in = d["scalp"] + d["skull"]
    bone = head & (depth > d["scalp"]) & (depth <= skull_in)
    mid = np.abs(depth - (d["scalp"] + d["skull"] / 2)) / (d["skull"] / 2)
    img[bone] = (1250.0 - 500.0 * np.exp(-(mid[bone] / 0.45) ** 2))   # dense tables, darker diploe
    inside = head & (depth > skull_in)
    img[inside] = 8.0                                           # CSF layer
    brain = inside & (depth > skull_in + 1.2)
    # skull base: anterior bone and air sinuses replace brain below the mid level
    if t < -0.4:
        f = (t + 0.4) / 0.55                                    # 0 .. -1
        cut = -a * s * (1.0 + 1.6 * f)                          # brain only behind this line
        base = inside & (y < cut)
        img[base] = 650.0
        sinus = base & (np.hypot((y - (cut - 0.35 * a * s)) / 0.6, x / 0.9) < 0.25 * a * s)
        img[sinus] = -1000.0
        brain &= y >= cut + 2.0
        petrous = inside & (np.abs(np.abs(x) - 0.45 * b * s) < 4.0) & (np.abs(y - cut - 0.25 * a * s) < 0.3 * a * s)
        img[petrous] = 900.0
        brain &= ~petrous
    grey = brain & (depth < skull_in + 5.0)
    img[brain] = d["white"]
    img[grey] = d["grey"]
    masks = {}
    vent = np.zeros(y.shape, bool)
    if -0.15 < t < 0.5:                                         # lateral ventricles
        k = 1.0 - ((t - 0.17) / 0.33) ** 2
        for side in (-1, 1):
            vent |= np.hypot((y + 0.05 * a) / (0.38 * a * k + 1e-3), (x - side * 0.12 * b) / (0.08 * b * k + 1e-3)) < 1
        vent &= brain
        nuclei = brain & ~vent & (np.hypot(y / (0.18 * a), np.abs(x) - 0.3 * b) < 0.12 * b / (0.18 * a) * 1.4)
        img[nuclei] = d["grey"]
        img[vent] = 8.0
    for les in lesions:
        dz = abs(z - les["zc"]) / les["hz"]
        if dz >= 1.0:
            continue
        k = max(np.sqrt(1.0 - dz * dz), 0.6)
        mask = _lesion_mask(les, k, y, x, depth, theta, brain, inside, vent, skull_in, a * s, b * s, rng)
        if mask.any():
            img[mask] = les["hu"] + rng.normal(0, 3.0)
            masks.setdefault(les["subtype"], np.zeros(y.shape, bool))
            masks[les["subtype"]] |= mask
    img += rng.normal(0.0, d["noise"], y.shape).astype(np.float32) * (img > -900)
    img += rng.normal(0.0, 8.0, y.shape).astype(np.float32) * (img <= -900)
    return img, masks


def _angle_profile(theta, centre: float, width: float) -> np.ndarray:
    dtheta = np.angle(np.exp(1j * (theta - centre)))
    return np.clip(1.0 - (dtheta / width) ** 2, 0.0, None)


def _lesion_mask(les, k, y, x, depth, theta, brain, inside, vent, skull_in, ra, rb, rng) -> np.ndarray:
    sub = les["subtype"]
    under = depth - skull_in                                   # mm below the inner table
    if sub == "epidural":                                      # lens: thick centre, tapers fast
        prof = _angle_profile(theta, les["theta"], les["width"] * k)
        return inside & (under < les["thick"] * k * np.sqrt(prof))
    if sub == "subdural":                                      # crescent: long and thin
        prof = _angle_profile(theta, les["theta"], les["width"] * k)
        return inside & (under < les["thick"] * k * prof ** 0.25) & (prof > 0)
    if sub == "subarachnoid":                                  # surface band + blood in sulci
        prof = _angle_profile(theta, les["theta"], les["width"] * k)
        band = inside & (prof > 0) & (under < les["thick"])
        sulci = brain & (prof > 0.2) & (under < 16.0) & (np.abs(np.sin(theta * 14.0)) < 0.3)
        return band | sulci
    if sub == "intraparenchymal":                              # blob in the brain
        cy = les["rpos"] * ra * np.cos(les["theta"])
        cx = les["rpos"] * rb * np.sin(les["theta"])
        rad = les["radius"] * k
        return brain & ~vent & (np.hypot((y - cy) / 1.2, x - cx) < rad)
    if sub == "intraventricular":                              # blood layering in the ventricles
        if not vent.any():
            return vent
        side = les["side"]
        level = np.quantile(y[vent], 0.35)
        return vent & ((x * side > 0) | (k > 0.8)) & (y > level)
    raise ValueError(sub)


def _stored(hu: np.ndarray, group: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(stored values to write, HU a correct reader recovers) for a pixel-format group."""
    hu = np.rint(hu)
    if group == "12u":
        hu = np.clip(hu, -1024, 3071)
        return (hu + 1024).astype(np.uint16), hu
    if group == "12s":
        hu = np.clip(hu, -2048, 2047)
        return hu.astype(np.int16), hu
    if group == "16s":
        coords = np.arange(n) - (n - 1) / 2
        outside = np.hypot(coords[:, None], coords[None, :]) > n / 2
        hu = np.where(outside, -3024.0, np.clip(hu, -3024, 4000))
        return (hu + 1024).astype(np.int16), hu
    # the defect: signed 12-bit values written as unsigned (air -1000 -> 3096)
    hu = np.clip(hu, -1000, 3095)
    return np.mod(hu, 4096).astype(np.uint16), hu


def _hex(rng, n: int, used: set) -> str:
    while True:
        value = "".join(rng.choice(list("0123456789abcdef"), n))
        if value not in used:
            used.add(value)
            return value


def _template(group: str, window: int, n: int, sp: float, pid: str, study: str, series: str, rng) -> pydicom.Dataset:
    bits, rep, intercept = GROUPS[group]
    ds = image_header(CTImageStorage, "CT", pid, study, series, n, n, bits, rep)
    ds.StudyID = ""
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [f"{sp:.6f}", f"{sp:.6f}"]
    if group == "defect":
        intercept = float(rng.choice([0.0, 1.0, -50.0]))
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = "1"
    wc, ww = WINDOW_TAGS[window]
    ds.WindowCenter = wc if isinstance(wc, str) else [str(v) for v in wc]
    ds.WindowWidth = ww if isinstance(ww, str) else [str(v) for v in ww]
    return ds


def _assign_groups(rng, n_patients: int) -> list[str]:
    n_defect = max(1, round(0.12 * n_patients))
    n_signed = max(2, round(0.2 * n_patients))
    n_16 = max(2, round(0.3 * n_patients))
    groups = ["defect"] * n_defect + ["12s"] * n_signed + ["16s"] * n_16
    groups += ["12u"] * (n_patients - len(groups))
    return [groups[i] for i in rng.permutation(n_patients)]


def generate(out: Path, size: str = "smoke", seed: int = 0) -> dict:
    """Write an RSNA-layout dataset under ``out``; see :func:`_generate` for the ground truth."""
    with warnings.catch_warnings():
        # the real data's UIDs ("ID_<hex>") are not valid DICOM UIDs; keep them, silence pydicom
        warnings.simplefilter("ignore", UserWarning)
        return _generate(Path(out), size, seed)


def _generate(out: Path, size: str, seed: int) -> dict:
    """Write an RSNA-layout dataset under ``out`` and return its ground truth (JSON-able).

    Ground truth: ``n_files`` (``.dcm`` files), ``n_broken``, ``n_images`` (readable slices),
    ``n_patients``, ``n_defective`` (readable slices with the representation defect),
    ``n_<subtype>`` and ``n_positive_any`` (positive readable slices), ``n_low_brain``
    (readable slices whose fraction of pixels with 0 < HU < 80 is below 0.02),
    ``n_positive_low_brain``, ``n_csv_rows`` / ``n_duplicate_rows``, ``image_size``,
    ``groups`` (slices per pixel-format group), ``kept`` (the same counts over the slices a
    correct cleaning keeps: readable, labelled, brain fraction >= 0.02), ``broken`` (file name -> kind) and
    ``lesions_csv`` (the per-image lesion boxes, ``ground_truth_lesions.csv``).
    Boxes are ``row0, col0, row1, col1`` in the slice's own pixel grid (end exclusive).
    """
    cfg = SIZES[size]
    out = Path(out)
    folder = out / "stage_2_train"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    image_size = cfg["image_size"][seed % 2]
    n_patients = cfg["n_patients"]
    groups = _assign_groups(rng, n_patients)
    odd_size = int(rng.integers(n_patients))                   # one patient with another matrix size
    designs = [_patient_design(rng, i, image_size + (image_size // 4 if i == odd_size else 0), cfg)
               for i in range(n_patients)]
    # hemorrhages, drawn independently of every header choice above
    lesion_rng = np.random.default_rng([seed, 1])
    lesions = []
    for d in designs:
        n_les = int(lesion_rng.choice([0, 1, 1, 2, 2, 3]))
        subs = lesion_rng.choice(len(SUBTYPES), n_les, replace=False)
        lesions.append([_lesion(lesion_rng, SUBTYPES[j], d) for j in subs])
    used: set = set()
    label_rows, box_rows, slices = [], [], []
    counts = {f"n_{s}": 0 for s in LABELS}
    counts.update(n_images=0, n_defective=0, n_low_brain=0, n_positive_low_brain=0)
    kept = {f"n_{s}": 0 for s in LABELS}
    kept["n_images"] = 0
    group_counts = {g: 0 for g in GROUPS}
    for d, group, les in zip(designs, groups, lesions):
        prng = np.random.default_rng(d["seed"])
        y, x, sp = _grids(d)
        pid = "ID_" + _hex(rng, 8, used)
        study, series = "ID_" + _hex(rng, 10, used), "ID_" + _hex(rng, 10, used)
        template = _template(group, d["window"], d["size"], sp, pid, study, series, prng)
        c = d["axes"][2]
        levels = np.linspace(d["t_range"][0] * c, d["t_range"][1] * c, d["n_slices"])
        for z in levels:
            hu, masks = _slice_hu(d, y, x, float(z), les, prng)
            stored, hu_read = _stored(hu, group, d["size"])
            image_id = "ID_" + _hex(rng, 9, used)
            ds = template.copy()
            ds.file_meta = template.file_meta.copy()
            ds.SOPInstanceUID = image_id
            ds.file_meta.MediaStorageSOPInstanceUID = image_id
            ds.ImagePositionPatient = [f"{d['xy_table'][1]:.3f}", f"{d['xy_table'][0]:.3f}", f"{d['z_table'] + z:.3f}"]
            ds.PixelData = stored.tobytes()
            ds.save_as(folder / f"{image_id}.dcm", enforce_file_format=True)
            labels = {s: int(s in masks) for s in SUBTYPES}
            labels["any"] = int(any(labels.values()))
            frac = float(((hu_read > BRAIN_WINDOW[0]) & (hu_read < BRAIN_WINDOW[1])).mean())
            slices.append({"image_id": image_id, "labels": labels, "low": frac < LOW_BRAIN_THRESHOLD,
                           "group": group, "patient": pid})
            for s, m in masks.items():
                rows, cols = np.nonzero(m)
                box_rows.append([image_id, s, int(rows.min()), int(cols.min()), int(rows.max()) + 1,
                                 int(cols.max()) + 1, int(m.sum())])
    # broken files: two real slices damaged, one impostor added
    broken = {}
    victims = rng.choice(len(slices), 2, replace=False)
    for kind, v in zip(("truncated_header", "truncated_pixels"), victims):
        path = folder / f"{slices[v]['image_id']}.dcm"
        data = path.read_bytes()
        cut = 200 if kind == "truncated_header" else len(data) - len(data) // 3
        path.write_bytes(data[:cut])
        slices[v]["broken"] = kind
        broken[path.name] = kind
    impostor = "ID_" + _hex(rng, 9, used)
    (folder / f"{impostor}.dcm").write_text("This is not a DICOM file: an HTML error page saved as .dcm\n")
    broken[f"{impostor}.dcm"] = "not_dicom"
    for sl in slices:
        for s in LABELS:
            label_rows.append((f"{sl['image_id']}_{s}", sl["labels"][s]))
        if "broken" in sl:
            continue
        counts["n_images"] += 1
        group_counts[sl["group"]] += 1
        counts["n_defective"] += sl["group"] == "defect"
        counts["n_low_brain"] += sl["low"]
        counts["n_positive_low_brain"] += sl["low"] and sl["labels"]["any"]
        for s in LABELS:
            counts[f"n_{s}"] += sl["labels"][s]
            kept[f"n_{s}"] += sl["labels"][s] * (not sl["low"])
        kept["n_images"] += not sl["low"]
    # CSV: images in random order, six rows each, a few duplicated rows
    order = rng.permutation(len(slices))
    rows = [label_rows[6 * i + j] for i in order for j in range(6)]
    n_dup = max(3, len(rows) // 200)
    dup_at = np.sort(rng.choice(len(rows), n_dup, replace=False))
    for offset, i in enumerate(dup_at):
        rows.insert(int(i) + offset + 1, rows[int(i) + offset])
    with open(out / "stage_2_train.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ID", "Label"])
        writer.writerows(rows)
    with open(out / "ground_truth_lesions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "subtype", "row0", "col0", "row1", "col1", "n_pixels"])
        writer.writerows(box_rows)
    counts["n_positive_any"] = counts.pop("n_any")
    kept["n_positive_any"] = kept.pop("n_any")
    kept["n_patients"] = len({sl["patient"] for sl in slices if "broken" not in sl and not sl["low"]})
    return {
        "n_files": len(slices) + 1, "n_broken": len(broken), "n_patients": n_patients,
        **counts, "n_csv_rows": len(rows), "n_duplicate_rows": n_dup, "image_size": image_size,
        "groups": group_counts, "broken": broken, "low_brain_threshold": LOW_BRAIN_THRESHOLD,
        "lesions_csv": "ground_truth_lesions.csv", "kept": kept,
    }
