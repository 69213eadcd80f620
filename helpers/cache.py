"""Caches of derived data: keyed by the source files, written atomically, never over raw data.

Every stage that derives data from a dataset (a DICOM index, cleaned slices, a subjects ×
voxels matrix) caches it through this module:

* **Where.** ``cache_dir(root)`` is ``<root>/.medimg_cache`` when the dataset folder is
  writable ("next to the data"), otherwise ``data/processed/<name>-<hash of root>`` (a
  read-only download stays untouched). Raw files are only ever read.
* **Key.** :func:`fingerprint` hashes each source file's path, size and modification time
  plus the parameters of the stage, so editing, adding or removing a file, or changing a
  parameter, makes a new key; an unchanged dataset hits the cache.
* **Atomic.** Files are written to a temporary name beside the target and renamed into
  place (:func:`helpers.io.atomic_path`), so an interrupted run never leaves a cache that
  looks complete.

Example::

    key = cache.fingerprint(files, stage="index", version=1)
    table = cache.cached_table(cache.cache_dir(root) / f"index-{key}.parquet", build)
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import paths
from .io import atomic_path

if TYPE_CHECKING:
    import pandas as pd

CACHE_FOLDER = ".medimg_cache"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def cache_dir(root: str | os.PathLike, name: str | None = None) -> Path:
    """The cache folder for dataset ``root``: beside the data if writable, else ``data/processed``."""
    root = Path(root).expanduser().resolve()
    if os.access(root, os.W_OK) and _writable(root / CACHE_FOLDER):
        return root / CACHE_FOLDER
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    folder = paths.processed_dir(f"{name or root.name}-{digest}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fingerprint(files: Iterable[str | os.PathLike], **params) -> str:
    """A short hash of the files' paths, sizes and modification times, and of ``params``.

    A file that has vanished contributes its path and ``missing`` (so the key still changes).
    """
    h = hashlib.sha1()
    for f in sorted(f if isinstance(f, str) else str(Path(f)) for f in files):
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0missing\n".encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def cached_table(path: str | os.PathLike, build: Callable[[], pd.DataFrame]):
    """Read the Parquet table at ``path``, or ``build()`` it, write it atomically and return it."""
    import pandas as pd

    path = Path(path)
    if path.is_file():
        try:
            return pd.read_parquet(path)
        except Exception:  # a damaged cache is rebuilt, never trusted
            pass
    table = build()
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
    return table


def cached_arrays(path: str | os.PathLike, build: Callable[[], dict], keys=None) -> dict:
    """Read the ``.npz`` at ``path`` as a dict of arrays, or ``build()`` it and save it atomically.

    ``keys`` limits what is read from an existing cache (e.g. the ids without the images);
    a fresh build returns every array it built.
    """
    path = Path(path)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in (data.files if keys is None else keys)}
        except Exception:
            pass
    arrays = build()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return arrays
