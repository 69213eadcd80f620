"""Execute each notebook of the series once per test session (smoke profile).

``run_notebook("05_pca_svm")`` returns the runner's record (``metrics``, ``seconds``,
``executed`` path, ``output_dir``). Executed copies go to ``runs/smoke/`` (git-ignored),
where ``make test`` then re-runs them with ``pytest --nbval-lax``.
A notebook that raises fails every test that asks for it, with the notebook's name and the
failing cell's traceback in the report.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import paths, runner

PROFILE = "smoke"
_cache: dict[str, object] = {}


def execute(stem: str, variant: str | None = None, **parameters) -> dict:
    """Execute a notebook in the smoke profile (once per session per variant).

    The plain run goes to ``runs/smoke`` (these copies are what nbval re-runs); a run with
    extra ``parameters`` (e.g. another ``data_dir``) must name a ``variant`` and goes to
    ``runs/smoke-<variant>``.
    """
    if parameters and not variant:
        raise ValueError("a run with extra parameters needs a variant name")
    key = f"{stem}:{variant}"
    if key not in _cache:
        if not (paths.NOTEBOOKS_DIR / f"{stem}.ipynb").is_file():
            pytest.skip(f"{stem}.ipynb does not exist yet")
        try:
            _cache[key] = runner.execute_notebook(stem, PROFILE, paths.runs_root() / (
                PROFILE if variant is None else f"{PROFILE}-{variant}"),
                                                  parameters=parameters or None)
        except runner.NotebookFailed as err:
            _cache[key] = err
    result = _cache[key]
    if isinstance(result, Exception):
        pytest.fail(str(result), pytrace=False)
    return result


@pytest.fixture(scope="session")
def run_notebook():
    return execute


def _variant_dataset(name: str, seed: int = 1):
    """Another synthetic dataset in the same public layout (``seed`` ≠ 0: other sizes,
    spacings, orientations, broken files), generated once under
    ``data/synthetic/test-variants/<name>-seed<seed>``; returns ``(root, ground_truth)``."""
    from helpers import synthetic

    root = paths.data_root() / "synthetic" / "test-variants" / f"{name}-seed{seed}"
    synthetic.generate(name, root, "smoke", seed=seed)
    return root, synthetic.load_ground_truth(root)   # as written to disk, whether new or reused


@pytest.fixture(scope="session")
def variant_dataset():
    return _variant_dataset


from helpers.synthetic import GENERATOR_ONLY  # noqa: E402 - files no public layout has

_CACHE = shutil.ignore_patterns(".medimg_cache")  # caches are rebuilt for the copy


def _generator_free_dataset(name: str, source: Path | None = None) -> Path:
    """A copy of a dataset with every generator-only file removed, as a real download would
    be: by default the smoke synthetic dataset ``name``, else the dataset folder ``source``
    (e.g. a variant); under ``data/synthetic/test-generator-free/<folder name>``.

    Copied once per content: a marker file records the source's ``ground_truth.json``
    checksum, so a regenerated source is copied again. Raw files are hard-linked when the
    file system allows it (they are never modified), else copied; caches are not copied."""
    import hashlib

    from helpers import datasets

    source = datasets.resolve(name, None, "smoke", 0) if source is None else Path(source)
    stamp = hashlib.sha256((source / "ground_truth.json").read_bytes()).hexdigest()
    label = name if source.name == name else f"{name}-{source.name}"
    target = paths.data_root() / "synthetic" / "test-generator-free" / label
    marker = target.parent / f".{label}.source"
    if not (target.is_dir() and marker.is_file() and marker.read_text() == stamp):
        shutil.rmtree(target, ignore_errors=True)
        try:
            shutil.copytree(source, target, copy_function=os.link, ignore=_CACHE)
        except OSError:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=_CACHE)
        marker.write_text(stamp)
    for extra in GENERATOR_ONLY:
        for found in target.rglob(extra):
            found.unlink()
    return target


@pytest.fixture(scope="session")
def generator_free_dataset():
    return _generator_free_dataset
