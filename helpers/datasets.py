"""Find a dataset: the user's download (``data_dir``) or the synthetic stand-in.

Every notebook starts with ``root = datasets.resolve("rsna", data_dir, synthetic_size)``:

* ``data_dir`` given: that folder must hold the public layout (``../shared/DATASETS.md``);
  a missing or empty folder raises :class:`DatasetLayoutError` naming the layout expected.
* ``data_dir`` is ``None``: the synthetic dataset under ``data/synthetic/<size>/<name>``
  (``<size>-seed<N>`` for a seed other than 0) is used, and generated first when it is
  missing (so each notebook runs on its own).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import paths

# The layouts live in helpers.layouts (below the readers); re-exported here for notebooks.
from .layouts import LAYOUTS, MARKERS, DatasetLayoutError, check_layout, layout_error  # noqa: E402,F401


def synthetic_dir(name: str, size: str = "full", seed: int = 0) -> Path:
    """Where the synthetic dataset ``name`` of a given size and seed lives.

    ``data/synthetic/<size>/<name>`` for seed 0 (the series' default), and
    ``data/synthetic/<size>-seed<seed>/<name>`` for any other seed, so a notebook run with
    ``seed = 1`` reads data generated with seed 1, not whichever seed came first.
    """
    folder = size if int(seed) == 0 else f"{size}-seed{int(seed)}"
    return paths.data_root() / "synthetic" / folder / name


def resolve(name: str, data_dir: str | os.PathLike | None = None, synthetic_size: str = "full",
            seed: int = 0) -> Path:
    """The dataset root to read: ``data_dir``, or the synthetic one (generated if missing)."""
    if data_dir is not None:
        return check_layout(name, data_dir)
    from . import synthetic

    root = synthetic_dir(name, synthetic_size, seed)
    if not synthetic.is_complete(root):
        synthetic.generate(name, root, size=synthetic_size, seed=seed)
    return check_layout(name, root)


def prepare_all(data_dir: str | os.PathLike | None = None, synthetic_size: str = "full", seed: int = 0,
                names=tuple(LAYOUTS)):
    """Generate (``data_dir=None``) or validate every dataset; one row per dataset.

    With ``data_dir`` given, it is the folder that holds one subfolder per dataset
    (``rsna/``, ``dsb2/``, ``luna16/``, ``hcp/``); a missing or malformed one is reported in
    the ``status`` column, not raised, so one bad dataset does not hide the others.
    """
    import time

    import pandas as pd

    rows = []
    for name in names:
        start = time.perf_counter()
        try:
            root = resolve(name, None if data_dir is None else Path(data_dir) / name, synthetic_size, seed)
            status = "ok"
        except DatasetLayoutError as err:
            root, status = Path(data_dir) / name, str(err).splitlines()[0]
        rows.append({"dataset": name, "title": LAYOUTS[name][0], "root": str(root), "status": status,
                     "source": "synthetic" if data_dir is None else "user",
                     "seconds": round(time.perf_counter() - start, 1)})
    return pd.DataFrame(rows)


def layout_summary(root: str | os.PathLike):
    """Summarise a dataset folder: one row per top-level entry with file counts and sizes.

    Hidden files (caches such as the DICOM index) are left out.
    """
    import pandas as pd

    root = Path(root)
    rows = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        top = rel.parts[0] + ("/" if len(rel.parts) > 1 else "")
        row = rows.setdefault(top, {"entry": top, "files": 0, "extensions": set(), "MB": 0.0})
        row["files"] += 1
        row["extensions"].add("".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix)
        row["MB"] += path.stat().st_size / 2**20
    table = pd.DataFrame(list(rows.values()), columns=["entry", "files", "extensions", "MB"])
    table["extensions"] = table["extensions"].map(lambda s: ", ".join(sorted(e or "(none)" for e in s)))
    table["MB"] = table["MB"].round(1)
    return table


def _first_readable(files, read, limit: int = 40, score=None):
    """Read up to ``limit`` files (sorted) and keep the best-scoring one that reads."""
    best, best_score, skipped = None, -np.inf, 0
    for path in sorted(files)[:limit]:
        try:
            image = read(path)
        except Exception:  # noqa: BLE001 - an example skips broken files, the readers report them
            skipped += 1
            continue
        value = score(image) if score else 0.0
        if best is None or value > best_score:
            best, best_score = (path, image), value
        if score is None:
            break
    return best, skipped


def example_image(name: str, root: str | os.PathLike):
    """One 2-D example image of a dataset, in physical units, read with the series' readers.

    Returns ``(image, title, (vmin, vmax))``: a CT slice in HU (RSNA: the slice with the most
    brain among the first files; LUNA16: the middle axial slice of the first readable series),
    a cardiac frame (arbitrary MR units) or the middle axial slice of a brain volume in RAS
    orientation. Unreadable files are skipped (the readers of each notebook count them).
    """
    root = check_layout(name, root)
    if name == "rsna":
        from .dicom import read_hu

        found, _ = _first_readable(list((root / "stage_2_train").glob("*.dcm")), read_hu,
                                   score=lambda hu: float(np.mean((hu > 0) & (hu < 80))))
        return found[1], f"RSNA head CT: {found[0].name} (HU, brain window)", (0, 80)
    if name == "dsb2":
        from . import dsb2

        files = dsb2.short_axis_files(root)
        found, _ = _first_readable(files[len(files) // 2:], dsb2.read_frame)
        image = found[1]
        return image, f"DSB2 cine MRI: {found[0].relative_to(root)}", tuple(np.percentile(image, [1, 99.5]))
    if name == "luna16":
        from . import metaimage

        files = sorted(root.glob("subset*/*.mhd"))
        found, _ = _first_readable(files, lambda p: metaimage.read_mhd(p)[0])
        volume = found[1]
        return volume[volume.shape[0] // 2], f"LUNA16 chest CT: {found[0].name[:24]}… (HU, lung window)", (-1350, 150)
    from . import nifti

    files = [p for p in sorted((root / "brain_nii").iterdir()) if nifti.is_nifti(p)]
    found, _ = _first_readable(files, lambda p: nifti.load_canonical(p)[0])
    volume = found[1]
    image = np.rot90(volume[:, :, volume.shape[2] // 2])  # axial slice, anterior up
    return image, f"HCP-style T1 MRI: {found[0].name} (RAS, axial)", tuple(np.percentile(volume, [1, 99.5]))
