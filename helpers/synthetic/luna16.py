"""Synthetic chest CT with lung nodules in the LUNA16 layout (``../shared/DATASETS.md`` §3).

Writes::

    subset<k>/<seriesuid>.mhd + <seriesuid>.raw     MetaImage, MET_SHORT, Hounsfield units
    annotations.csv                                 seriesuid,coordX,coordY,coordZ,diameter_mm

Each series is a chest phantom in physical units: air (-1000 HU) around an elliptic body
(soft tissue ~30 HU, a fat layer ~-90 HU, a vertebra ~400 HU), two lungs (parenchyma
~-850 HU) that start and end within the scanned range, vessels as thin bright tubes running
in random directions through the lungs (the distractors: in one axial slice a vessel looks
like a small bright dot or streak), and 0–3 nodules, solid spheres of 5–22 mm diameter at
0–100 HU, well inside a lung. Spacing is anisotropic (0.85–1.25 mm in plane so that a whole,
small chest fits 96–160 voxels; 1.5–2.5 mm between slices), origins are non-zero and vary,
volume sizes vary (never assumed square). Noise ~20 HU.

Annotations are world coordinates (x, y, z) in mm of the sphere centres (not voxel centres),
as in LUNA16. One series has no nodule; one volume has a truncated ``.raw`` (and, in the
full size, one has an unreadable header): readers must skip and count them.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..metaimage import voxel_to_world, write_mhd

#: Bumped whenever the generator writes different data for the same seed: a dataset written
#: by another version is regenerated on first use (``synthetic.is_complete``).
VERSION = 1

SIZES = {
    "smoke": {"n_series": 16, "n_subsets": 2, "inplane": (96, 128), "slices": (56, 72), "n_vessels": 14},
    "full": {"n_series": 34, "n_subsets": 3, "inplane": (112, 160), "slices": (64, 110), "n_vessels": 24},
}
UID_ROOT = "1.3.6.1.4.1.14519.5.2.1.6279.6001."
SLICE_SPACINGS = (1.5, 2.0, 2.5)


def _soft(signed_mm: np.ndarray, spacing: float) -> np.ndarray:
    """1 inside (positive distance to the edge), 0 outside, a one-voxel linear ramp."""
    return np.clip(signed_mm / spacing + 0.5, 0.0, 1.0)


def _design(rng: np.random.Generator, cfg: dict) -> dict:
    nx = int(rng.integers(cfg["inplane"][0], cfg["inplane"][1] + 1))
    ny = int(np.clip(nx + rng.integers(-12, 13), cfg["inplane"][0], cfg["inplane"][1]))
    sxy = float(rng.uniform(0.85, 1.25))
    sz = float(rng.choice(SLICE_SPACINGS))
    nz = int(rng.integers(cfg["slices"][0], cfg["slices"][1] + 1))
    origin = np.array([-nx * sxy / 2 + rng.uniform(-20, 20), -ny * sxy / 2 + rng.uniform(-40, 10),
                       rng.uniform(-350, -50)])
    return {"shape": (nz, ny, nx), "spacing": (sz, sxy, sxy), "origin": origin}


def _anatomy(rng: np.random.Generator, shape, spacing) -> dict:
    """Body and lung geometry in mm, relative to the volume's first voxel."""
    nz, ny, nx = shape
    sz, sy, sx = spacing
    fov = np.array([nx * sx, ny * sy, nz * sz])
    body_c = np.array([fov[0] / 2 + rng.uniform(-5, 5), fov[1] / 2 + rng.uniform(-5, 5)])
    body_a = np.array([0.46 * fov[0] * rng.uniform(0.9, 1.0), 0.40 * fov[1] * rng.uniform(0.85, 1.0)])
    lung_a = np.array([0.36 * body_a[0], 0.62 * body_a[1], 0.40 * fov[2] * rng.uniform(0.85, 1.0)])
    z_c = fov[2] * rng.uniform(0.47, 0.53)
    lungs = [np.array([body_c[0] + side * 0.47 * body_a[0], body_c[1] - 0.08 * body_a[1], z_c]) for side in (-1, 1)]
    return {"body_c": body_c, "body_a": body_a, "lung_c": lungs, "lung_a": lung_a}


def _lung_level(point_mm: np.ndarray, anat: dict) -> float:
    """Smallest normalised ellipsoid radius of ``point_mm`` to a lung centre (<1 = inside)."""
    return min(float(np.sqrt(np.sum(((point_mm - c) / anat["lung_a"]) ** 2))) for c in anat["lung_c"])


def _random_lung_point(rng, anat: dict, margin: float) -> np.ndarray:
    for _ in range(1000):
        c = anat["lung_c"][rng.integers(2)]
        p = c + rng.uniform(-1, 1, 3) * anat["lung_a"]
        if _lung_level(p, anat) < margin:
            return p
    return anat["lung_c"][0].copy()


def _box(centre_mm, radius_mm, spacing, shape):
    """Index slices (z, y, x) of the voxels within ``radius_mm`` of ``centre_mm`` (x, y, z)."""
    out = []
    for c, s, n in zip(centre_mm[::-1], spacing, shape):
        lo, hi = int(np.floor((c - radius_mm) / s)), int(np.ceil((c + radius_mm) / s)) + 1
        out.append(slice(max(lo, 0), min(max(hi, 0), n)))
    return tuple(out)


def _grid(box, spacing):
    """Voxel-centre coordinates (x, y, z) in mm over ``box``, broadcastable (z, y, x)."""
    zz = np.arange(box[0].start, box[0].stop, dtype=np.float32)[:, None, None] * spacing[0]
    yy = np.arange(box[1].start, box[1].stop, dtype=np.float32)[None, :, None] * spacing[1]
    xx = np.arange(box[2].start, box[2].stop, dtype=np.float32)[None, None, :] * spacing[2]
    return xx, yy, zz


def _volume(rng: np.random.Generator, design: dict, cfg: dict, n_nodules: int):
    shape, spacing = design["shape"], design["spacing"]
    sz, sy, sx = spacing
    anat = _anatomy(rng, shape, spacing)
    full = tuple(slice(0, n) for n in shape)
    xx, yy, zz = _grid(full, spacing)
    b_c, b_a = anat["body_c"], anat["body_a"]
    ell = np.sqrt(((xx - b_c[0]) / b_a[0]) ** 2 + ((yy - b_c[1]) / b_a[1]) ** 2)
    body = _soft((1 - ell) * b_a[1], sx)
    fat = body * _soft((ell - 0.9) * b_a[1], sx)
    hu = -1000.0 + body * 1030.0 - fat * 120.0                             # air, tissue 30, fat -90
    spine = np.hypot(xx - b_c[0], yy - (b_c[1] + 0.72 * b_a[1]))
    hu = hu + 370.0 * _soft(0.13 * b_a[0] - spine, sx)                     # vertebra ~400 HU
    for c in anat["lung_c"]:
        lung = np.sqrt(((xx - c[0]) / anat["lung_a"][0]) ** 2 + ((yy - c[1]) / anat["lung_a"][1]) ** 2
                       + ((zz - c[2]) / anat["lung_a"][2]) ** 2)
        hu = hu - 880.0 * _soft((1 - lung) * anat["lung_a"][0], sx)         # parenchyma ~-850 HU
    hu = np.broadcast_to(hu, shape).astype(np.float32)
    for _ in range(cfg["n_vessels"]):                                      # vessels: bright tubes
        start = _random_lung_point(rng, anat, 0.95)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        length, radius = rng.uniform(15, 50), rng.uniform(0.5, 1.5)
        mid = start + direction * length / 2
        box = _box(mid, length / 2 + radius + 2, spacing, shape)
        bx, by, bz = _grid(box, spacing)
        rel = [bx - start[0], by - start[1], bz - start[2]]
        t = np.clip(sum(r * d for r, d in zip(rel, direction)), 0, length)
        dist = np.sqrt(sum((r - t * d) ** 2 for r, d in zip(rel, direction)))
        inside_lung = (hu[box] > -950) & (hu[box] < -500)
        hu[box] = np.where(inside_lung, np.maximum(hu[box], -850 + 890 * _soft(radius - dist, sx)), hu[box])
    nodules = []
    for _ in range(n_nodules):
        for _attempt in range(200):
            diameter = float(np.exp(rng.uniform(np.log(5.0), np.log(22.0))))
            margin = 1 - (diameter / 2 + 3) / anat["lung_a"][:2].min()
            centre = _random_lung_point(rng, anat, max(margin, 0.2))
            if all(np.linalg.norm(centre - n["centre_mm"]) > (diameter + n["diameter_mm"]) / 2 + 4 for n in nodules):
                break
        nodules.append({"centre_mm": centre, "diameter_mm": round(diameter, 2), "hu": float(rng.uniform(0, 100))})
        box = _box(centre, diameter / 2 + 2, spacing, shape)
        bx, by, bz = _grid(box, spacing)
        dist = np.sqrt((bx - centre[0]) ** 2 + (by - centre[1]) ** 2 + (bz - centre[2]) ** 2)
        hu[box] = np.maximum(hu[box], -850 + (nodules[-1]["hu"] + 850) * _soft(diameter / 2 - dist, sx))
    hu += rng.normal(0, 20, size=shape).astype(np.float32)
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16), nodules


def generate(out: Path, size: str = "smoke", seed: int = 0) -> dict:
    """Write a synthetic LUNA16-layout dataset under ``out``; return its ground truth."""
    cfg = SIZES[size]
    rng = np.random.default_rng(seed)
    out = Path(out)
    n_series = cfg["n_series"]
    no_nodule = int(rng.integers(n_series))
    broken = {int(i): kind for i, kind in zip(rng.choice([i for i in range(n_series) if i != no_nodule],
                                                        2 if size == "full" else 1, replace=False),
                                               ("truncated", "bad_header"))}
    rows, truth_nodules, series_info, broken_info = [], [], [], []
    for i in range(n_series):
        srng = np.random.default_rng(rng.integers(2**31))
        uid = UID_ROOT + "".join(str(d) for d in srng.integers(0, 10, 36)).lstrip("0")
        subset = f"subset{i % cfg['n_subsets']}"
        design = _design(srng, cfg)
        n_nod = 0 if i == no_nodule else int(srng.choice([1, 1, 2, 2, 3]))
        volume, nodules = _volume(srng, design, cfg, n_nod)
        folder = out / subset
        folder.mkdir(parents=True, exist_ok=True)
        mhd = write_mhd(folder / f"{uid}.mhd", volume, design["spacing"], design["origin"])
        for n in nodules:
            # the sphere centre in voxel coordinates (z, y, x), then world mm (x, y, z)
            zyx = n["centre_mm"][::-1] / np.asarray(design["spacing"])
            world = voxel_to_world(zyx, design["origin"], design["spacing"])
            rows.append([uid, *(round(float(v), 6) for v in world), n["diameter_mm"]])
            if i not in broken:
                truth_nodules.append({"seriesuid": uid, "subset": subset, "voxel_zyx": [round(float(v), 3) for v in zyx],
                                      "world_xyz": [round(float(v), 6) for v in world],
                                      "diameter_mm": n["diameter_mm"]})
        if i in broken:
            if broken[i] == "truncated":
                raw = mhd.with_suffix(".raw")
                data = raw.read_bytes()
                raw.write_bytes(data[: len(data) // 3])
            else:
                mhd.write_bytes(b"\x00\x17garbage, not a MetaImage header\xff\n")
            broken_info.append({"seriesuid": uid, "subset": subset, "kind": broken[i]})
        else:
            series_info.append({"seriesuid": uid, "subset": subset, "shape": list(design["shape"]),
                                "spacing": [round(float(v), 6) for v in design["spacing"]],
                                "origin": [round(float(v), 6) for v in design["origin"]], "n_nodules": n_nod})
    with open(out / "annotations.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        writer.writerows(rows)
    return {"n_series": n_series, "n_broken": len(broken_info), "n_readable_series": len(series_info),
            "n_annotations": len(rows), "n_nodules": len(truth_nodules),
            "series_without_nodules": [s["seriesuid"] for s in series_info if s["n_nodules"] == 0],
            "broken": broken_info, "series": series_info, "nodules": truth_nodules}
