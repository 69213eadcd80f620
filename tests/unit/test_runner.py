"""The series runner: profiles, progress, failure reporting, index.html."""
import json

import nbformat
import pytest

from helpers import runner


def _notebook(tmp_path, body: str):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("output_dir = None\nseed = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_full_profile_is_the_notebook_defaults():
    assert runner.load_profile("full") == {s: {} for s in runner.SERIES}


def test_smoke_profile_applies_defaults_to_every_notebook():
    smoke = runner.load_profile("smoke")
    assert set(smoke) == set(runner.SERIES)
    assert all(p["synthetic_size"] == "smoke" for p in smoke.values())


def test_unknown_profile_is_an_error():
    with pytest.raises(FileNotFoundError):
        runner.load_profile("nonexistent")


def test_executes_and_reads_metrics(tmp_path, capsys):
    body = ("from helpers.io import save_metrics\n"
            "save_metrics({'answer': 42, 'seed': seed}, output_dir)")
    rec = runner.execute_notebook("demo", "smoke", tmp_path / "out", parameters={"seed": 3},
                                  source=_notebook(tmp_path, body))
    assert rec["metrics"] == {"answer": 42, "seed": 3}
    assert (tmp_path / "out" / "demo.ipynb").is_file()
    assert "[demo] cell" in capsys.readouterr().out, "progress names the notebook and the cell"


def test_failing_cell_names_notebook_and_shows_traceback(tmp_path):
    body = "def inner():\n    raise ValueError('planted failure')\ninner()"
    with pytest.raises(runner.NotebookFailed) as err:
        runner.execute_notebook("broken", "smoke", tmp_path / "out", source=_notebook(tmp_path, body))
    message = str(err.value)
    assert "broken" in message and "ValueError" in message and "planted failure" in message
    assert "inner" in message, "the traceback of the failing cell is shown"


def test_index_html_links_notebooks_and_tabulates_metrics(tmp_path):
    records = [{"notebook": "01_x", "seconds": 12.5, "html": True,
                "metrics": {"auc": 0.91234, "auc_ci": [0.85, 0.95], "per": {"a": 1},
                            "acc": {"24": 0.8}, "acc_ci": {"24": [0.7, 0.9]}}},
               {"notebook": "02_y", "seconds": 0, "status": "failed", "html": True}]
    page = runner.write_index(records, tmp_path, "smoke").read_text()
    assert 'href="01_x.html"' in page and 'href="02_y.html"' in page
    assert "auc</code> = 0.9123 [0.85, 0.95]" in page and "per.a</code> = 1" in page
    assert "acc.24</code> = 0.8 [0.7, 0.9]" in page and "auc_ci" not in page, "intervals sit beside their metric"
    assert "failed" in page and "12.5" in page


def test_run_series_stops_at_first_failure_and_still_writes_index(tmp_path, monkeypatch):
    calls = []

    def fake_execute(stem, profile, out_dir):
        calls.append(stem)
        if stem == "01_data_cleaning":
            (out_dir / f"{stem}.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
            raise runner.NotebookFailed(f"notebook {stem} failed")
        (out_dir / f"{stem}.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
        return {"notebook": stem, "seconds": 1.0, "executed": str(out_dir / f"{stem}.ipynb"), "metrics": {}}

    monkeypatch.setattr(runner, "execute_notebook", fake_execute)
    monkeypatch.setattr(runner, "existing_notebooks", lambda: runner.SERIES[:4])
    with pytest.raises(runner.NotebookFailed):
        runner.run_series("smoke", tmp_path)
    assert calls == ["00_setup", "01_data_cleaning"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["notebook"] for r in summary] == ["00_setup", "01_data_cleaning"]
    assert (tmp_path / "index.html").is_file()
