"""Worked solutions: ``notebooks/solutions/<stem>_solutions.ipynb`` answers every exercise of
``notebooks/<stem>.ipynb`` and runs to the end in the smoke profile, so the solutions cannot rot."""
from __future__ import annotations

import re

import nbformat
import pytest

from helpers import paths, runner

SOLUTIONS = sorted((paths.NOTEBOOKS_DIR / "solutions").glob("*_solutions.ipynb"))
BUDGET_S = 150            # smoke profile, 2 cores: a solutions notebook is a short run ...
LONGER_S = {"09_ejection_fraction": 210}   # ... except 09's, which trains three U-Nets (152 s measured)


def exercises(stem: str) -> list[int]:
    """The numbers of the exercises listed under the notebook's "## Exercises" heading."""
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown" and "## Exercises" in c.source)
    listed = text.split("## Exercises", 1)[-1]
    return [int(n) for n in re.findall(r"^(\d+)\. ", listed, flags=re.M)]


def answered(path) -> list[int]:
    nb = nbformat.read(path, as_version=4)
    return [int(n) for c in nb.cells if c.cell_type == "markdown"
            for n in re.findall(r"^### Exercise (\d+)\b", c.source, flags=re.M)]


def test_every_solutions_notebook_belongs_to_a_notebook_with_exercises():
    stems = {s for s in runner.existing_notebooks() if exercises(s)}
    orphans = [p.name for p in SOLUTIONS if p.stem.removesuffix("_solutions") not in stems]
    assert not orphans, f"solutions without a notebook (or without exercises): {orphans}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solutions_answer_every_exercise(path):
    stem = path.stem.removesuffix("_solutions")
    assert answered(path) == exercises(stem), "one '### Exercise k' section per exercise, in order"


@pytest.mark.notebook
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solutions_run_in_the_smoke_profile(path):
    stem = path.stem.removesuffix("_solutions")
    record = runner.execute_notebook(path.stem, "smoke", paths.runs_root() / "smoke-solutions",
                                     parameters=runner.load_profile("smoke").get(stem, {}), source=path)
    budget = LONGER_S.get(stem, BUDGET_S)
    assert record["seconds"] < budget, f"{path.name} took {record['seconds']} s in the smoke profile"
