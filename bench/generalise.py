"""Own data vs unseen sites: notebooks 04-09 on our synthetic data and on site variants.

For each preset in ``helpers.synthetic.variants.SITES`` this builds, for each layout the chosen notebooks read,
a dataset the notebooks were never tuned on: the generator run with ANOTHER seed, then
transformed as that site's scanners would give it (spacing, orientation, noise, gain, blur;
``variants.make_variant``), with no generator-only file. It then runs notebooks 04-09 with
the same profile parameters on our own data and on each variant (``data_dir`` pointed at
it, nothing else changed) and prints the headline metrics side by side, with their 95 %
bootstrap intervals over the held-out units (the README's metrics contract).

    python bench/generalise.py --profile smoke        # make generalise PROFILE=smoke
    python bench/generalise.py --profile full --combine 2 --only 06_unet_segmentation,07_keypoint_cnn

``--combine 2`` joins two generator seeds per LUNA16 site (``variants.combine``), so 06 holds
out 16 series instead of 8; ``--reuse`` takes a column from an earlier run of the same code
instead of re-running it. This is a benchmark, not a timed test: the full profile takes
about as long as the series times (1 + number of sites). Results go to
``runs/generalise-<profile>[-x<N>]/`` (executed notebooks per site) and
``bench/results/generalise-<profile>[-x<N>][-<sites>][-<notebooks>].md`` (the table).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import datasets, evaluation, paths, runner  # noqa: E402
from helpers.synthetic import variants  # noqa: E402

#: notebook -> (dataset its data_dir points at, [(label, metric key, sub-key or None)])
HEADLINES = {
    "04_metadata_baselines": ("rsna", [("CNN AUC", "cnn_auc", None), ("metadata AUC", "metadata_auc", None)]),
    "05_pca_svm": ("hcp", [("best nested-CV accuracy", "best_accuracy", None)]),
    "06_unet_segmentation": ("luna16", [("foreground Dice, whole scans", "foreground_dice", None),
                                        ("CPM", "cpm", None)]),
    "07_keypoint_cnn": ("dsb2", [("inside-LV rate", "inside_lv_rate", None),
                                 ("median error (mm)", "median_error_mm", None),
                                 ("motion gain (mm)", "motion_gain_mm", None)]),
    "08_cam_visualization": ("hcp", [("3-D CNN accuracy (best cube)", "cnn3d_accuracy", "best"),
                                     ("Grad-CAM pointing rate", "cam_pointing_rate", None)]),
    "09_ejection_fraction": ("dsb2", [("CRPS", "crps", None), ("CRPS, mean-volume baseline", "crps_mean_baseline", None),
                                      ("EF MAE (points)", "ef_mae", None)]),
}


def build_sites(profile_size: str, sites: list[str], out_root: Path, combine: int = 1,
                names=tuple(datasets.LAYOUTS)) -> dict[str, dict[str, Path]]:
    """Every site's four datasets: generator seed 11, 12, ... (never our seed 0), then the site's transforms.

    ``combine`` > 1 joins that many generator seeds per site for the layouts
    ``variants.combine`` supports (LUNA16), so the held-out set has more series.
    """
    built = {}
    for site in sites:
        seed = 11 + list(variants.SITES).index(site)     # a site keeps its seed when run alone
        built[site] = {}
        for name in names:
            start = time.perf_counter()
            source = datasets.resolve(name, None, profile_size, seed)
            if combine > 1 and name in variants.COMBINERS:
                parts = [source] + [datasets.resolve(name, None, profile_size, seed + 100 * j) for j in range(1, combine)]
                source = variants.combine(name, parts, out_root / site / f".{name}-combined")
            target = out_root / site / name
            variants.make_variant(name, source, target, variants.SITES[site], seed=seed)
            built[site][name] = target
            print(f"  {site}/{name}: {time.perf_counter() - start:.0f} s", flush=True)
    return built


def value_of(metrics: dict, key: str, sub: str | None):
    value, ci = metrics.get(key), metrics.get(f"{key}_ci")
    if sub is not None:
        value = value.get(sub) if isinstance(value, dict) else None
        ci = ci.get(sub) if isinstance(ci, dict) else None
    return value, ci


def cell(value, ci) -> str:
    if value is None:
        return "n/a (no ground truth)"
    return evaluation.format_ci(value, ci, 3)


def table(results: dict[str, dict[str, dict]], columns: list[str], stems) -> str:
    lines = ["| notebook | metric | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for stem in stems:
        rows = HEADLINES[stem][1]
        for label, key, sub in rows:
            cells = []
            for col in columns:
                m = results.get(col, {}).get(stem)
                cells.append("failed" if m is None else cell(*value_of(m, key, sub)))
            lines.append(f"| {stem[:2]} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="smoke", help="smoke or full (the series' parameter profiles)")
    parser.add_argument("--sites", default=",".join(variants.SITES), help="comma-separated presets of variants.SITES")
    parser.add_argument("--only", default=",".join(HEADLINES), help="comma-separated notebook stems (04-09)")
    parser.add_argument("--combine", type=int, default=1,
                        help="join this many generator seeds per site where the layout allows (LUNA16)")
    parser.add_argument("--reuse", action="store_true",
                        help="take a column's metrics from an earlier run of the same profile where there is one "
                             "(only valid when the code has not changed since)")
    args = parser.parse_args(argv)
    sites, stems = args.sites.split(","), args.only.split(",")
    size = runner.load_profile(args.profile)["00_setup"].get("synthetic_size", "full")
    tag = args.profile + (f"-x{args.combine}" if args.combine > 1 else "")
    out = paths.runs_root() / f"generalise-{tag}"
    print(f"building site variants ({size} datasets)", flush=True)
    built = build_sites(size, sites, paths.data_root() / "variants" / (size + tag[len(args.profile):]), args.combine,
                        names=sorted({HEADLINES[stem][0] for stem in stems}))
    results: dict[str, dict[str, dict]] = {}
    seconds: dict[str, float] = {}
    for column in ["own data"] + sites:
        results[column] = {}
        start = time.perf_counter()
        for stem in stems:
            name = HEADLINES[stem][0]
            params = {} if column == "own data" else {"data_dir": str(built[column][name])}
            folder = out / ("own" if column == "own data" else column)
            earlier = folder / stem / "metrics.json"
            if args.reuse and earlier.is_file():
                results[column][stem] = json.loads(earlier.read_text())
                print(f"{column:>14s}  {stem}: reused {earlier}", flush=True)
                continue
            try:
                record = runner.execute_notebook(stem, args.profile, folder, params, progress=False)
                results[column][stem] = record["metrics"]
                print(f"{column:>14s}  {stem}: {record['seconds']:.0f} s", flush=True)
            except runner.NotebookFailed as err:
                print(f"{column:>14s}  {stem}: FAILED\n{str(err)[:2000]}", flush=True)
        seconds[column] = round(time.perf_counter() - start)
    columns = ["own data"] + sites
    md = table(results, columns, stems)
    knobs = "\n".join(f"- `{s}`: {variants.SITES[s]}" for s in sites)
    command = " ".join(["python bench/generalise.py"] + (argv if argv is not None else sys.argv[1:]))
    report = (f"# Own data vs unseen sites, profile `{args.profile}`\n\n`{command}`; 95 % bootstrap intervals over the held-out units. Sites (generator seeds 11, 12, "
              f"…, then transformed):\n{knobs}\n\n{md}\n\nwall time per column (s): {seconds}\n")
    results_dir = ROOT / "bench" / "results"
    tag += "" if sites == list(variants.SITES) else "-" + "-".join(sites)
    tag += "" if stems == list(HEADLINES) else "-" + "-".join(stem[:2] for stem in stems)
    results_dir.mkdir(exist_ok=True)
    (results_dir / f"generalise-{tag}.md").write_text(report)
    (results_dir / f"generalise-{tag}.json").write_text(json.dumps(
        {c: {s: {k: value_of(m, k, sub) for _, k, sub in HEADLINES[s][1]} for s, m in r.items()}
         for c, r in results.items()}, indent=1))
    print("\n" + report)
    return 0 if all(len(r) == len(stems) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
