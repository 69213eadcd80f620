"""Benchmark: does the RSNA cleaning scale? Time and peak memory at ~1k, 4k and 16k slices of 512 x 512.

Not a test (issue 14 item 6 and the memory acceptance). Steps:

1. **Data.** Builds RSNA-layout folders ``<work>/rsna-<N>/`` (``stage_2_train/ID_<hex>.dcm`` +
   ``stage_2_train.csv``) of exactly ``N`` files, reusing a folder that exists (each is
   written under a temporary name and renamed when complete). Source: the full synthetic
   RSNA set (``datasets.resolve("rsna", None, "full", 0)``: 2,238 files of 256 x 256, one
   patient 320 x 320), only read. The generator has no 512 px option, so every readable
   slice is upsampled 2 x 2 (nearest neighbour on the *stored* values, so the pixel-format
   groups, the -3024 padding and the planted representation defect keep their exact values)
   with ``Rows``/``Columns`` doubled and ``PixelSpacing`` halved: 512 x 512 slices (the odd
   patient 640 x 640), ~0.5 MB a file like the real data. Whole series are copied round
   after round until ``N - 3`` slices are written (the last series may be cut); every copy
   of a series gets a new ``PatientID``/``StudyInstanceUID``/``SeriesInstanceUID`` and a
   table-height shift, every slice a new ``SOPInstanceUID`` (= file stem) and its six label
   rows under the new ID (CSV rows in random image order). The 3 broken files of the source
   (truncated header, truncated pixels, not DICOM) are copied once, with their label rows.
2. **Streamed vs plain.** For each ``N``, each call in a fresh subprocess (``--one N MODE
   PHASE``, one JSON line back) so no peak carries over, with the peak RSS of the whole
   process tree (the Python process plus every joblib/loky worker; psutil, sampled every
   0.05 s in a background thread, summing ``rss`` over the process and
   ``children(recursive=True)``):

   * ``clean`` -- ``rsna.load_clean(root, 256, n_jobs=2, cache_dir=<fresh>)`` then reading
     the table (label counts) and the first and last image; *cold*: fresh ``cache_dir`` and
     the index cache ``<root>/.medimg_cache`` removed; *warm*: the same call again.
   * ``plain`` -- what a user writes without the helpers: ``joblib.Parallel(n_jobs=2)`` over
     the files, each ``pydicom.dcmread`` -> ``pixel_array * slope + intercept`` -> PIL
     bilinear resize to 256 (float32) returned to the parent, ``np.stack`` -> ``np.save``,
     plus the label CSV pivoted with pandas; files that raise are skipped. *cold*: no
     ``.npy`` yet; *warm*: the script's own cache, ``np.load`` of the saved ``.npy``
     (everything in memory). No defect repair, no head crop: less work per slice than
     ``clean``.
3. Prints markdown tables (time, files/s, peak RSS, ratios, growth 1k -> 16k, an
   extrapolation to the real 752,803 slices) and writes them to ``bench/results/scale.md``,
   the raw numbers to ``bench/results/scale.json``.
4. **Notebooks.** ``notebooks/01_data_cleaning.ipynb -p data_dir <root>`` twice (first: no
   caches; second: cached) and then ``notebooks/04_metadata_baselines.ipynb -p data_dir <root>
   -p epochs 1 -p image_size 128`` (its default size), each as ``python -m papermill``
   subprocess with ``MEDIMG_DATA=<work>/nbdata`` (their ``data/processed`` cleaned stores go
   there, nothing into the repository's ``data/processed``), sampling the peak RSS of the
   papermill process tree (papermill, the kernel, its loky workers). 04 runs after 01, so
   its header index is cached, but it always builds its own 128 px cleaned store (01's is
   256 px): 04's first run includes that build; its second run does not. The acceptance:
   peak(largest) <= 1.5 x peak(smallest) + 300 MiB for 01 and 04, the first 01 run on 16k
   >= ~207 slices/s, the cached 01 re-run <= 15 % of the first.

Resumable: every measurement is stored in ``bench/results/scale.json`` as it finishes and
skipped on the next run (``--redo`` measures again). Select with ``--sizes`` and ``--only``.
Hand-written observations kept under ``"notes"`` in the JSON are printed at the end of the report.

    python bench/bench_scale.py --sizes 1000                      # a quick run
    python bench/bench_scale.py                                   # 1000 4000 16000, everything
    python bench/bench_scale.py --sizes 16000 --only notebooks
    python bench/bench_scale.py --report                          # re-print the tables from the JSON
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS_JSON = ROOT / "bench" / "results" / "scale.json"
RESULTS_MD = ROOT / "bench" / "results" / "scale.md"
REAL_N = 752_803
IMAGE_SIZE = 256
N_JOBS = 2
MIB = 2**20
MODES = ("clean", "plain", "notebooks", "nb01", "nb04")
NOTEBOOK_RUNS = (("01", "first"), ("01", "second"), ("04", "first"), ("04", "second"))
NOTEBOOKS = {"01": "01_data_cleaning", "04": "04_metadata_baselines"}


# ---------------------------------------------------------------------------------------
# Peak RSS of a process tree
# ---------------------------------------------------------------------------------------
class TreeSampler(threading.Thread):
    """Samples the summed RSS of process ``pid`` and all its descendants every ``interval`` s.

    ``peak`` is the largest sum seen; ``peak_by_role`` the largest RSS of each role (``main``:
    ``pid`` itself, ``kernel``: an ipykernel child, ``workers``: every other descendant,
    summed) -- each at its own moment, so they need not add up to ``peak``. RSS is also split
    as Linux reports it (``/proc/<pid>/status``): ``anon`` (heap: what the process holds) and
    ``file`` (pages of mapped files, e.g. memory-mapped ``.npy`` shards and shared libraries:
    page cache, dropped under memory pressure). ``timeline`` keeps ``(time, tree, kernel)``
    samples so a notebook's peak can be traced to the cell running at the time.
    """

    def __init__(self, pid: int, interval: float = 0.05, timeline: bool = False):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_by_role = {"main": 0, "kernel": 0, "workers": 0}
        self.peak_kind = {"anon": 0, "file": 0}
        self.max_procs = 0
        self.n_samples = 0
        self.timeline: list | None = [] if timeline else None
        self._halt = threading.Event()
        self._roles: dict[int, str] = {}
        self._cpu: dict[int, tuple[str, float]] = {}   # pid -> (role, user + system s, last seen)

    def _role(self, p) -> str:
        if p.pid not in self._roles:
            try:
                cmd = " ".join(p.cmdline())
            except Exception:   # noqa: BLE001 - gone or unreadable
                cmd = ""
            self._roles[p.pid] = "kernel" if "ipykernel" in cmd else "workers"
        return self._roles[p.pid]

    @staticmethod
    def _rss(p) -> tuple[int, int, int]:
        """(rss, anon, file + shmem) in bytes, from /proc/<pid>/status (psutil's rss as a fallback)."""
        try:
            fields = {}
            with open(f"/proc/{p.pid}/status") as fh:
                for line in fh:
                    if line.startswith(("VmRSS", "RssAnon", "RssFile", "RssShmem")):
                        key, value = line.split(":", 1)
                        fields[key] = int(value.split()[0]) * 1024
            return fields["VmRSS"], fields["RssAnon"], fields["RssFile"] + fields.get("RssShmem", 0)
        except (OSError, KeyError, ValueError):
            rss = p.memory_info().rss
            return rss, rss, 0

    def sample(self) -> None:
        import psutil

        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return
        total, anon, file = 0, 0, 0
        roles = {"main": 0, "kernel": 0, "workers": 0}
        for p in procs:
            try:
                rss, a, f = self._rss(p)
            except psutil.Error:
                continue
            total, anon, file = total + rss, anon + a, file + f
            role = "main" if p.pid == self.proc.pid else self._role(p)
            roles[role] += rss
            try:
                t = p.cpu_times()
                self._cpu[p.pid] = (role, t.user + t.system)
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)
        self.peak_kind["anon"] = max(self.peak_kind["anon"], anon)
        self.peak_kind["file"] = max(self.peak_kind["file"], file)
        for k, v in roles.items():
            self.peak_by_role[k] = max(self.peak_by_role[k], v)
        self.max_procs = max(self.max_procs, len(procs))
        self.n_samples += 1
        if self.timeline is not None:
            self.timeline.append((time.time(), total, roles["kernel"], anon))

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> dict:
        self._halt.set()
        self.join()
        return {"peak_mib": round(self.peak / MIB, 1),
                **{f"peak_{k}_mib": round(v / MIB, 1) for k, v in self.peak_by_role.items()},
                **{f"peak_{k}_mib": round(v / MIB, 1) for k, v in self.peak_kind.items()},
                **{f"cpu_{k}_s": round(sum(c for r, c in self._cpu.values() if r == k), 1)
                   for k in ("main", "kernel", "workers")},
                "cpu_s": round(sum(c for _, c in self._cpu.values()), 1),
                "max_procs": self.max_procs, "n_samples": self.n_samples}


def _mib_now() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / MIB, 1)


# ---------------------------------------------------------------------------------------
# 1. The datasets
# ---------------------------------------------------------------------------------------
def _hex_id(rng, n: int, used: set) -> str:
    while True:
        value = "ID_" + "".join(rng.choice(list("0123456789abcdef"), n))
        if value not in used:
            used.add(value)
            return value


def _upsampled(path: Path):
    """The slice at ``path`` as 2 x 2 larger pixels (nearest neighbour on the stored values)."""
    import pydicom

    ds = pydicom.dcmread(path)
    stored = ds.pixel_array
    big = np.repeat(np.repeat(stored, 2, axis=0), 2, axis=1)
    ds.Rows, ds.Columns = int(big.shape[0]), int(big.shape[1])
    ds.PixelSpacing = [f"{float(v) / 2:.6f}" for v in ds.PixelSpacing]
    ds.PixelData = np.ascontiguousarray(big).tobytes()
    return ds


def build_dataset(work: Path, n: int, seed: int = 0) -> tuple[Path, dict]:
    """``<work>/rsna-<n>``: exactly ``n`` files of 512 px slices (see the module docstring); reused when present."""
    import warnings

    import pandas as pd
    import pydicom

    from helpers import datasets, rsna

    final = work / f"rsna-{n}"
    info_path = work / f"rsna-{n}.json"
    if final.is_dir() and info_path.is_file():
        return final, json.loads(info_path.read_text())
    start = time.perf_counter()
    source = datasets.resolve("rsna", None, "full", seed)
    truth = json.loads((source / "ground_truth.json").read_text())
    broken = sorted(truth["broken"])
    labels = rsna.load_labels(source).set_index("image_id")
    # the source's readable slices, grouped by series and ordered by z
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for f in sorted((source / rsna.IMAGE_FOLDER).glob("*.dcm")):
            if f.name in broken:
                continue
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            rows.append({"path": f, "series": str(ds.SeriesInstanceUID), "z": float(ds.ImagePositionPatient[2])})
    src = pd.DataFrame(rows).sort_values(["series", "z"])
    series = [list(g["path"]) for _, g in src.groupby("series", sort=True)]
    target = n - len(broken)
    if target <= 0:
        raise ValueError(f"--sizes must be larger than {len(broken)}")
    # which copies: round r of series s, all its slices, until `target` slices (the last one cut)
    plan: dict[int, list[tuple[int, int]]] = {}           # series -> [(round, n_slices)]
    count, r = 0, 0
    while count < target:
        for s, files in enumerate(series):
            k = min(len(files), target - count)
            if k <= 0:
                break
            plan.setdefault(s, []).append((r, k))
            count += k
        r += 1
    rng = np.random.default_rng([seed, n])
    used = {Path(b).stem for b in broken}
    label_rows: list[tuple[str, dict]] = []
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f".rsna-{n}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    folder = tmp / rsna.IMAGE_FOLDER
    folder.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # RSNA-style "ID_..." UIDs are not valid UIs
        for s in sorted(plan):
            copies = plan[s]
            ids = [(_hex_id(rng, 8, used), _hex_id(rng, 10, used), _hex_id(rng, 10, used),
                    float(rng.uniform(-50, 50))) for _ in copies]
            for j, path in enumerate(series[s][:max(k for _, k in copies)]):
                ds = _upsampled(path)
                original = ds.SOPInstanceUID
                z0 = [float(v) for v in ds.ImagePositionPatient]
                for (_, k), (pid, study, serie, dz) in zip(copies, ids):
                    if j >= k:
                        continue
                    image_id = _hex_id(rng, 9, used)
                    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = pid, study, serie
                    ds.SOPInstanceUID = image_id
                    ds.file_meta.MediaStorageSOPInstanceUID = image_id
                    ds.ImagePositionPatient = [f"{z0[0]:.3f}", f"{z0[1]:.3f}", f"{z0[2] + dz:.3f}"]
                    ds.save_as(folder / f"{image_id}.dcm", enforce_file_format=True)
                    label_rows.append((image_id, labels.loc[original]))
    for b in broken:                                        # once each, unchanged, under their own names
        shutil.copyfile(source / rsna.IMAGE_FOLDER / b, folder / b)
        if Path(b).stem in labels.index:
            label_rows.append((Path(b).stem, labels.loc[Path(b).stem]))
    order = rng.permutation(len(label_rows))
    csv = [(f"{label_rows[i][0]}_{s}", int(label_rows[i][1][s])) for i in order for s in rsna.LABELS]
    pd.DataFrame(csv, columns=["ID", "Label"]).to_csv(tmp / rsna.LABELS_CSV, index=False)
    n_files = len(list(folder.glob("*.dcm")))
    if n_files != n:
        raise RuntimeError(f"built {n_files} files, expected {n}")
    os.replace(tmp, final)
    info = {"n_files": n_files, "n_series_copies": sum(len(c) for c in plan.values()), "rounds": r,
            "source": str(source.relative_to(ROOT)) if source.is_relative_to(ROOT) else str(source),
            "bytes": sum(f.stat().st_size for f in (final / rsna.IMAGE_FOLDER).iterdir()),
            "build_seconds": round(time.perf_counter() - start, 1)}
    info_path.write_text(json.dumps(info, indent=1))
    return final, info


# ---------------------------------------------------------------------------------------
# 2. One measured call (runs in its own subprocess: `--one N MODE PHASE`)
# ---------------------------------------------------------------------------------------
def _plain_one(path: str):
    """A user's per-file function: read, rescale, resize. None for a file that fails."""
    import pydicom
    from PIL import Image

    try:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        img = Image.fromarray(hu.astype(np.float32), mode="F").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        return np.asarray(img, dtype=np.float32)
    except Exception:   # noqa: BLE001 - a plain script skips what it cannot read
        return None


def _plain(root: Path, out: Path) -> dict:
    """The plain script: cache file present -> np.load, else build it."""
    import glob

    import pandas as pd
    from joblib import Parallel, delayed

    labels = pd.read_csv(root / "stage_2_train.csv")
    labels[["image_id", "subtype"]] = labels["ID"].str.rsplit("_", n=1, expand=True)
    labels = labels.drop_duplicates(["image_id", "subtype"]).pivot(index="image_id", columns="subtype",
                                                                   values="Label")
    if out.is_file():
        images = np.load(out)
        return {"n_images": len(images), "n_labelled": len(labels), "phase_did": "np.load", "_held": images}
    files = sorted(glob.glob(str(root / "stage_2_train" / "*.dcm")))
    arrays = Parallel(n_jobs=N_JOBS)(delayed(_plain_one)(f) for f in files)
    arrays = [a for a in arrays if a is not None]
    images = np.stack(arrays)
    np.save(out, images)
    return {"n_images": len(images), "n_labelled": len(labels), "phase_did": "build + np.save",
            "array_mib": round(images.nbytes / MIB, 1), "_held": images}


def _clean(root: Path, cache: Path) -> dict:
    from helpers import rsna

    images, table = rsna.load_clean(root, IMAGE_SIZE, n_jobs=N_JOBS, cache_dir=cache)
    counts = table[list(rsna.LABELS)].sum().to_dict()       # reading the table
    first, last = images[0], images[len(images) - 1]
    report = rsna.build_report(root, IMAGE_SIZE, cache)
    return {"n_images": len(images), "n_positive_any": int(counts["any"]), "image_sum": float(first.sum() + last.sum()),
            "n_built": report.get("n_built"), "n_reused": report.get("n_reused"),
            "n_shards": report.get("n_shards"), "shard_size": report.get("shard_size"),
            "_table": table, "_held": (images, table)}


def one(n: int, mode: str, phase: str, work: Path) -> dict:
    """Measure one call in this (fresh) process; caches are reset by the parent."""
    import warnings

    warnings.simplefilter("ignore", UserWarning)
    root = work / f"rsna-{n}"
    import joblib  # noqa: F401 - imported before the clock, so neither mode pays for imports
    import pandas  # noqa: F401
    import pydicom  # noqa: F401
    from PIL import Image  # noqa: F401

    from helpers import rsna  # noqa: F401
    baseline = _mib_now()
    sampler = TreeSampler(os.getpid())
    sampler.sample()
    sampler.start()
    start = time.perf_counter()
    if mode == "clean":
        result = _clean(root, work / "cache" / f"clean-{n}")
    else:
        result = _plain(root, work / "plain" / f"plain-{n}.npy")
    seconds = time.perf_counter() - start
    sampler.sample()            # while the result is still held (a short call may fall between two samples)
    peaks = sampler.stop()
    end_main = _mib_now()
    out = {"n": n, "mode": mode, "phase": phase, "seconds": round(seconds, 2),
           "files_per_s": round(n / seconds, 1), **peaks, "baseline_main_mib": baseline, "end_main_mib": end_main,
           **{k: v for k, v in result.items() if not k.startswith("_")}}
    if mode == "clean":   # what the tables that grow with N weigh (measured after the clock)
        from helpers import dicom, rsna

        index = dicom.index_dicoms(root / rsna.IMAGE_FOLDER, n_jobs=1)
        labels = rsna.load_labels(root)
        out["index_table_mib"] = round(index.memory_usage(deep=True).sum() / MIB, 2)
        out["labels_table_mib"] = round(labels.memory_usage(deep=True).sum() / MIB, 2)
        out["clean_table_mib"] = round(result["_table"].memory_usage(deep=True).sum() / MIB, 2)
        out["index_columns"] = int(index.shape[1])
    return out


# ---------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------
def _load_results() -> dict:
    if RESULTS_JSON.is_file():
        return json.loads(RESULTS_JSON.read_text())
    return {"runs": {}, "datasets": {}}


def _save_results(results: dict) -> None:
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS_JSON.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
    os.replace(tmp, RESULTS_JSON)


def _machine() -> dict:
    import psutil

    return {"load_avg_1m": round(os.getloadavg()[0], 2), "mem_available_mib": round(psutil.virtual_memory().available / MIB)}


def _code() -> str:
    """A short hash of the helpers the measurement runs (the tree is edited while benchmarks run)."""
    import hashlib

    h = hashlib.sha1()
    for name in ("rsna", "shards", "dicom", "cache", "io", "training"):
        h.update((ROOT / "helpers" / f"{name}.py").read_bytes())
    for stem in NOTEBOOKS.values():
        h.update((ROOT / "notebooks" / f"{stem}.ipynb").read_bytes())
    return h.hexdigest()[:10]


def _subprocess_one(n: int, mode: str, phase: str, work: Path, log) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(n), mode, phase, "--work", str(work)]
    before = _machine()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, timeout=7200)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {proc.returncode}); see the log")
    return {**json.loads(lines[-1][len("RESULT "):]), "machine_before": before, "machine_after": _machine(),
            "code": _code(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def _reset_index_cache(root: Path) -> None:
    from helpers import cache

    shutil.rmtree(root / cache.CACHE_FOLDER, ignore_errors=True)


def run_pair(results: dict, n: int, mode: str, work: Path, root: Path, redo: bool, log) -> None:
    """cold then warm for ``clean`` or ``plain``; a warm run whose cold state is gone redoes cold."""
    runs = results["runs"]
    cold_key, warm_key = f"{n}/{mode}/cold", f"{n}/{mode}/warm"
    state = work / "cache" / f"clean-{n}" if mode == "clean" else work / "plain" / f"plain-{n}.npy"
    need_cold = redo or cold_key not in runs or ((redo or warm_key not in runs) and not state.exists())
    if need_cold:
        if mode == "plain":
            need = 2 * n * IMAGE_SIZE * IMAGE_SIZE * 4 + 2**30       # the list of arrays + np.stack
            import psutil

            if need > 0.8 * psutil.virtual_memory().available:
                runs[cold_key] = {"n": n, "mode": mode, "phase": "cold", "skipped":
                                  f"needs ~{need / MIB:.0f} MiB, {psutil.virtual_memory().available / MIB:.0f} free"}
                _save_results(results)
                return
        shutil.rmtree(work / "cache" / f"clean-{n}", ignore_errors=True)
        (work / "plain" / f"plain-{n}.npy").unlink(missing_ok=True)
        (work / "plain").mkdir(parents=True, exist_ok=True)
        _reset_index_cache(root)
        print(f"[{time.strftime('%H:%M:%S')}] {n} {mode} cold ...", flush=True)
        runs[cold_key] = _subprocess_one(n, mode, "cold", work, log)
        runs.pop(warm_key, None)
        _save_results(results)
        print(f"    {runs[cold_key]['seconds']} s, peak {runs[cold_key]['peak_mib']} MiB", flush=True)
    if redo or warm_key not in runs:
        print(f"[{time.strftime('%H:%M:%S')}] {n} {mode} warm ...", flush=True)
        runs[warm_key] = _subprocess_one(n, mode, "warm", work, log)
        _save_results(results)
        print(f"    {runs[warm_key]['seconds']} s, peak {runs[warm_key]['peak_mib']} MiB", flush=True)
    if mode == "plain":   # 4 bytes x 256^2 a slice: free the disk once both runs are measured
        (work / "plain" / f"plain-{n}.npy").unlink(missing_ok=True)


def run_notebook(results: dict, n: int, nb: str, phase: str, work: Path, root: Path, log) -> dict:
    """One papermill run; the peak RSS of its process tree (papermill + kernel + workers)."""
    nbdata = work / "nbdata"
    out_dir = work / "nb-out" / str(n)
    out_dir.mkdir(parents=True, exist_ok=True)
    image_size = 256 if nb == "01" else 128
    if phase == "first":   # the cleaned store this notebook builds; 01 also the header index
        for old in (nbdata / "processed").glob(f"rsna-clean-{root.name}-*/clean-{image_size}px-*"):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        if nb == "01":
            _reset_index_cache(root)
    stem = NOTEBOOKS[nb]
    executed = out_dir / f"{stem}-{phase}.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / f"{stem}.ipynb"), str(executed),
           "-k", "medimg-dl", "--cwd", str(ROOT / "notebooks"), "--no-progress-bar",
           "-p", "data_dir", str(root), "-p", "output_dir", str(out_dir / f"{stem}-{phase}")]
    if nb == "04":
        cmd += ["-p", "epochs", "1", "-p", "image_size", "128"]
    env = {**os.environ, "MEDIMG_DATA": str(nbdata), "MEDIMG_RUNS": str(work / "runs")}
    before = _machine()
    print(f"[{time.strftime('%H:%M:%S')}] {n} notebook {nb} {phase} ...", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
    sampler = TreeSampler(proc.pid, timeline=True)
    sampler.start()
    rc = proc.wait()
    seconds = time.perf_counter() - start
    peaks = sampler.stop()
    if rc != 0:
        raise RuntimeError(f"papermill {stem} on {root} failed (rc {rc}); see the log and {executed}")
    doc = json.loads(executed.read_text())
    cells = [(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0, i)
             for i, c in enumerate(doc["cells"]) if c["cell_type"] == "code"]
    cell_memory = _cell_memory(doc, sampler.timeline)
    record = {"n": n, "notebook": nb, "phase": phase, "seconds": round(seconds, 1),
              "papermill_duration": round(doc["metadata"].get("papermill", {}).get("duration") or 0.0, 1),
              "cells_seconds": round(sum(d for d, _ in cells), 1),
              "slowest_cells": [[i, round(d, 1)] for d, i in sorted(cells, reverse=True)[:4]],
              "cell_memory": cell_memory,
              "files_per_s": round(n / seconds, 1), **peaks, "machine_before": before, "machine_after": _machine(),
              "code": _code(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"    {record['seconds']} s, peak {record['peak_mib']} MiB", flush=True)
    return record


def _cell_memory(doc: dict, timeline: list) -> list:
    """Per code cell of an executed notebook: ``[cell, first line, seconds, peak tree MiB, peak anon MiB,
    kernel MiB at the end]``, from papermill's cell start/end times and the sampler's timeline.

    Cell numbers are those of the source notebook (papermill's injected-parameters cell left out).
    """
    from datetime import UTC, datetime

    def stamp(text):   # papermill writes UTC, with or without the zone
        if not text:
            return None
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()

    rows, source_index = [], -1
    for c in doc["cells"]:
        injected = "injected-parameters" in c.get("metadata", {}).get("tags", [])
        source_index += 0 if injected else 1
        meta = c.get("metadata", {}).get("papermill", {})
        t0, t1 = stamp(meta.get("start_time")), stamp(meta.get("end_time"))
        if c["cell_type"] != "code" or injected or t0 is None or t1 is None:
            continue
        inside = [s for s in timeline if t0 <= s[0] <= t1]
        before_end = [s for s in timeline if s[0] <= t1]
        if not inside and not before_end:
            continue
        src = c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        first = next((ln.strip() for ln in src.splitlines() if ln.strip() and not ln.startswith("#")), "")[:70]
        peak = max(s[1] for s in inside) if inside else before_end[-1][1]
        anon = max(s[3] for s in inside) if inside else before_end[-1][3]
        rows.append([source_index, first, round(t1 - t0, 1), round(peak / MIB), round(anon / MIB),
                     round((before_end[-1][2] if before_end else 0) / MIB)])
    return rows


def run_notebooks(results: dict, n: int, work: Path, root: Path, redo: bool, log, which=("01", "04")) -> None:
    runs = results["runs"]
    for nb, phase in NOTEBOOK_RUNS:
        if nb not in which:
            continue
        key = f"{n}/nb{nb}/{phase}"
        first = f"{n}/nb{nb}/first"
        if phase == "second" and first in runs and not redo and key not in runs:
            store = list((work / "nbdata" / "processed").glob(f"rsna-clean-{root.name}-*/clean-"
                                                              f"{256 if nb == '01' else 128}px-*/manifest.json"))
            if not store:   # the first run's cache is gone: measure both again
                runs.pop(first)
        if not redo and key in runs:
            continue
        if phase == "second" and first not in runs:
            runs[first] = run_notebook(results, n, nb, "first", work, root, log)
            _save_results(results)
        runs[key] = run_notebook(results, n, nb, phase, work, root, log)
        _save_results(results)


# ---------------------------------------------------------------------------------------
# 3. The report
# ---------------------------------------------------------------------------------------
def _fit(xs, ys) -> tuple[float, float]:
    """Least-squares line ``y = a + b x`` (b = 0 for one point)."""
    if len(xs) < 2:
        return float(ys[0]), 0.0
    b, a = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(a), float(b)


def _idle_s(r: dict) -> float | None:
    """Seconds the run would take on 2 idle cores, from CPU time: serial parts + workers' CPU / 2.

    The main process (and a notebook's kernel) mostly waits while the workers clean, so
    ``main + kernel + workers / 2``; an estimate for a shared machine, where wall time is noisy.
    """
    if r.get("cpu_s") is None:
        return None
    return r["cpu_main_s"] + r["cpu_kernel_s"] + r["cpu_workers_s"] / N_JOBS


def _fmt(v, digits=1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def report(results: dict) -> str:
    runs = results["runs"]
    sizes = sorted({r["n"] for r in runs.values()})
    lines = ["# Cleaning at scale: time and peak memory, 1k → 16k slices of 512 × 512", "",
             "`python bench/bench_scale.py` (issue 14 item 6). Synthetic RSNA slices upsampled 2 × 2 to 512 × 512 "
             "(see the script's docstring), cleaned to 256 px int16. **Measured on a shared 2-core machine "
             "(another engineer's jobs ran at the same time; the load average before and after each run is in "
             "`scale.json`), so times are indicative, not exact.** Peak RSS: the whole process tree (main process "
             "+ joblib/loky workers, + the kernel for notebooks), psutil every 0.05 s, RSS summed (shared pages "
             "such as libraries count once per process). Each measurement runs in a fresh process. Page cache: "
             "the files were written shortly before and fit in RAM, so *cold* means no cleaning/index cache, not "
             "a cold disk.", ""]
    if results.get("datasets"):
        lines += ["Datasets: " + "; ".join(f"{n}: {d['n_files']:,} files, {d['bytes'] / 2**30:.2f} GiB, "
                                           f"{d['n_series_copies']} series copies"
                                           for n, d in sorted(results["datasets"].items(), key=lambda kv: int(kv[0])))
                  + ".", ""]
    # -- table 1
    lines += ["## Streamed cleaning (`rsna.load_clean`) vs a plain script", "",
              "*clean*: `rsna.load_clean(root, 256, n_jobs=2, cache_dir=…)` + reading the table; *plain*: "
              "joblib 2 workers returning float32 arrays → `np.stack` → `np.save` (warm = its own cache, "
              "`np.load`).", "",
              "*CPU s*: user + system of the tree; *idle est.*: files/s on 2 idle cores estimated from CPU time "
              "(main + workers / 2), less sensitive to the other jobs on the machine than the wall-time rate.", "",
              "| N | mode | phase | seconds | files/s | CPU s | idle est. files/s | peak RSS tree MiB | main MiB "
              "| workers MiB | anon MiB | file MiB | shards built/reused |",
              "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for n in sizes:
        for mode in ("clean", "plain"):
            for phase in ("cold", "warm"):
                r = runs.get(f"{n}/{mode}/{phase}")
                if r is None:
                    continue
                if "skipped" in r:
                    lines.append(f"| {n:,} | {mode} | {phase} | skipped: {r['skipped']} | | | | | | | | | |")
                    continue
                shards_col = f"{r['n_built']}/{r['n_reused']}" if mode == "clean" else "–"
                idle = _idle_s(r)
                lines.append(f"| {n:,} | {mode} | {phase} | {r['seconds']:.1f} | {r['files_per_s']:,.0f} | "
                             f"{_fmt(r.get('cpu_s'))} | {_fmt(n / idle if idle else None, 0)} | "
                             f"{r['peak_mib']:,.0f} | {r['peak_main_mib']:,.0f} | {r['peak_workers_mib']:,.0f} | "
                             f"{_fmt(r.get('peak_anon_mib'), 0)} | {_fmt(r.get('peak_file_mib'), 0)} | {shards_col} |")
    # -- ratios
    lines += ["", "Ratios:", "", "| N | time clean/plain (cold) | peak clean/plain (cold) | peak clean/plain (warm) "
              "| warm/cold time, clean | warm/cold time, plain |", "|---:|---:|---:|---:|---:|---:|"]

    def get(n, mode, phase, key):
        r = runs.get(f"{n}/{mode}/{phase}")
        return None if r is None or "skipped" in r else r[key]

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    for n in sizes:
        cells = [ratio(get(n, "clean", "cold", "seconds"), get(n, "plain", "cold", "seconds")),
                 ratio(get(n, "clean", "cold", "peak_mib"), get(n, "plain", "cold", "peak_mib")),
                 ratio(get(n, "clean", "warm", "peak_mib"), get(n, "plain", "warm", "peak_mib")),
                 ratio(get(n, "clean", "warm", "seconds"), get(n, "clean", "cold", "seconds")),
                 ratio(get(n, "plain", "warm", "seconds"), get(n, "plain", "cold", "seconds"))]
        lines.append(f"| {n:,} | " + " | ".join(_fmt(c, 2) for c in cells) + " |")
    # -- growth
    lines += ["", "Growth of the peak RSS with N (smallest → largest N measured; slope of a least-squares line):", "",
              "| mode | phase | peak at smallest N MiB | peak at largest N MiB | × | MiB per 1,000 files |",
              "|---|---|---:|---:|---:|---:|"]
    fits = {}
    for mode in ("clean", "plain"):
        for phase in ("cold", "warm"):
            pts = [(n, get(n, mode, phase, "peak_mib")) for n in sizes if get(n, mode, phase, "peak_mib") is not None]
            if not pts:
                continue
            a, b = _fit([p[0] for p in pts], [p[1] for p in pts])
            fits[(mode, phase)] = (a, b)
            lines.append(f"| {mode} | {phase} | {pts[0][1]:,.0f} (N={pts[0][0]:,}) | {pts[-1][1]:,.0f} "
                         f"(N={pts[-1][0]:,}) | {pts[-1][1] / pts[0][1]:.2f} | {b * 1000:,.1f} |")
    # what grows in the main process of the streamed build
    big = max((n for n in sizes if get(n, "clean", "cold", "index_table_mib") is not None), default=None)
    if big is not None:
        r = runs[f"{big}/clean/cold"]
        lines += ["", f"In-memory tables of the streamed build at N = {big:,} (pandas deep size): header index "
                  f"{r['index_table_mib']:.1f} MiB ({r['index_columns']} columns), labels "
                  f"{r['labels_table_mib']:.1f} MiB, returned table {r['clean_table_mib']:.1f} MiB; shard size "
                  f"{r['shard_size']} slices ({r['shard_size'] * IMAGE_SIZE ** 2 * 2 / MIB:.0f} MiB of int16 a shard "
                  f"in each worker)."]
    # -- extrapolation
    lines += ["", f"## Extrapolation to the real RSNA training set ({REAL_N:,} slices)", ""]
    disk = REAL_N * IMAGE_SIZE * IMAGE_SIZE * 2
    lines.append(f"- **Disk** for the cleaned int16 256² store: {REAL_N:,} × 256 × 256 × 2 B = "
                 f"{disk / 1e9:,.1f} GB ({disk / 2**30:,.1f} GiB); the plain script's float32 `.npy` is twice that, "
                 f"{2 * disk / 2**30:,.1f} GiB.")
    rate = None
    for n in reversed(sizes):
        rate = get(n, "clean", "cold", "files_per_s")
        if rate:
            rate_n = n
            break
    if rate:
        t2 = REAL_N / rate
        idle = _idle_s(runs[f"{rate_n}/clean/cold"])
        idle_rate = rate_n / idle if idle else None
        lines.append(f"- **Time on 2 cores** at the cold rate measured at N = {rate_n:,} ({rate:,.0f} files/s, "
                     f"shared machine): {t2 / 3600:,.1f} h" + (
                         f"; at the idle-core rate estimated from its CPU time ({idle_rate:,.0f} files/s): "
                         f"{REAL_N / idle_rate / 3600:,.1f} h" if idle_rate else "") + ".")
        rate = idle_rate or rate
        per_worker = rate / N_JOBS
        lines.append(f"- **Time on a W-worker cluster** (Dask via joblib), assuming linear scaling at "
                     f"{per_worker:,.0f} files/s a worker: " + ", ".join(
                         f"W = {w}: {REAL_N / (per_worker * w) / 60:,.1f} min" for w in (8, 32, 128)) +
                     ". Caveat: linear scaling is an upper bound: the raw ~400 GB must be read over the network "
                     "file system (at ~0.5 MB a file, 128 workers at this rate want "
                     f"~{per_worker * 128 * 0.525:,.0f} MB/s), the header index (one pass, the cluster too) and the "
                     "label join and table assembly run on the client, and a shared machine (as here) gives less "
                     "than one core a worker.")
    if ("clean", "cold") in fits:
        a, b = fits[("clean", "cold")]
        lines.append(f"- **Memory, streamed build**: peak = {a:,.0f} MiB + {b * 1000:,.1f} MiB per 1,000 files "
                     f"(fit over the sizes measured) → ~{(a + b * REAL_N) / 1024:,.1f} GiB at {REAL_N:,}. "
                     "The part that grows is the per-file tables in the main process (index, labels, the "
                     "assembled table), not pixels; the shard size stops growing at 256 slices (N ≥ 16,384).")
    if ("plain", "cold") in fits:
        a, b = fits[("plain", "cold")]
        lines.append(f"- **Memory, plain script**: peak = {a:,.0f} MiB + {b * 1000:,.1f} MiB per 1,000 files → "
                     f"~{(a + b * REAL_N) / 1024:,.0f} GiB at {REAL_N:,} (the list of arrays plus `np.stack`'s copy: "
                     f"2 × N × 256² × 4 B = {2 * REAL_N * IMAGE_SIZE ** 2 * 4 / 2**30:,.0f} GiB) — it cannot run on "
                     "one machine; every re-run (`np.load`) needs half of that again.")
    # -- notebooks
    nbs = {k: v for k, v in runs.items() if "/nb" in k}
    if nbs:
        lines += ["", "## Notebooks 01 and 04 (papermill, whole process tree)", "",
                  "01 first: no index cache, no cleaned store; 01 second: both cached. 04 (`epochs=1`, "
                  "`image_size=128`) runs after 01: index cached, but it builds its own 128 px store on its "
                  "first run (01's is 256 px); its second run has it cached. `n_jobs=-1` (2 cores).", "",
                  "Peak columns: the tree (sum), then each role at its own peak, then the tree's anonymous "
                  "(heap) and file-backed (mapped files: shards, libraries; page cache) parts at their own peaks.",
                  "",
                  "| N | notebook | run | wall s | papermill duration s | files/s | CPU s | idle est. s "
                  "| peak tree MiB | papermill MiB | kernel MiB | workers MiB | anon MiB | file MiB |",
                  "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for n in sizes:
            for nb, phase in NOTEBOOK_RUNS:
                r = runs.get(f"{n}/nb{nb}/{phase}")
                if r is None:
                    continue
                lines.append(f"| {n:,} | {nb} | {phase} | {r['seconds']:.1f} | {r['papermill_duration']:.1f} | "
                             f"{r['files_per_s']:,.0f} | {_fmt(r.get('cpu_s'))} | {_fmt(_idle_s(r))} | "
                             f"{r['peak_mib']:,.0f} | {r['peak_main_mib']:,.0f} | "
                             f"{r['peak_kernel_mib']:,.0f} | {r['peak_workers_mib']:,.0f} | "
                             f"{_fmt(r.get('peak_anon_mib'), 0)} | {_fmt(r.get('peak_file_mib'), 0)} |")
        lines += _cell_growth(runs, sizes)
        lines += ["", "## Acceptance", ""]
        small, large = sizes[0], sizes[-1]
        for nb, phase in NOTEBOOK_RUNS:
            lo, hi = runs.get(f"{small}/nb{nb}/{phase}"), runs.get(f"{large}/nb{nb}/{phase}")
            if lo and hi and small != large:
                bound = 1.5 * lo["peak_mib"] + 300
                ok = hi["peak_mib"] <= bound
                lines.append(f"- {nb} {phase} run: peak({large:,}) = {hi['peak_mib']:,.0f} MiB "
                             f"{'≤' if ok else '>'} 1.5 × peak({small:,}) + 300 = {bound:,.0f} MiB: "
                             f"**{'holds' if ok else 'fails'}**.")
        for n in sizes:
            first, second = runs.get(f"{n}/nb01/first"), runs.get(f"{n}/nb01/second")
            if first:
                rate = n / first["seconds"]
                idle = _idle_s(first)
                lines.append(f"- 01 first run on {n:,}: {rate:,.0f} slices/s of notebook wall time "
                             f"({n / max(first['papermill_duration'], 1e-9):,.0f} by papermill's duration"
                             + (f"; {n / idle:,.0f} on 2 idle cores estimated from CPU time" if idle else "") + ") — "
                             f"target ≥ ~207: **{'holds' if rate >= 207 else 'fails'}**" +
                             ("" if n >= 16000 else " (the target is stated for 16k)") + ".")
            if first and second:
                share = second["seconds"] / first["seconds"]
                i1, i2 = _idle_s(first), _idle_s(second)
                lines.append(f"- 01 cached re-run on {n:,}: {second['seconds']:.1f} s = {share:.1%} of the first "
                             f"({first['seconds']:.1f} s)" + (f"; from CPU time {i2:.1f} / {i1:.1f} s = {i2 / i1:.1%}"
                                                               if i1 and i2 else "") +
                             f" — target ≤ 15 %: **{'holds' if share <= 0.15 else 'fails'}** (wall time).")
    if results.get("notes"):
        lines += ["", "## Observations", "", *[f"- {note}" for note in results["notes"]]]
    return "\n".join(lines) + "\n"


def _cell_growth(runs: dict, sizes: list) -> list:
    """Where a notebook's memory grows with N: per cell, the kernel's RSS at its end, smallest vs largest N."""
    lines = []
    small, large = sizes[0], sizes[-1]
    for nb, phase in NOTEBOOK_RUNS:
        lo, hi = runs.get(f"{small}/nb{nb}/{phase}"), runs.get(f"{large}/nb{nb}/{phase}")
        if small == large or not lo or not hi or not lo.get("cell_memory") or not hi.get("cell_memory"):
            continue
        before = {row[0]: row for row in lo["cell_memory"]}
        rows, previous = [], None
        for row in hi["cell_memory"]:
            cell, first, secs, peak, anon, kernel_end = row
            step = kernel_end - previous if previous is not None else kernel_end
            previous = kernel_end
            small_row = before.get(cell)
            rows.append((peak, cell, first, secs, anon, kernel_end, step, small_row))
        top = sorted(rows, reverse=True)[:4]
        lines += ["", f"Notebook {nb}, {phase} run: the cells with the highest tree peak at N = {large:,} "
                  f"(vs N = {small:,}); *kernel after* = the kernel's RSS when the cell ended, *step* = its change "
                  "over the cell.", "",
                  f"| cell | code | s | peak tree MiB ({large:,}) | anon MiB ({large:,}) | kernel after MiB "
                  f"({large:,}) | step MiB | peak tree MiB ({small:,}) | kernel after MiB ({small:,}) |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
        for peak, cell, first, secs, anon, kernel_end, step, sm in sorted(top, key=lambda t: t[1]):
            lines.append(f"| {cell} | `{first.replace('|', '/')}` | {secs} | {peak:,} | {anon:,} | {kernel_end:,} | "
                         f"{step:+,} | {sm[3] if sm else '–':,} | {sm[5] if sm else '–':,} |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "bench-scale", help="datasets, caches, outputs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000], help="files per dataset")
    parser.add_argument("--only", nargs="+", choices=MODES, default=["clean", "plain", "notebooks"],
                        help="what to measure (nb01 / nb04: one notebook)")
    parser.add_argument("--redo", action="store_true", help="measure again what scale.json already holds")
    parser.add_argument("--report", action="store_true", help="only print the tables from scale.json")
    parser.add_argument("--one", nargs=3, metavar=("N", "MODE", "PHASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    work = args.work.resolve()
    if args.one:
        print("RESULT " + json.dumps(one(int(args.one[0]), args.one[1], args.one[2], work)), flush=True)
        return
    results = _load_results()
    if not args.report:
        work.mkdir(parents=True, exist_ok=True)
        with open(work / "bench-scale.log", "a") as log:
            for n in sorted(args.sizes):
                root, info = build_dataset(work, n)
                results.setdefault("datasets", {})[str(n)] = info
                _save_results(results)
                print(f"[{time.strftime('%H:%M:%S')}] dataset {root}: {info['n_files']:,} files", flush=True)
                for mode in ("clean", "plain"):
                    if mode in args.only:
                        run_pair(results, n, mode, work, root, args.redo, log)
                which = [nb for nb in NOTEBOOKS if "notebooks" in args.only or f"nb{nb}" in args.only]
                if which:
                    run_notebooks(results, n, work, root, args.redo, log, which)
    text = report(results)
    print(text)
    RESULTS_MD.write_text(text)


if __name__ == "__main__":
    main()
