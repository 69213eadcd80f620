"""Small, safe file writing: atomic writes and the notebooks' ``metrics.json``."""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it into place atomically.

    Readers never see a half-written file: either the old file or the complete new one.
    On an exception the temporary file is removed and ``path`` is left untouched.
    ``suffix`` ends the temporary name (writers such as Keras insist on ``.keras``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path``.

    The folder counterpart of :func:`atomic_path`: readers see the old folder or the complete
    new one, never a half-written one. On an exception the temporary folder is removed and
    ``path`` is left untouched.
    """
    import shutil

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


ERROR_CHARS = 300


def error_reason(err: BaseException, limit: int = ERROR_CHARS) -> str:
    """Why a file was skipped, in the package's one format: ``"<ExceptionType>: <message>"``.

    On one line (whitespace collapsed) and at most ``limit`` characters (``…`` marks a cut), so
    it fits a table cell and a report. Callers put the file's name in front when the row
    does not already name it (``f"{path}: {error_reason(err)}"``).
    """
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def to_jsonable(value: Any) -> Any:
    """Convert NumPy scalars/arrays, paths and NaN into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return write_text_atomic(path, json.dumps(to_jsonable(data), indent=2, sort_keys=True) + "\n")


def save_metrics(metrics: dict, output_dir: str | os.PathLike) -> Path:
    """Write a notebook's headline numbers to ``output_dir/metrics.json`` and return the path."""
    return write_json(Path(output_dir) / "metrics.json", metrics)


def load_metrics(output_dir: str | os.PathLike) -> dict:
    """Read ``output_dir/metrics.json``."""
    return json.loads((Path(output_dir) / "metrics.json").read_text())
