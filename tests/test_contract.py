"""The notebook contract (README, "Notebook contract"), checked statically on every notebook."""
import ast
import io
import re
import tokenize

import nbformat
import pytest
import yaml

from helpers import paths, runner

NOTEBOOKS = runner.existing_notebooks()
MAX_CODE_LINES = 300


def _nb(stem):
    return nbformat.read(paths.NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)


def _parameters(nb) -> dict:
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_series_has_a_setup_notebook():
    assert "00_setup" in NOTEBOOKS


def test_no_stray_notebooks():
    stems = {p.stem for p in paths.NOTEBOOKS_DIR.glob("*.ipynb")}
    assert stems <= set(runner.SERIES), f"notebooks outside the series: {stems - set(runner.SERIES)}"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_skeleton(stem):
    nb = _nb(stem)
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "first cell: markdown title"
    assert re.search(r"learning goals", first.source, re.I), "first cell states the learning goals"
    assert last.cell_type == "markdown", "last cell: markdown summary and exercises"
    assert re.search(r"^#+ *summary", last.source, re.I | re.M)
    assert re.search(r"^#+ *exercises", last.source, re.I | re.M)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "repro.setup(" in code, "seed everything and print the environment at the top"
    assert "save_metrics(" in code, "write output_dir/metrics.json"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_parameters_cell(stem):
    nb = _nb(stem)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    params = _parameters(nb)
    assert params.get("data_dir", "missing") is None
    assert params.get("output_dir", "missing") is None
    assert params.get("seed") == 0
    assert params.get("synthetic_size") == "full", "notebook defaults are the full profile"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_papermill_sees_every_parameter(stem):
    """papermill skips a line with two `=` (e.g. `x = None  # None = default`): the
    parameter would then be silently impossible to set from a profile."""
    from papermill.translators import PythonTranslator

    cell = next(c for c in _nb(stem).cells if "parameters" in c.metadata.get("tags", []))
    seen = {p.name for p in PythonTranslator.inspect(cell)}
    assert seen == set(_parameters(_nb(stem))), f"papermill cannot parse {set(_parameters(_nb(stem))) - seen}"


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_committed_without_outputs(stem):
    for cell in _nb(stem).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_length_discipline(stem):
    nb = _nb(stem)
    lines = [ln for c in nb.cells if c.cell_type == "code" for ln in c.source.splitlines() if ln.strip()]
    assert len(lines) <= MAX_CODE_LINES, f"{len(lines)} lines of code (max {MAX_CODE_LINES})"
    for cell in nb.cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.FunctionDef):
                    n = node.end_lineno - node.lineno + 1
                    assert n <= 8, f"function {node.name} ({n} lines) belongs in helpers/"


def _code_tokens(source: str) -> str:
    """The names and strings of a code cell (comments and IPython magics left out)."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    tokens = tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline)
    return " ".join(t.string for t in tokens if t.type in (tokenize.NAME, tokenize.STRING))


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_no_profile_branches(stem):
    code = " ".join(_code_tokens(c.source) for c in _nb(stem).cells if c.cell_type == "code")
    assert not re.search(r"\b(smoke|profile)\b", code, re.I), "profiles differ only in parameters"


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_profiles_only_set_existing_parameters(profile):
    params = runner.load_profile(profile)
    for stem in NOTEBOOKS:
        known = _parameters(_nb(stem))
        unknown = set(params[stem]) - set(known)
        assert not unknown, f"{profile}.yaml sets {sorted(unknown)} not in {stem}'s parameters cell"


def test_smoke_yaml_is_valid():
    raw = yaml.safe_load((paths.NOTEBOOKS_DIR / "params" / "smoke.yaml").read_text())
    assert raw["defaults"]["synthetic_size"] == "smoke"
