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


def metrics_contract() -> dict[str, dict[str, bool]]:
    """The README's metrics contract: ``{notebook number: {key: needs an interval}}``."""
    import re

    from helpers import paths

    text = (paths.REPO_ROOT / "README.md").read_text()
    block = text.split("<!-- metrics-contract")[1].split("<!-- /metrics-contract -->")[0]
    contract: dict[str, dict[str, bool]] = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not re.fullmatch(r"\d\d", cells[0]):
            continue
        for key in re.findall(r"`([^`]+)`", cells[1]):
            contract.setdefault(cells[0], {})[key] = not cells[4].startswith("—")
    return contract


def test_the_contract_covers_every_notebook():
    contract = metrics_contract()
    assert sorted(contract) == sorted(stem[:2] for stem in runner.existing_notebooks())


@pytest.mark.notebook
@pytest.mark.parametrize("stem", runner.existing_notebooks())
def test_metrics_follow_the_contract(run_notebook, stem):
    metrics = run_notebook(stem)["metrics"]
    for key, needs_ci in metrics_contract()[stem[:2]].items():
        assert key in metrics, f"{stem}: headline metric {key} missing from metrics.json"
        if not needs_ci or metrics[key] is None:
            continue
        ci = metrics.get(f"{key}_ci", "missing")
        assert ci != "missing", f"{stem}: {key} has no {key}_ci"
        pairs = ci.items() if isinstance(metrics[key], dict) else [(None, ci)]
        for sub, interval in pairs:
            value = metrics[key] if sub is None else metrics[key][sub]
            if interval is None:   # fewer than two held-out units
                continue
            assert len(interval) == 2 and interval[0] <= interval[1], f"{stem}: {key}_ci {interval}"
            assert isinstance(value, (int, float)), f"{stem}: {key} = {value!r}"
