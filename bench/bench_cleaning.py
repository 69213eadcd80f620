"""Benchmark notebook 01's cleaning, end to end: index -> repair -> crop -> resize -> save.

    python bench/bench_cleaning.py [--n 1000] [--n-jobs 2] [--image-size 256]

Takes ``--n`` slices of a full-size synthetic RSNA dataset (generated under
``data/synthetic/full/rsna`` when missing), copies them with the label CSV into a fresh
temporary folder (so no cache exists), then times one cold call of ``rsna.load_clean``:
the header index (``dicom.index_dicoms``), reading every slice in HU with the
representation repair, brain fraction, head crop, resize and the atomic save of the cleaned
arrays and table. Prints slices per second (target on 2 cores: >= 50) and the time of a
second, cached call.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from helpers import datasets, dicom, rsna


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="slices to clean")
    parser.add_argument("--n-jobs", type=int, default=2, help="joblib workers")
    parser.add_argument("--image-size", type=int, default=256, help="side of the cleaned slices")
    args = parser.parse_args(argv)

    source = datasets.resolve("rsna", None, "full", seed=0)
    files = sorted((source / rsna.IMAGE_FOLDER).glob("*.dcm"))[: args.n]
    with tempfile.TemporaryDirectory(prefix="bench-rsna-") as tmp:
        root = Path(tmp) / "rsna"
        (root / rsna.IMAGE_FOLDER).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, root / rsna.IMAGE_FOLDER / f.name)
        labels = pd.read_csv(source / rsna.LABELS_CSV)
        stems = {f.stem for f in files}
        labels[labels["ID"].str.rsplit("_", n=1).str[0].isin(stems)].to_csv(root / rsna.LABELS_CSV, index=False)
        cache = Path(tmp) / "cache"

        start = time.perf_counter()
        images, table = rsna.load_clean(root, args.image_size, n_jobs=args.n_jobs, cache_dir=cache)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        rsna.load_clean(root, args.image_size, n_jobs=args.n_jobs, cache_dir=cache)
        warm = time.perf_counter() - start
        report = rsna.summary(root, args.image_size, n_jobs=args.n_jobs, cache_dir=cache)
        # CPU cost per slice, serial, in this process: independent of other load on the machine
        sample = sorted((root / rsna.IMAGE_FOLDER).glob("*.dcm"))[:200]
        cpu = time.process_time()
        dicom.index_dicoms(sample, n_jobs=1, cache=False)
        for path in sample:
            try:
                rsna.clean_slice(path, args.image_size)
            except ValueError:
                pass
        cpu_ms = (time.process_time() - cpu) / len(sample) * 1000

    size = f"{int(table['rows'].median())} px" if len(table) else "?"
    print(f"slices: {len(files)} files ({size} source, cleaned to {args.image_size} px), n_jobs={args.n_jobs}")
    print(f"kept {report['n_kept']}, repaired {report['n_repaired']}, unreadable {report['n_unreadable']}, "
          f"dropped (low brain) {report['n_dropped_low_brain']}")
    print(f"cold (index + repair + crop + resize + save): {cold:6.2f} s  = {len(files) / cold:7.1f} slices/s "
          f"(target >= 50)")
    print(f"cached call:                                  {warm:6.2f} s  = {len(files) / warm:7.1f} slices/s")
    print(f"CPU time per slice (serial: header + read + repair + crop + resize): {cpu_ms:.1f} ms "
          f"-> {1000 / cpu_ms:.0f} slices/s per idle core; load average now {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
