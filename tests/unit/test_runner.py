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


def _fake_run(tmp_path):
    """A runs folder as a run leaves it: metrics.json and figures per notebook, no execution."""
    out = tmp_path / "runs" / "smoke"
    files = {"05_pca_svm": ["a_first.png", "nested_cv.png"],   # the key figure, not the first
             "02_data_exploration": ["z_last.png", "b_first.png"],   # no key figure: the first PNG
             "08_cam_visualization": [], "00_setup": [], "06_unet_segmentation": []}
    for stem, pngs in files.items():
        (out / stem).mkdir(parents=True)
        for name in pngs:
            (out / stem / name).write_bytes(b"\x89PNG fake")
    records = [
        {"notebook": "00_setup", "seconds": 4.2, "html": True,
         "metrics": {"datasets": {"rsna": "layout error: <missing> DICOM", "hcp": "ok"}}},
        {"notebook": "02_data_exploration", "seconds": 10.0, "html": False,
         "metrics": {"positive_rate_any": 0.2519, "positive_rate_any_ci": [0.1778, 0.3275]}},
        {"notebook": "05_pca_svm", "seconds": 29.6, "html": True,
         "metrics": {"best_accuracy": 0.91234, "best_accuracy_ci": [0.88, 0.94], "best_model": "logreg",
                     "logreg_accuracy": 0.91234, "logreg_accuracy_ci": None, "n_subjects": 39}},
        {"notebook": "06_unet_segmentation", "seconds": 3.0, "html": True, "status": "failed",
         "error": "ValueError: planted <failure>", "metrics": {}},
        {"notebook": "08_cam_visualization", "seconds": 20.9, "html": True,
         "metrics": {"cnn3d_auc": {"24": 0.9, "best": 0.9667},
                     "cnn3d_auc_ci": {"24": [0.7, 1.0], "best": [0.8, 1.0]},
                     "cam_pointing_rate": None, "cam_skipped_reason": "no ground_truth.json",
                     "motion": -0.5}},
    ]
    return out, records


def _cards(page: str) -> dict[str, str]:
    """Each card's HTML by notebook stem (the card's id), without the labels' ``<wbr>`` hints."""
    parts = page.replace("<wbr>", "").split('<article class="card ')[1:]
    return {part.split('id="', 1)[1].split('"', 1)[0]: part for part in parts}


def test_index_is_a_gallery_with_one_card_per_notebook(tmp_path):
    out, records = _fake_run(tmp_path)
    page = runner.write_index(records, out, "smoke").read_text()
    cards = _cards(page)
    assert list(cards) == [r["notebook"] for r in records], "one card per notebook, in run order"
    assert page.count("<details>") == len(records) and "<script" not in page, "no JavaScript"
    assert "00 \u00b7 setup" in cards["00_setup"] and "29.6" not in page and "30 s" in cards["05_pca_svm"]
    # title links the HTML render (when there is one) and the executed copy
    assert 'href="05_pca_svm.html"' in cards["05_pca_svm"] and 'href="05_pca_svm.ipynb"' in cards["05_pca_svm"]
    assert 'href="02_data_exploration.html"' not in page and 'href="02_data_exploration.ipynb"' in page


def test_gallery_thumbnail_is_the_key_figure_else_the_first_png(tmp_path):
    out, records = _fake_run(tmp_path)
    cards = _cards(runner.write_index(records, out, "smoke").read_text())
    assert '<img src="05_pca_svm/nested_cv.png"' in cards["05_pca_svm"], "KEY_FIGURES names it"
    assert '<img src="02_data_exploration/b_first.png"' in cards["02_data_exploration"], "first PNG"
    assert "<img" not in cards["00_setup"] and "no figure saved" in cards["00_setup"]
    assert "base64" not in "".join(cards.values()), "a relative link to the file, not embedded"


def test_gallery_shows_headline_metrics_with_their_intervals(tmp_path):
    out, records = _fake_run(tmp_path)
    cards = _cards(runner.write_index(records, out, "smoke").read_text())
    pca = cards["05_pca_svm"].split("<details>")[0]
    assert "0.912 (95 % CI 0.88\u20130.94)" in pca, "value and interval together"
    assert "0.912</span>" in pca, "a metric whose interval is null shows the value alone"
    assert "knn_accuracy" not in pca and "n_subjects" not in pca, "absent keys skipped, others not headline"
    cam = cards["08_cam_visualization"].split("<details>")[0]
    assert "cnn3d_auc[best]" in cam and "0.967 (95 % CI 0.8\u20131)" in cam, "dict-valued metric: its sub-key"
    assert "\u2014" in cam and 'title="no ground_truth.json"' in cam, "null shown as a dash, with the reason"
    assert cam.count("<tr>") == 2


def test_gallery_folds_the_full_metrics_away_pretty_printed(tmp_path):
    out, records = _fake_run(tmp_path)
    cards = _cards(runner.write_index(records, out, "smoke").read_text())
    details = cards["05_pca_svm"].split("<details>")[1]
    assert "<summary>all metrics (6 keys)</summary>" in details
    assert "\n  &quot;n_subjects&quot;: 39" in details and "&quot;best_model&quot;: &quot;logreg&quot;" in details


def test_gallery_escapes_every_string(tmp_path):
    out, records = _fake_run(tmp_path)
    page = runner.write_index(records, out, "smoke").read_text()
    assert "<missing>" not in page and "<failure>" not in page
    assert "layout error: &lt;missing&gt; DICOM" in _cards(page)["00_setup"].split("<details>")[0]


def test_gallery_shows_a_failed_notebook_as_failed(tmp_path):
    out, records = _fake_run(tmp_path)
    page = runner.write_index(records, out, "smoke").read_text()
    failed = _cards(page)["06_unet_segmentation"]
    assert failed.startswith('failed"') and '<span class="status failed">failed</span>' in failed
    assert "ValueError: planted &lt;failure&gt;" in failed
    assert "(1 failed)" in page
    assert '<span class="status ok">ok</span>' in _cards(page)["05_pca_svm"]


def test_format_metric():
    assert runner.format_metric(0.91234, [0.88, 0.94]) == "0.912 (95 % CI 0.88\u20130.94)"
    assert runner.format_metric(0.635, [-3.7132, 3.383]) == "0.635 (95 % CI -3.71 to 3.38)"
    assert runner.format_metric(None, [0.1, 0.2]) == "\u2014"
    assert runner.format_metric(298) == "298" and runner.format_metric(0.0) == "0"
    assert runner.format_metric("ok") == "ok" and runner.format_metric(True) == "True"


def test_index_only_rebuilds_records_from_the_executed_copies(tmp_path, monkeypatch):
    out, _ = _fake_run(tmp_path)
    ok, failed = nbformat.v4.new_notebook(), nbformat.v4.new_notebook()
    ok.metadata["papermill"] = {"duration": 29.61, "exception": None, "end_time": "t"}
    cell = nbformat.v4.new_code_cell("inner()")
    cell.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="planted", traceback=[])]
    failed.cells = [cell]
    failed.metadata["papermill"] = {"duration": 3.0, "exception": True, "end_time": "t"}
    nbformat.write(ok, out / "05_pca_svm.ipynb")
    nbformat.write(failed, out / "06_unet_segmentation.ipynb")
    (out / "05_pca_svm" / "metrics.json").write_text(json.dumps({"best_accuracy": 0.8}))
    rendered = []

    def fake_render(executed):
        rendered.append(executed.name)
        executed.with_suffix(".html").write_text("<html></html>")

    monkeypatch.setattr(runner, "render_html", fake_render)
    assert runner.main(["--index-only", "--profile", "smoke", "--out", str(out)]) == 0
    assert sorted(rendered) == ["05_pca_svm.ipynb", "06_unet_segmentation.ipynb"], "missing renders made"
    cards = _cards((out / "index.html").read_text())
    assert list(cards) == ["05_pca_svm", "06_unet_segmentation"], "only the notebooks executed there"
    assert "30 s" in cards["05_pca_svm"] and "0.8</span>" in cards["05_pca_svm"]
    assert cards["06_unet_segmentation"].startswith('failed"') and "ValueError: planted" in cards["06_unet_segmentation"]
    assert not (out / "summary.json").exists(), "the index writer leaves the run's summary alone"


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
    assert summary[1]["status"] == "failed" and summary[1]["error"] == "notebook 01_data_cleaning failed"
    assert (tmp_path / "index.html").is_file()
