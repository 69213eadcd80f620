"""Run the series headless with papermill, and write ``runs/<profile>/index.html``.

``python -m helpers.runner --profile smoke`` (what ``make run PROFILE=smoke`` calls)
executes every notebook of the series that exists, in order, into ``runs/<profile>/``:

* parameters come from ``notebooks/params/<profile>.yaml`` (``defaults`` plus one entry per
  notebook); profiles differ only in these parameters;
* progress: which notebook, which cell, elapsed seconds;
* the first notebook that raises stops the run, with its failing cell's traceback printed;
* at the end, ``index.html`` links an HTML render of each executed notebook and tabulates
  every notebook's headline metrics (its ``metrics.json``) and run time.
"""
from __future__ import annotations

import argparse
import html
import json
import sys
import time
from pathlib import Path

import yaml

from . import paths
from .io import to_jsonable, write_json, write_text_atomic

SERIES = [
    "00_setup", "01_data_cleaning", "02_data_exploration", "03_data_augmentation",
    "04_metadata_baselines", "05_pca_svm", "06_unet_segmentation", "07_keypoint_cnn",
    "08_cam_visualization",
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


def _flatten(metrics: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _with_intervals(flat: dict) -> dict:
    """Fold each ``<key>_ci`` (flattened: ``<key>_ci`` or ``<key>_ci.<sub>``) into its metric's
    cell as ``value [low, high]``, so a reader sees the point and its interval together."""
    def base(key):
        head, _, sub = key.partition(".")
        return head[:-3] + (f".{sub}" if sub else "") if head.endswith("_ci") else None

    cis = {base(k): v for k, v in flat.items() if base(k) in flat}
    out = {}
    for key, value in flat.items():
        if base(key) in flat:
            continue
        text = _fmt(value)
        if isinstance(cis.get(key), list) and len(cis[key]) == 2:
            text += f" [{_fmt(cis[key][0])}, {_fmt(cis[key][1])}]"
        out[key] = text
    return out


def write_index(records: list[dict], out_dir: str | Path, profile: str) -> Path:
    """Write ``index.html``: links to each notebook's HTML and a table of metrics and times."""
    out_dir = Path(out_dir)
    rows = []
    for rec in records:
        name = rec["notebook"]
        link = f'<a href="{html.escape(name)}.html">{html.escape(name)}</a>' if rec.get("html") else html.escape(name)
        metrics = "<br>".join(f"<code>{html.escape(k)}</code> = {html.escape(v)}"
                              for k, v in _with_intervals(_flatten(rec.get("metrics", {}))).items())
        status = rec.get("status", "ok")
        rows.append(f"<tr class='{status}'><td>{link}</td><td>{status}</td>"
                    f"<td style='text-align:right'>{rec.get('seconds', '')}</td><td>{metrics}</td></tr>")
    total = sum(r.get("seconds", 0) for r in records)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Series run: {html.escape(profile)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}} tr.failed{{background:#fdd}}
code{{font-size:90%}}</style></head><body>
<h1>Deep learning on medical images: run of profile <code>{html.escape(profile)}</code></h1>
<p>{len(records)} notebooks, {total:.0f} s of notebook execution, written {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>headline metrics (metrics.json; [95 % interval])</th></tr>
{''.join(rows)}
</table></body></html>
"""
    return write_text_atomic(out_dir / "index.html", page)


def run_series(profile: str = "full", out_dir: str | Path | None = None,
               only: list[str] | None = None) -> list[dict]:
    """Execute the series in order, stop at the first failure, always write ``index.html``."""
    out_dir = Path(out_dir or paths.runs_root() / profile).resolve()
    stems = [s for s in existing_notebooks() if not only or s in only]
    records = []
    try:
        for i, stem in enumerate(stems, 1):
            print(f"[{i}/{len(stems)}] {stem} (profile {profile})", flush=True)
            try:
                rec = execute_notebook(stem, profile, out_dir)
            except NotebookFailed:
                records.append({"notebook": stem, "status": "failed", "html": True,
                                "seconds": 0})
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
    args = parser.parse_args(argv)
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
