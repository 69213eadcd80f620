"""Every notebook of the series that exists runs in the smoke profile and keeps the contract."""
import json

import nbformat
import pytest

from helpers import runner

MAX_PRINTED_LINES = 100


@pytest.mark.notebook
@pytest.mark.parametrize("stem", runner.existing_notebooks())
def test_notebook_runs_and_writes_metrics(run_notebook, stem):
    record = run_notebook(stem)
    assert record["metrics"], f"{stem} wrote no metrics.json headline numbers"
    json.dumps(record["metrics"])  # plain JSON
    nb = nbformat.read(record["executed"], as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        printed = sum(o.get("text", "").count("\n") for o in cell.outputs if o.output_type == "stream")
        assert printed <= MAX_PRINTED_LINES, f"cell {i} of {stem} prints {printed} lines"
        assert not [o for o in cell.outputs if o.output_type == "error"]
