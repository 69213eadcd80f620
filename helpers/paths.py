"""Where things live: the repository, the data folder and the run outputs.

``MEDIMG_DATA`` and ``MEDIMG_RUNS`` environment variables move the data and run folders
(e.g. to a larger disk); by default both sit in the repository.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def data_root() -> Path:
    """The folder that holds the datasets (``data/`` unless ``MEDIMG_DATA`` is set)."""
    return Path(os.environ.get("MEDIMG_DATA", REPO_ROOT / "data")).resolve()


def runs_root() -> Path:
    """The git-ignored folder for executed notebooks and outputs (``runs/``)."""
    return Path(os.environ.get("MEDIMG_RUNS", REPO_ROOT / "runs")).resolve()


def processed_dir(name: str) -> Path:
    """``data/processed/<name>``: derived data (caches), never the raw files."""
    return data_root() / "processed" / name


def output_dir(notebook: str, output_dir: str | os.PathLike | None = None) -> Path:
    """Resolve a notebook's ``output_dir`` parameter and create the folder.

    ``None`` means ``runs/<notebook stem>``.
    """
    path = Path(output_dir) if output_dir is not None else runs_root() / notebook
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()
