"""Run the series headless with papermill, and write ``runs/<profile>/index.html``.

``python -m helpers.runner --profile smoke`` (what ``make run PROFILE=smoke`` calls)
executes every notebook of the series that exists, in order, into ``runs/<profile>/``:

* parameters come from ``notebooks/params/<profile>.yaml`` (``defaults`` plus one entry per
  notebook); profiles differ only in these parameters;
* progress: which notebook, which cell, elapsed seconds;
* the first notebook that raises stops the run, with its failing cell's traceback printed;
* at the end, ``index.html`` is a gallery: per notebook a card with its status, run time, a
  thumbnail of its key figure, its headline metrics with their 95 % intervals, links to its
  HTML render and executed copy, and its whole ``metrics.json`` folded away.

``python -m helpers.runner --index-only --profile smoke`` executes nothing: it rewrites the
index from the executed copies already in ``runs/<profile>/`` (what ``make gallery`` calls).
"""
from __future__ import annotations

import argparse
import html
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path

import yaml

from . import paths
from .io import to_jsonable, write_json, write_text_atomic

SERIES = [
    "00_setup", "01_data_cleaning", "02_data_exploration", "03_data_augmentation",
    "04_metadata_baselines", "05_pca_svm", "06_unet_segmentation", "07_keypoint_cnn",
    "08_cam_visualization", "09_ejection_fraction",
]
KERNEL_NAME = "medimg-dl"
PARAMS_DIR = paths.NOTEBOOKS_DIR / "params"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message holds its name and the failing cell's traceback."""


def existing_notebooks() -> list[str]:
    """The notebooks of the series that exist under ``notebooks/``, in order."""
    return [s for s in SERIES if (paths.NOTEBOOKS_DIR / f"{s}.ipynb").is_file()]


def load_profile(profile: str) -> dict[str, dict]:
    """Parameters for each notebook under ``profile`` (``defaults`` merged in).

    ``full`` needs no file: the notebooks' own defaults are the full teaching profile.
    """
    path = PARAMS_DIR / f"{profile}.yaml"
    if not path.is_file():
        if profile == "full":
            return {s: {} for s in SERIES}
        raise FileNotFoundError(f"no parameter file for profile {profile!r}: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    defaults = raw.pop("defaults", {}) or {}
    unknown = set(raw) - set(SERIES)
    if unknown:
        raise ValueError(f"{path} names notebooks that are not in the series: {sorted(unknown)}")
    return {s: {**defaults, **(raw.get(s) or {})} for s in SERIES}


def kernel_name() -> str:
    """The project's registered kernel if present, else the current interpreter's ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME if KERNEL_NAME in KernelSpecManager().find_kernel_specs() else "python3"


def _progress(stem: str, start: float):
    """Callbacks for nbclient that print which cell runs and the elapsed time."""
    def on_cell_start(cell, cell_index):
        if cell.cell_type == "code":
            first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")[:60]
            print(f"  [{stem}] cell {cell_index:3d}  {time.perf_counter() - start:7.1f} s  {first}",
                  flush=True)
    return on_cell_start


def execute_notebook(stem: str, profile: str = "smoke", out_dir: str | Path | None = None,
                     parameters: dict | None = None, progress: bool = True,
                     source: str | Path | None = None) -> dict:
    """Execute ``notebooks/<stem>.ipynb`` (or ``source``) with papermill; return its record.

    The executed copy goes to ``out_dir/<stem>.ipynb`` and its outputs (``metrics.json``,
    figures) to ``out_dir/<stem>/``. Raises :class:`NotebookFailed` when a cell raises.
    """
    import papermill as pm

    out_dir = Path(out_dir or paths.runs_root() / profile).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {**load_profile(profile).get(stem, {}), **(parameters or {})}
    params.setdefault("output_dir", str(out_dir / stem))
    output_nb = out_dir / f"{stem}.ipynb"
    start = time.perf_counter()
    extra = {"on_cell_start": _progress(stem, start)} if progress else {}
    try:
        pm.execute_notebook(
            str(source or paths.NOTEBOOKS_DIR / f"{stem}.ipynb"), str(output_nb), parameters=params,
            kernel_name=kernel_name(), progress_bar=False, cwd=str(paths.NOTEBOOKS_DIR), **extra)
    except pm.PapermillExecutionError as err:
        raise NotebookFailed(
            f"notebook {stem} failed in cell {err.cell_index} (executed copy: {output_nb})\n"
            f"{err.ename}: {err.evalue}\n" + "\n".join(err.traceback)) from None
    seconds = time.perf_counter() - start
    metrics_path = Path(params["output_dir"]) / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return {"notebook": stem, "seconds": round(seconds, 1), "executed": str(output_nb),
            "output_dir": params["output_dir"], "metrics": metrics, "parameters": params}


def render_html(executed: str | Path) -> Path:
    """Render an executed notebook to HTML beside it."""
    from nbconvert import HTMLExporter

    executed = Path(executed)
    body, _ = HTMLExporter().from_filename(str(executed))
    return write_text_atomic(executed.with_suffix(".html"), body)


# The key figure of each notebook (a file its output folder holds); without one, the first PNG.
KEY_FIGURES = {
    "00_setup": "datasets.png",
    "01_data_cleaning": "repair.png",
    "02_data_exploration": "windows.png",
    "03_data_augmentation": "plausible.png",
    "04_metadata_baselines": "evaluation.png",
    "05_pca_svm": "nested_cv.png",
    "06_unet_segmentation": "best_worst.png",
    "07_keypoint_cnn": "worst_cases.png",
    "08_cam_visualization": "cam_montage.png",
    "09_ejection_fraction": "bland_altman.png",
}

# The headline metrics each card shows (README, "Metrics contract"), at most six: a key, or
# (key, sub-key) for a dict-valued metric. Keys a run lacks are skipped.
HEADLINE_METRICS: dict[str, list[str | tuple[str, str]]] = {
    "00_setup": [("datasets", "rsna"), ("datasets", "luna16"), ("datasets", "dsb2"),
                 ("datasets", "hcp")],
    "01_data_cleaning": ["n_files", "n_unreadable", "n_repaired", "n_dropped_low_brain", "n_kept",
                         "read_hu_hand_vs_helper_max_abs_diff"],
    "02_data_exploration": ["positive_rate_any", "n_patients", "n_images"],
    "03_data_augmentation": ["dot_test_max_error_px", "mask_keypoint_max_offset_px", "dot_test_draws"],
    "04_metadata_baselines": ["cnn_auc", "metadata_auc", "cnn_accuracy",
                              "lr_finder_hand_vs_helper_max_abs_diff", "external_cnn_auc"],
    "05_pca_svm": ["best_accuracy", "logreg_accuracy", "linear_svm_accuracy", "rbf_svm_accuracy",
                   "knn_accuracy", "nested_cv_hand_vs_helper_max_abs_diff"],
    "06_unet_segmentation": ["foreground_dice", "cpm", "nodule_recall",
                             ("nodule_sensitivity_at_fp", "1"), "external_foreground_dice",
                             "external_cpm"],
    "07_keypoint_cnn": ["inside_lv_rate", "median_error_mm", "p95_error_mm", "motion_gain_mm",
                        "external_inside_lv_rate", "external_median_error_mm"],
    "08_cam_visualization": [("cnn3d_accuracy", "best"), ("cnn3d_auc", "best"),
                             ("classical_accuracy", "best"), "cam_pointing_rate",
                             "gradcam_hand_vs_helper_max_abs_diff", ("external_cnn3d_auc", "best")],
    "09_ejection_fraction": ["crps", "crps_mean_baseline", "ef_mae", "edv_mae_ml", "esv_mae_ml", "external_crps"],
}
MISSING = "\u2014"  # an em dash: the metric is null (see its *_skipped_reason)


def _num(value) -> str:
    """A metric value for a reader: three significant digits, integers as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return MISSING if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if value == 0 or value != value:
        return "0" if value == 0 else "nan"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.3g}"


def format_metric(value, ci=None) -> str:
    """``0.912 (95 % CI 0.88–0.94)``; the bare value when there is no two-number interval."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_num(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_num(v) for v in value)
    text = _num(value)
    if (value is not None and isinstance(ci, (list, tuple)) and len(ci) == 2
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in ci)):
        sep = " to " if ci[0] < 0 or ci[1] < 0 else "\u2013"
        text += f" (95 % CI {_num(ci[0])}{sep}{_num(ci[1])})"
    return text


def _skipped_reason(metrics: dict, key: str) -> str | None:
    """The ``<name>_skipped_reason`` that explains ``key`` (``cam_skipped_reason`` explains
    ``cam_pointing_rate``): the longest ``<name>`` that ``key`` starts with."""
    suffix = "_skipped_reason"
    names = [k[:-len(suffix)] for k in metrics if k.endswith(suffix) and key.startswith(k[:-len(suffix)])]
    return str(metrics[max(names, key=len) + suffix]) if names else None


def headline_metrics(stem: str, metrics: dict) -> list[dict]:
    """The card's metrics: ``label``, formatted ``text`` (value and interval) and ``note``
    (why a null metric is null), in the order of :data:`HEADLINE_METRICS`; absent keys skipped."""
    rows = []
    for entry in HEADLINE_METRICS.get(stem, [])[:6]:
        key, sub = (entry, None) if isinstance(entry, str) else entry
        if key not in metrics:
            continue
        value, ci = metrics[key], metrics.get(f"{key}_ci")
        if sub is not None:
            if not isinstance(value, dict) or sub not in value:
                continue
            value, ci = value[sub], ci.get(sub) if isinstance(ci, dict) else None
        rows.append({"label": key if sub is None else f"{key}[{sub}]",
                     "text": format_metric(value, ci),
                     "note": _skipped_reason(metrics, key) if value is None else None,
                     "numeric": isinstance(value, (int, float)) and not isinstance(value, bool)})
    return rows


def key_figure(stem: str, folder: str | Path) -> Path | None:
    """The notebook's key figure in its output folder: :data:`KEY_FIGURES`, else the first PNG."""
    folder = Path(folder)
    chosen = folder / KEY_FIGURES.get(stem, "")
    if stem in KEY_FIGURES and chosen.is_file():
        return chosen
    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    return pngs[0] if pngs else None


def _href(path: Path, base: Path) -> str:
    """A relative, URL-quoted and HTML-escaped link from ``base`` to ``path``."""
    rel = Path(os.path.relpath(path, base)).as_posix()
    return html.escape(urllib.parse.quote(rel))


def _title(stem: str) -> str:
    number, _, name = stem.partition("_")
    return f"{number} \u00b7 {name.replace('_', ' ')}" if number.isdigit() and name else stem


def _seconds(value) -> str:
    if not isinstance(value, (int, float)):
        return "\u2014"
    whole = round(value)
    return f"{whole} s" if whole < 120 else f"{whole // 60} min {whole % 60:02d} s"


def _card(rec: dict, out_dir: Path) -> str:
    stem = str(rec["notebook"])
    status = str(rec.get("status", "ok"))
    metrics = rec.get("metrics") or {}
    e = html.escape
    links = [f'<a href="{_href(out_dir / f"{stem}.ipynb", out_dir)}">.ipynb</a>']
    if rec.get("html") or (out_dir / f"{stem}.html").is_file():
        html_href = _href(out_dir / f"{stem}.html", out_dir)
        title = f'<a href="{html_href}">{e(_title(stem))}</a>'
        links.insert(0, f'<a href="{html_href}">HTML</a>')
    else:
        title = e(_title(stem))
    figure = key_figure(stem, rec.get("output_dir") or out_dir / stem)
    if figure is not None:
        src = _href(figure, out_dir)
        thumb = (f'<a class="thumb" href="{src}"><img src="{src}" '
                 f'alt="{e(stem)}: {e(figure.name)}" title="{e(figure.name)}"></a>')
    else:
        thumb = '<div class="thumb none">no figure saved</div>'
    error = (f'<p class="error">{e(str(rec["error"]))}</p>'
             if status != "ok" and rec.get("error") else "")
    rows = []
    for m in headline_metrics(stem, metrics):
        note = f' title="{e(m["note"])}"' if m["note"] else ""
        extra = f'<div class="note">{e(m["note"])}</div>' if m["note"] else ""
        label = e(m["label"]).replace("_", "_<wbr>")  # long keys wrap at their underscores
        rows.append(f'<tr><th><code>{label}</code></th>'
                    f'<td{note}><span class="value{" num" if m["numeric"] else ""}">{e(m["text"])}</span>'
                    f'{extra}</td></tr>')
    table = (f'<table class="metrics">{"".join(rows)}</table>' if rows
             else '<p class="muted">no headline metrics</p>')
    dump = json.dumps(to_jsonable(metrics), indent=2, ensure_ascii=False, sort_keys=True)
    links_text = " \u00b7 ".join(links)
    return f"""<article class="card {e(status)}" id="{e(stem)}">
<header><h2>{title}</h2><span class="status {e(status)}">{e(status)}</span>
<span class="time">{e(_seconds(rec.get("seconds")))}</span>
<span class="links">{links_text}</span></header>
{error}{thumb}
{table}
<details><summary>all metrics ({len(metrics)} keys)</summary>
<pre>{e(dump)}</pre></details>
</article>"""


_CSS = """
*{box-sizing:border-box}
body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:1.5em;color:#222;background:#f4f5f7}
h1{font-size:1.4em;margin:0 0 .3em} .summary{margin:0 0 1.2em;color:#444}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(400px,100%),1fr));gap:16px}
.card{background:#fff;border:1px solid #d8dbe0;border-left:5px solid #3a8a3a;border-radius:6px;
 padding:10px 14px;min-width:0;overflow:hidden}
.card.failed{border-left-color:#c62828;background:#fff6f6}
.card.incomplete{border-left-color:#e0a000}
.card header{display:flex;align-items:baseline;gap:.6em;flex-wrap:wrap}
.card h2{font-size:1.08em;margin:0;flex:1 1 auto} .card h2 a{color:#1a4f8b;text-decoration:none}
.status{font-size:.8em;padding:1px 7px;border-radius:9px;background:#e3f2e3;color:#245a24}
.status.failed{background:#c62828;color:#fff} .status.incomplete{background:#fff0c0;color:#6a5000}
.time{font-size:.85em;color:#555}
.error{color:#b71c1c;font-family:monospace;font-size:.85em;margin:.4em 0;overflow-wrap:anywhere}
.thumb{display:flex;align-items:center;justify-content:center;height:210px;margin:8px 0;
 background:#fafafa;border:1px solid #eee;border-radius:4px}
.thumb img{width:100%;height:100%;object-fit:contain}
.thumb.none{height:48px;color:#999;font-size:.9em;font-style:italic}
table.metrics{border-collapse:collapse;width:100%;font-size:.9em}
.metrics th,.metrics td{text-align:left;padding:2px 4px;border-bottom:1px solid #f0f0f0;vertical-align:top}
.metrics th{font-weight:normal;width:40%;overflow-wrap:anywhere} .metrics code{font-size:1em;color:#333}
.metrics .value{font-variant-numeric:tabular-nums;overflow-wrap:anywhere} .metrics .num{white-space:nowrap}
.note{color:#8a5a00;font-size:.85em} .muted{color:#888;font-size:.9em}
details{margin-top:6px;font-size:.85em} summary{cursor:pointer;color:#1a4f8b}
.links{font-size:.8em} .links a{color:#1a4f8b}
pre{max-height:320px;overflow:auto;background:#f7f7f9;padding:6px;font-size:.9em;margin:4px 0 0}
"""


def write_index(records: list[dict], out_dir: str | Path, profile: str) -> Path:
    """Write ``index.html``, a gallery: one card per notebook with its status, run time, a
    thumbnail of its key figure, its headline metrics with their intervals and, folded away,
    its whole ``metrics.json``. Self-contained: inline CSS, relative links, no scripts."""
    out_dir = Path(out_dir).resolve()
    cards = "\n".join(_card(rec, out_dir) for rec in records)
    total = sum(r.get("seconds") or 0 for r in records)
    statuses = [str(r.get("status", "ok")) for r in records]
    state = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses) if s != "ok") or "all ok"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Series run: {html.escape(profile)}</title>
<style>{_CSS}</style></head><body>
<h1>Deep learning on medical images: run of profile <code>{html.escape(profile)}</code></h1>
<p class="summary">{len(records)} notebooks ({state}), {_seconds(total)} of notebook execution,
written {time.strftime('%Y-%m-%d %H:%M:%S')}. Metrics: point value (95 % bootstrap interval over
the held-out unit); {MISSING} means not computed on this data (hover for why).</p>
<main class="grid">
{cards}
</main></body></html>
"""
    return write_text_atomic(out_dir / "index.html", page)


def collect_records(out_dir: str | Path) -> list[dict]:
    """Records of the notebooks already executed into ``out_dir``, for rewriting the index
    without running anything: status, error line and run time from the executed copy's
    papermill metadata (``summary.json`` where that has none), metrics from ``metrics.json``."""
    out_dir = Path(out_dir).resolve()
    summary_path = out_dir / "summary.json"
    summary = {}
    if summary_path.is_file():
        summary = {r.get("notebook"): r for r in json.loads(summary_path.read_text())}
    records = []
    for stem in SERIES:
        executed = out_dir / f"{stem}.ipynb"
        if not executed.is_file():
            continue
        rec = {"notebook": stem, "executed": str(executed), "output_dir": str(out_dir / stem),
               "status": summary.get(stem, {}).get("status", "ok"),
               "seconds": summary.get(stem, {}).get("seconds")}
        try:
            nb = json.loads(executed.read_text())
        except (OSError, ValueError):
            nb = {}
        meta = nb.get("metadata", {}).get("papermill", {})
        errors = [o for c in nb.get("cells", []) for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        if meta.get("exception") or errors:
            rec["status"] = "failed"
            if errors:
                rec["error"] = f"{errors[0].get('ename')}: {errors[0].get('evalue')}"
        elif meta and meta.get("end_time") is None:
            rec["status"] = "incomplete"
        if isinstance(meta.get("duration"), (int, float)):
            rec["seconds"] = round(meta["duration"], 1)
        rec["metrics"] = _read_metrics(out_dir / stem)
        records.append(rec)
    return records


def write_index_only(profile: str, out_dir: str | Path | None = None, render: bool = True) -> Path:
    """Rewrite ``index.html`` from what ``out_dir`` already holds; with ``render``, first
    render the HTML of each executed copy that has none (or an older one)."""
    out_dir = Path(out_dir or paths.runs_root() / profile).resolve()
    if not out_dir.is_dir():
        raise FileNotFoundError(f"no run to index: {out_dir} does not exist (make run PROFILE={profile})")
    records = collect_records(out_dir)
    for rec in records:
        executed = Path(rec["executed"])
        page = executed.with_suffix(".html")
        if render and (not page.is_file() or page.stat().st_mtime < executed.stat().st_mtime):
            try:
                render_html(executed)
            except Exception as err:  # noqa: BLE001 - a broken copy must not stop the index
                print(f"could not render {executed.name}: {err}", file=sys.stderr)
        rec["html"] = page.is_file()
    return write_index(records, out_dir, profile)


def _read_metrics(folder: Path) -> dict:
    try:
        return json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def run_series(profile: str = "full", out_dir: str | Path | None = None,
               only: list[str] | None = None) -> list[dict]:
    """Execute the series in order, stop at the first failure, always write ``index.html``."""
    out_dir = Path(out_dir or paths.runs_root() / profile).resolve()
    stems = [s for s in existing_notebooks() if not only or s in only]
    records = []
    try:
        for i, stem in enumerate(stems, 1):
            print(f"[{i}/{len(stems)}] {stem} (profile {profile})", flush=True)
            start = time.perf_counter()
            try:
                rec = execute_notebook(stem, profile, out_dir)
            except NotebookFailed as err:
                lines = str(err).splitlines()
                records.append({"notebook": stem, "status": "failed", "html": True,
                                "seconds": round(time.perf_counter() - start, 1),
                                "error": lines[1] if len(lines) > 1 else lines[0] if lines else "",
                                "output_dir": str(out_dir / stem),
                                "metrics": _read_metrics(out_dir / stem)})
                render_html(out_dir / f"{stem}.ipynb")
                raise
            rec["html"] = True
            render_html(rec["executed"])
            records.append(rec)
            print(f"[{i}/{len(stems)}] {stem} done in {rec['seconds']:.1f} s", flush=True)
    finally:
        index = write_index(records, out_dir, profile)
        write_json(out_dir / "summary.json", to_jsonable(records))
        print(f"index: {index}")
    return records


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the notebook series headless.")
    parser.add_argument("--profile", default="full", help="smoke or full (notebooks/params/<profile>.yaml)")
    parser.add_argument("--out", default=None, help="output folder (default runs/<profile>)")
    parser.add_argument("--only", default=None, help="comma-separated notebook stems")
    parser.add_argument("--index-only", action="store_true",
                        help="execute nothing: rewrite index.html from the executed copies already there")
    args = parser.parse_args(argv)
    if args.index_only:
        try:
            print(f"index: {write_index_only(args.profile, args.out)}")
        except FileNotFoundError as err:
            print(err, file=sys.stderr)
            return 1
        return 0
    only = args.only.split(",") if args.only else None
    start = time.perf_counter()
    try:
        run_series(args.profile, args.out, only)
    except NotebookFailed as err:
        print(f"\nFAILED: {err}", file=sys.stderr, flush=True)
        return 1
    print(f"series done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
