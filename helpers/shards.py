"""Derived data on disk, shard by shard: fixed-size ``.npy`` shards, a Parquet table per shard, a manifest.

A *store* is one folder::

    shard-00000.images.npy   the shard's rows of array "images" (NumPy .npy, rows read in place)
    shard-00000.masks.npy    ... of every other array of the store, same rows
    shard-00000.parquet      the table of the same rows (one row per row of the arrays)
    shard-00001.images.npy ...
    manifest.json            written last: the store is complete only when it exists

:func:`build` cuts a list of items (e.g. file paths, or series) into shards of ``shard_size``
items and calls ``work(items)`` once per shard; a shard holds any number of rows (one per
file, or the selected slices of a few series), in joblib's active backend (a loky process pool by
default; ``with joblib.parallel_config(backend="dask")`` sends the shards to a Dask
cluster). The *worker* writes its shard to disk and returns only its row count, so memory
is bounded by the shard size times the number of workers, never by the number of items.

Each file is written under a temporary name and renamed into place (atomic on one file
system), the ``.npy`` files before the ``.parquet``: a shard counts as done only when its
``.parquet`` exists. A build that was interrupted (Ctrl-C, a killed kernel, a full disk)
resumes from the shards that are done and redoes only the others; a half-written file is
never read as complete. The manifest records ``key`` (the fingerprint of the inputs and
parameters, :func:`helpers.cache.fingerprint`): a store with another key is never reused.

:class:`ShardedArray` reads a store like an h5py or Zarr array: indexing (``a[3]``,
``a[10:20]``, ``a[[5, 1, 9]]``, a boolean mask) reads just those rows from the shards (positioned
reads, not memory maps, so what a reader has read does not stay in its RSS) and
returns a NumPy array; :meth:`ShardedArray.take`, :meth:`~ShardedArray.astype` and
:meth:`~ShardedArray.map` return lazy views that read nothing until indexed.

Why ``.npy`` shards and not Zarr: the stages write whole shards once and training reads
random single rows; a ``.npy`` serves a row by one positioned read with no decompression and no
per-call overhead, the format is NumPy's own, and an atomic rename per file is all the
resume logic needs. (Zarr would add chunk compression, which CT slices in int16 barely
benefit from here, and a dependency.)
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .io import atomic_path, write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 2


def shard_name(i: int) -> str:
    return f"shard-{i:05d}"


def is_on_disk(array) -> bool:
    """Whether ``array`` is an on-disk array (a :class:`ShardedArray` or alike: rows are read when indexed)."""
    return not isinstance(array, np.ndarray) and hasattr(array, "take") and hasattr(array, "shape")


def _npy(folder: Path, i: int, name: str) -> Path:
    return folder / f"{shard_name(i)}.{name}.npy"


def shard_done(folder: str | os.PathLike, i: int, names=()) -> bool:
    """Whether shard ``i`` of the store in ``folder`` is complete (its ``.parquet`` is written last)."""
    folder = Path(folder)
    return (folder / f"{shard_name(i)}.parquet").is_file() and all(_npy(folder, i, n).is_file() for n in names)


def is_complete(folder: str | os.PathLike, key: str | None = None) -> bool:
    """A finished store (manifest present, all shards there), built with ``key`` when given."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("format") != FORMAT_VERSION or (key is not None and manifest.get("key") != key):
        return False                      # another key, or a store of an older layout: rebuilt
    return all(shard_done(folder, i, manifest["arrays"]) for i in range(manifest["n_shards"]))


def _write_shard(folder: str, i: int, items: list, work: Callable, arrays: dict) -> int:
    """Run ``work`` on one shard's items and write its files atomically (runs in a worker); returns its rows."""
    out, table = work(items)
    if not isinstance(out, dict):
        (only,) = arrays
        out = {only: out}
    if set(out) != set(arrays):
        raise ValueError(f"shard {i}: work() returned arrays {sorted(out)}, the store has {sorted(arrays)}")
    n = len(table)
    folder = Path(folder)
    for name, (row_shape, dtype) in arrays.items():
        array = np.ascontiguousarray(out[name], dtype=dtype)
        if array.shape != (n, *row_shape):
            raise ValueError(f"shard {i}: work() returned {name} of shape {array.shape} and {n} table rows "
                             f"for {len(items)} items (rows of shape {tuple(row_shape)})")
        with atomic_path(_npy(folder, i, name)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    with atomic_path(folder / f"{shard_name(i)}.parquet") as tmp:
        table.reset_index(drop=True).to_parquet(tmp, index=False)
    return n


def _rows_of(folder: Path, i: int) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(folder / f"{shard_name(i)}.parquet").num_rows)


def build(folder: str | os.PathLike, items: Sequence, work: Callable, arrays: dict, shard_size: int = 256,
          n_jobs: int = -1, key: str = "", params: dict | None = None, progress: bool | None = None,
          desc: str = "shards") -> dict:
    """Build (or finish) the store in ``folder`` from ``items``, one shard of ``shard_size`` items per task.

    ``arrays`` names the store's arrays and their rows: ``{"images": ((96, 96), "float32"), ...}``.
    ``work(items) -> (arrays, table)``: a dict of arrays with the same number of rows ``k``
    each (or one array when the store has one), and a :class:`pandas.DataFrame` of ``k``
    rows, for one shard (``k`` may differ from ``len(items)``: e.g. the selected slices of a
    few series). It must be picklable (a module-level function or a :func:`functools.partial`
    of one) so that process pools and Dask workers can run it. Items that fail should be
    recorded in the table (with a reason), never raised.

    Shards already done in ``folder`` (same ``key``, ``shard_size`` and arrays) are kept.
    Returns the manifest, with ``n_built`` and ``n_reused`` shards of this call. Processed
    data never gathers in this process: each worker writes its shard and returns its row count.
    """
    import joblib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: (tuple(int(d) for d in shape), np.dtype(dtype).str) for name, (shape, dtype) in arrays.items()}
    n_shards = -(-len(items) // shard_size) if len(items) else 0
    spec = {"format": FORMAT_VERSION, "key": key, "n_items": len(items), "shard_size": int(shard_size),
            "n_shards": n_shards, "arrays": {k: {"row_shape": list(v[0]), "dtype": v[1]} for k, v in arrays.items()},
            "params": params or {}}
    stamp = folder / "build.json"          # what the shards on disk were built with
    try:
        previous = json.loads(stamp.read_text())
    except (OSError, ValueError):
        previous = None
    if previous != spec:                  # other inputs or layout: no shard on disk is ours
        for old in folder.glob("shard-*"):
            old.unlink(missing_ok=True)
        (folder / MANIFEST).unlink(missing_ok=True)
        write_json(stamp, spec)
    for tmp in folder.glob("*.tmp*"):     # left by an interrupted build; never complete
        tmp.unlink(missing_ok=True)
    todo = [i for i in range(n_shards) if not shard_done(folder, i, arrays)]
    show = (len(items) > 20000) if progress is None else bool(progress)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=desc, unit="shard")
    tasks = (joblib.delayed(_write_shard)(str(folder), i, list(items[i * shard_size:(i + 1) * shard_size]),
                                          work, arrays) for i in todo)
    try:
        if len(todo) <= 1 or _workers(n_jobs) == 1:
            for fn, args, kwargs in tasks:
                fn(*args, **kwargs)
                if bar is not None:
                    bar.update(1)
        else:
            parallel = joblib.Parallel(n_jobs=n_jobs, prefer="processes", return_as="generator_unordered")
            for _ in parallel(tasks):
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    counts = [_rows_of(folder, i) for i in range(n_shards)]
    manifest = {**spec, "n": int(sum(counts)), "counts": counts, "shards": [shard_name(i) for i in range(n_shards)]}
    write_json(folder / MANIFEST, manifest)
    return {**manifest, "n_built": len(todo), "n_reused": n_shards - len(todo)}


def _workers(n_jobs: int) -> int:
    import joblib

    try:
        return max(1, int(joblib.effective_n_jobs(n_jobs)))
    except Exception:   # noqa: BLE001
        return 1


def open_store(folder: str | os.PathLike) -> dict:
    """Every array of a store as a :class:`ShardedArray`, by name."""
    manifest = json.loads((Path(folder) / MANIFEST).read_text())
    return {name: ShardedArray(folder, name) for name in manifest["arrays"]}


def slice_set(folder: str | os.PathLike, columns: dict | None = None) -> dict:
    """A store of 2-D slices as the segmentation notebooks read it: its arrays (on disk) and
    its table's columns (in memory, one value per slice), in one dict.

    ``columns`` maps a key of the dict to a table column, or to a list of columns (stacked
    as ``(n, k)``); by default every table column is returned under its own name.
    """
    table = read_table(folder)
    out: dict = dict(open_store(folder))
    for key, cols in (columns or {c: c for c in table.columns}).items():
        out[key] = table[cols].to_numpy()
    return out


def scratch_folder(prefix: str) -> Path:
    """A fresh temporary folder for a store that is not to be cached; removed when Python exits."""
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def supersede(folder: str | os.PathLike, stem: str, key: str) -> None:
    """Remove the other builds ``<stem>*`` in ``folder`` (stores or legacy files) once ``key`` is built."""
    import shutil

    for old in Path(folder).glob(f"{stem}*"):
        if key not in old.name:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


def read_table(folder: str | os.PathLike):
    """The store's table: its shards' Parquet tables concatenated, in row order."""
    import pandas as pd

    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    parts = [pd.read_parquet(folder / f"{name}.parquet") for name in manifest["shards"]]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


class ShardedArray:
    """A read-only, array-like view of one array of a store (or of rows of it).

    ``name`` picks the array when the store holds several (``ShardedArray(folder, "masks")``).

    ``len``, ``shape``, ``dtype`` and ``ndim`` work as for a NumPy array. Indexing reads:
    an integer gives one row, a slice, a list of integers or a boolean mask give an
    ``ndarray`` of those rows (read from the shards, in the order asked).
    ``take(rows)``, ``astype(dtype)`` and ``map(fn)`` are lazy: they return another view
    and read nothing. ``np.asarray(a)`` reads everything: fine for a small set, and what a
    pipeline over the real data must avoid (use :meth:`batches` or ``tf.data``).
    """

    def __init__(self, folder: str | os.PathLike, name: str | None = None, rows=None, dtype=None,
                 fn: Callable | None = None, row_shape: tuple | None = None):
        self.folder = Path(folder)
        manifest = json.loads((self.folder / MANIFEST).read_text())
        if name is None:
            if len(manifest["arrays"]) != 1:
                raise ValueError(f"the store holds {sorted(manifest['arrays'])}: say which (name=...)")
            (name,) = manifest["arrays"]
        self.name = name
        self._manifest = manifest
        self._raw_dtype = np.dtype(manifest["arrays"][name]["dtype"])
        self._raw_shape = tuple(manifest["arrays"][name]["row_shape"])
        self._offsets = np.concatenate([[0], np.cumsum(manifest["counts"])]).astype(np.int64)
        n = int(manifest["n"])
        self._rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if self._rows.size and (self._rows.min() < 0 or self._rows.max() >= n):
            raise IndexError(f"rows outside 0..{n - 1}")
        self._fn = fn
        self._dtype = np.dtype(dtype) if dtype is not None else (None if fn else self._raw_dtype)
        self._row_shape = tuple(row_shape) if row_shape is not None else (None if fn else self._raw_shape)
        self._maps: dict[int, int] = {}       # shard -> offset of its data in the .npy file
        if self._dtype is None or self._row_shape is None:   # a map: its output decides
            probe = self._read(self._rows[:1]) if len(self._rows) else None
            if probe is None:
                raise ValueError("cannot map an empty array")
            self._dtype = self._dtype or probe.dtype
            self._row_shape = self._row_shape or probe.shape[1:]

    # -- array protocol
    def __len__(self) -> int:
        return len(self._rows)

    @property
    def shape(self) -> tuple:
        return (len(self._rows), *self._row_shape)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def ndim(self) -> int:
        return 1 + len(self._row_shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self._dtype.itemsize

    def __repr__(self) -> str:
        return f"ShardedArray({self.name!r}, shape={self.shape}, dtype={self._dtype}, folder={self.folder.name!r})"

    def __getstate__(self):   # offsets are read again in the process that reads
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out.astype(dtype, copy=False) if dtype is not None else out

    def __iter__(self):
        for start in range(0, len(self), 256):
            yield from self[start:start + 256]

    def __getitem__(self, key):
        if isinstance(key, tuple):   # rows first, then NumPy indexing of what was read
            return self[key[0]][(slice(None), *key[1:])] if not np.isscalar(key[0]) else self[key[0]][key[1:]]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"index {key} out of range for {len(self)} rows")
            return self._read(self._rows[i:i + 1])[0]
        return self._read(self._rows[self._select(key)])

    def _select(self, key):
        if isinstance(key, slice):
            return key
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (len(self),):
                raise IndexError(f"boolean index of shape {key.shape} for {len(self)} rows")
            return np.flatnonzero(key)
        return key.astype(np.int64)

    # -- lazy views
    def take(self, rows) -> ShardedArray:
        """A view of ``rows`` (positions in this view, any order, repeats allowed); reads nothing."""
        return self._view(self._rows[self._select(rows)])

    def astype(self, dtype) -> ShardedArray:
        """A view whose rows are converted to ``dtype`` when read."""
        view = self._view(self._rows)
        view._dtype = np.dtype(dtype)
        return view

    def map(self, fn: Callable) -> ShardedArray:
        """A view that applies ``fn`` (a batch ``(k, ...)`` → a batch ``(k, ...)``) to every read.

        The output's shape and dtype are taken from ``fn`` applied to the first row.
        """
        return ShardedArray(self.folder, self.name, self._rows, fn=_Compose(self._fn, self._dtype, fn))

    def _view(self, rows) -> ShardedArray:
        view = ShardedArray.__new__(ShardedArray)
        view.__dict__.update({**self.__dict__, "_rows": rows, "_maps": {}})
        return view

    def batches(self, batch_size: int = 256):
        """Yield the rows in order, ``batch_size`` at a time (bounded memory)."""
        for start in range(0, len(self), batch_size):
            yield self[start:start + batch_size]

    # -- reading
    def _data_offset(self, s: int) -> int:
        """Where shard ``s``'s array data starts in its ``.npy`` file (after the header)."""
        if s not in self._maps:
            with open(_npy(self.folder, s, self.name), "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(fh)
                if fortran or np.dtype(dtype) != self._raw_dtype:
                    raise ValueError(f"{fh.name}: not a C-ordered {self._raw_dtype} array")
                self._maps[s] = fh.tell()
        return self._maps[s]

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """Read ``rows`` with positioned reads (``os.pread``), runs of consecutive rows at once.

        Not a memory map: pages of a mapped file count in the reader's RSS until the map goes,
        so a pipeline over random rows of a large store would look as if it held the store.
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self._raw_shape), self._raw_dtype)
        row_bytes = int(np.prod(self._raw_shape, dtype=np.int64)) * self._raw_dtype.itemsize
        shard_of = np.searchsorted(self._offsets, rows, side="right") - 1
        for s in np.unique(shard_of):
            where = np.flatnonzero(shard_of == s)
            local = rows[where] - self._offsets[s]
            order = np.argsort(local, kind="stable")        # read each shard front to back
            where, local = where[order], local[order]
            start = self._data_offset(int(s))
            breaks = np.flatnonzero(np.diff(local) != 1) + 1   # runs of consecutive rows
            fd = os.open(_npy(self.folder, int(s), self.name), os.O_RDONLY)
            try:
                for w, run in zip(np.split(where, breaks), np.split(local, breaks)):
                    size = len(run) * row_bytes
                    data = os.pread(fd, size, start + int(run[0]) * row_bytes)
                    if len(data) != size:
                        raise OSError(f"shard {s} of {self.folder} is shorter than its manifest says")
                    out[w] = np.frombuffer(data, self._raw_dtype).reshape((len(run), *self._raw_shape))
            finally:
                os.close(fd)
        if self._fn is not None:
            out = np.asarray(self._fn(out))
        if self._dtype is not None and out.dtype != self._dtype:
            out = out.astype(self._dtype)
        return out


class _Compose:
    """``outer(inner(x).astype(dtype))`` as a picklable callable (a map of a view; ``inner`` may be None)."""

    def __init__(self, inner, dtype, outer):
        self.inner, self.dtype, self.outer = inner, dtype, outer

    def __call__(self, batch):
        batch = batch if self.inner is None else np.asarray(self.inner(batch))
        return self.outer(batch.astype(self.dtype, copy=False))
