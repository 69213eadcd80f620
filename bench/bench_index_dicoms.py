"""Benchmark: ``index_dicoms`` vs plain and careful pydicom loops over a folder of CT-like DICOM files.

Not a test. Writes ``--n`` (default 5,000) single-slice 512x512 int16 CT files with
RSNA-like headers into a temporary folder, then times, each producing one row of header
values per file:

  (a)  plain loop: full ``pydicom.dcmread(path)`` (pixels included) of every file and a dict
       of its non-binary, non-sequence elements ``{elem.keyword: elem.value}`` — what a
       straightforward script does;
  (a1) the careful user's loop: the same with ``dcmread(path, stop_before_pixels=True)``;
  (a2) (a1) spread over the joblib process pool with exactly the batching of
       ``index_dicoms``' parallel path (``n_jobs=-1``, batches of
       ``min(2000, max(64, ceil(n / (4 * workers))))`` files) — the fair baseline for (d).
       The workers turn pydicom's value types into plain int / float / str / list before
       the rows are pickled back, as ``index_dicoms`` does (pickling DSfloat, UID,
       MultiValue... costs about a quarter of the header read itself);
  (b)  ``helpers.dicom.index_dicoms(folder, cache=False)`` — its default route (in this
       process below ``PARALLEL_MIN_FILES`` files), fast header scanner on;
  (b0) (b) with the scanner switched off (``helpers.dicom._FAST = False``: every header
       through ``pydicom.dcmread(stop_before_pixels=True)`` and the same value conversion);
  (d)  (b) forced through the joblib process pool (``PARALLEL_MIN_FILES = 0``);
  (d0) (d) with the scanner off in the workers (a module switch does not reach loky's worker
       processes, so this runs ``helpers.dicom._read_batch`` with ``_FAST = False`` in each
       worker over the same batches, then the same ``_assemble`` into a table);
  (c)  ``helpers.dicom.index_dicoms(folder)`` a second time, served from the Parquet cache.

Every row is the best of three runs, (a)-(d0) interleaved (a burst of load on a shared
machine hits every contender); the process pool is started before timing (an
untimed warm-up run), so (a2), (d) and (d0) do not pay for starting workers. Everything is
measured with a warm page cache; when ``/proc/sys/vm/drop_caches`` is writable (root on a
real kernel) every contender except (c) is also run once with the page cache dropped before
it (cold); otherwise cold is reported as not measured. The index tables of (b), (b0), (d),
(d0) are checked equal. Other processes' CPU use during the warm runs is printed (psutil:
the machine's busy CPU time less this process's and its workers'), since a shared machine
slows the pool rows most. Prints a markdown table: seconds, files/s and the speed-ups over
(a), (a1) and (a2). Targets (issue 3, 2 cores): b/a >= 4, c/a >= 50.

    python bench/bench_index_dicoms.py [--n 5000] [--keep DIR] > bench/results/index-dicoms.md
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import dicom  # noqa: E402


def write_files(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` RSNA-like CT slices: ID_<hex>.dcm, 512x512 int16, ~40 series of slices."""
    from pydicom.uid import CTImageStorage, generate_uid

    from helpers.synthetic import image_header

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-256:256, -256:256]
    head = (yy / 200.0) ** 2 + (xx / 170.0) ** 2 < 1
    base = np.where(head, 40, -1024).astype(np.int16)
    noise = rng.normal(0, 8, size=(8, 512, 512)).astype(np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    series = [(generate_uid(), generate_uid(), f"ID_{rng.integers(16**9):09x}") for _ in range(max(1, n // 128))]
    for i in range(n):
        study, serie, patient = series[i % len(series)]
        name = f"ID_{rng.integers(16**9):09x}"
        ds = image_header(CTImageStorage, "CT", patient, study, serie, 512, 512, 16, 1)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = name
        ds.SeriesNumber = 1
        ds.InstanceNumber = i // len(series) + 1
        ds.ImagePositionPatient = [-125.0, -125.0, float(5 * (i // len(series)))]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.48828125, 0.48828125]
        ds.SliceThickness = 5.0
        ds.RescaleIntercept = -1024 if i % 3 else 0
        ds.RescaleSlope = 1
        ds.WindowCenter = [40, 40] if i % 2 else 40
        ds.WindowWidth = [80, 80] if i % 2 else 80
        ds.PixelData = (base + noise[i % len(noise)]).tobytes()
        ds.save_as(folder / f"{name}.dcm", enforce_file_format=True)


SKIP_VRS = ("SQ", "OB", "OW", "UN")


def header_row(ds) -> dict:
    return {e.keyword: e.value for e in ds if e.VR not in SKIP_VRS and e.keyword and e.keyword != "PixelData"}


def plain_loop(files: list[str]) -> list[dict]:
    """Baseline (a): full dcmread and a dict of the header elements, file by file."""
    import pydicom

    return [header_row(pydicom.dcmread(f)) for f in files]


def careful_loop(files: list[str]) -> list[dict]:
    """Baseline (a1): the same, headers only."""
    import pydicom

    return [header_row(pydicom.dcmread(f, stop_before_pixels=True)) for f in files]


def plain_value(value):
    """pydicom's value types (DSfloat, IS, UID, PersonName, MultiValue) as int / float / str / list."""
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue):
        return [plain_value(v) for v in value]
    for kind in (int, float, str):   # int before float: IS is an int; bool is not in a header
        if isinstance(value, kind):
            return kind(value)
    return value


def careful_batch(files: list[str]) -> list[dict]:
    """The worker of (a2): (a1)'s rows with plain values, cheap to send back to the parent."""
    with warnings.catch_warnings():   # workers do not inherit the parent's filters
        warnings.simplefilter("ignore")
        return [{k: plain_value(v) for k, v in row.items()} for row in careful_loop(files)]


def scanner_off_batch(paths: list[str], images_only: bool) -> list[dict]:
    """``dicom._read_batch`` with the fast scanner off, in whichever process runs it."""
    from helpers import dicom as module

    old, module._FAST = module._FAST, False
    try:
        return module._read_batch(paths, images_only)
    finally:
        module._FAST = old


def in_pool(fn, files: list[str], *args) -> list:
    """``fn(batch, *args)`` over the batches ``index_dicoms``' parallel path uses, in its pool."""
    import joblib

    workers = dicom._workers(-1)
    size = int(min(2000, max(64, math.ceil(len(files) / (workers * 4)))))   # as dicom._build_index
    batches = [files[i:i + size] for i in range(0, len(files), size)]
    parallel = joblib.Parallel(n_jobs=-1, prefer="processes", return_as="generator")
    rows: list = []
    for batch in parallel(joblib.delayed(fn)(b, *args) for b in batches):
        rows.extend(batch)
    return rows


def index_scanner_off(folder: Path):
    old, dicom._FAST = dicom._FAST, False
    try:
        return dicom.index_dicoms(folder, cache=False, progress=False)
    finally:
        dicom._FAST = old


def index_pool(folder: Path):
    old, dicom.PARALLEL_MIN_FILES = dicom.PARALLEL_MIN_FILES, 0
    try:
        return dicom.index_dicoms(folder, cache=False, progress=False)
    finally:
        dicom.PARALLEL_MIN_FILES = old


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def cpu_seconds() -> tuple[float, float, float]:
    """(wall clock, CPU seconds every process on the machine used, CPU seconds this process and
    its children — the pool's workers — used), to tell how much of the machine others took."""
    import psutil

    busy = psutil.cpu_times()
    me = psutil.Process()
    ours = sum(me.cpu_times()[:4])   # user, system, and reaped children's
    for child in me.children(recursive=True):
        try:
            ours += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return time.time(), sum(busy) - busy.idle - getattr(busy, "iowait", 0.0), ours


def timed(fn):
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--keep", type=Path, default=None, help="reuse / keep the files in this folder")
    args = parser.parse_args()
    # RSNA-style SOPInstanceUIDs ("ID_<hex>") are not valid UIDs: pydicom warns once per file.
    # Silence that for every contender so none pays for printing warnings.
    warnings.simplefilter("ignore")

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-dicom-")) / "stage_2_train"
    existing = dicom.dicom_files(folder) if folder.is_dir() else []
    if len(existing) != args.n:
        shutil.rmtree(folder, ignore_errors=True)
        t, _ = timed(lambda: write_files(folder, args.n))
        print(f"wrote {args.n} files in {t:.1f} s ({folder})\n", file=sys.stderr)
    files = [str(p) for p in dicom.dicom_files(folder)]
    n = len(files)
    load_before = os.getloadavg()
    shutil.rmtree(folder / ".medimg_cache", ignore_errors=True)

    contenders = {
        "a": ("plain loop, full `dcmread` (pixels read)", "in process", lambda: plain_loop(files)),
        "a1": ("`dcmread(stop_before_pixels=True)` loop", "in process", lambda: careful_loop(files)),
        "a2": ("`dcmread(stop_before_pixels=True)`", "joblib pool", lambda: in_pool(careful_batch, files)),
        "b": ("`index_dicoms`, scanner on (default)", "in process", lambda: dicom.index_dicoms(
            folder, cache=False, progress=False)),
        "b0": ("`index_dicoms`, scanner off (`_FAST = False`)", "in process", lambda: index_scanner_off(folder)),
        "d": ("`index_dicoms`, scanner on", "joblib pool", lambda: index_pool(folder)),
        "d0": ("`index_dicoms`, scanner off", "joblib pool",
               lambda: dicom._assemble(in_pool(scanner_off_batch, files, True))),
    }
    plain_loop(files[:50])                       # imports before timing
    in_pool(careful_batch, files[: 4 * 64])       # start the pool's workers (loky keeps them)
    in_pool(scanner_off_batch, files[: 4 * 64], True)
    best = {k: float("inf") for k in contenders}
    cpu_start = cpu_seconds()
    reference = None
    for _ in range(3):   # best of three, interleaved
        for key, (_, _, fn) in contenders.items():
            t, result = timed(fn)
            best[key] = min(best[key], t)
            assert len(result) == n
            if key in ("b", "b0", "d", "d0"):
                if reference is None:
                    reference = result
                    assert reference["error"].isna().all()
                assert result.equals(reference), "scanner on/off and in process/pool give the same table"
            del result   # no contender's output stays alive to slow the next one's garbage collections
    cpu_end = cpu_seconds()
    others = max(0.0, (cpu_end[1] - cpu_start[1]) - (cpu_end[2] - cpu_start[2])) / (cpu_end[0] - cpu_start[0])
    dicom.index_dicoms(folder, progress=False)             # writes the cache
    t_c = float("inf")
    for _ in range(3):   # best of three (a cached call is short, so one load burst would dominate)
        t, cached = timed(lambda: dicom.index_dicoms(folder, progress=False))
        t_c = min(t_c, t)
    assert cached.equals(reference)
    cold = {}
    if drop_caches():
        for key, (_, _, fn) in contenders.items():
            drop_caches()
            cold[key] = timed(fn)[0]
    load_after = os.getloadavg()

    def line(key, label, route, t, base):
        ratios = " | ".join(f"{base[r] / t:.1f}×" if r in base else "—" for r in ("a", "a1", "a2"))
        return f"| ({key}) | {label} | {route} | {t:.2f} | {n / t:,.0f} | {ratios} |"

    print(f"# `index_dicoms` vs pydicom loops, {n} files\n")
    print(f"`python bench/bench_index_dicoms.py --n {n}`: 512×512 int16 CT slices with RSNA-like headers "
          f"({sum(os.path.getsize(f) for f in files) / 2**30:.2f} GiB). {os.cpu_count()} cores "
          f"({platform.processor() or platform.machine()}), joblib pool of {dicom._workers(-1)} workers, "
          f"PARALLEL_MIN_FILES = {dicom.PARALLEL_MIN_FILES} (so (b) runs in process); load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; other processes used {others:.2f} of the "
          f"{os.cpu_count()} cores on average during the warm runs (the machine is shared).\n")
    header = ("| | contender | route | s | files/s | vs (a) full dcmread | vs (a1) stop_before_pixels | "
              "vs (a2) stop_before_pixels, pool |")
    rule = "|---|---|---|---:|---:|---:|---:|---:|"
    print("## Warm page cache (best of 3)\n")
    print(header)
    print(rule)
    for key, (label, route, _) in contenders.items():
        print(line(key, label, route, best[key], best))
    print(line("c", "`index_dicoms` again, from the Parquet cache", "in process", t_c, best))
    print()
    if cold:
        print("## Cold page cache (`/proc/sys/vm/drop_caches` before each, one run each)\n")
        print(header)
        print(rule)
        for key, (label, route, _) in contenders.items():
            print(line(key, label, route, cold[key], cold))
        print("\nCold means the guest kernel's page cache was dropped; on a virtual machine the host may "
              "still cache the disk image.")
    else:
        print("Cold page cache: not measured (`/proc/sys/vm/drop_caches` is not writable here).")
    if args.keep is None:
        shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
