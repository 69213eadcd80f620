"""Strip outputs and normalise metadata of the series' notebooks (run before committing).

    python tools/normalize_notebooks.py [notebooks/*.ipynb]

Notebooks are committed without outputs or execution counts, with the project's kernel
(``medimg-dl``) in their metadata. To author a notebook as a percent-format script,
``jupytext --to ipynb script.py -o notebooks/NN_name.ipynb`` and then run this tool.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "medimg-dl", "display_name": "Python (medimg-dl)", "language": "python"}


def normalize(path: Path) -> bool:
    """Normalise one notebook in place; return True if it changed."""
    before = path.read_text()
    nb = nbformat.reads(before, as_version=4)
    nb.metadata = {"kernelspec": KERNELSPEC,
                   "language_info": {"name": "python", "version": "3.11"}}
    for cell in nb.cells:
        cell.metadata.pop("jupyter", None)
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(nb)
    after = nbformat.writes(nb) + ("" if nbformat.writes(nb).endswith("\n") else "\n")
    if after != before:
        path.write_text(after)
        return True
    return False


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or sorted(Path(__file__).resolve().parents[1].glob("notebooks/*.ipynb"))
    for path in files:
        if normalize(path):
            print(f"normalised {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
