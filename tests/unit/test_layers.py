"""The package is layered: no import circle, no upward import, readers never import the generators.

Layers, bottom to top (a module may import its own layer and the ones below):

0. plumbing: io, paths, cache, shards, layouts, repro, schedules (and the package itself)
1. file formats: dicom, nifti, metaimage
2. image operations and drawing: ct, augment, plotting (arrays in, figures out; no layout)
3. dataset layouts (the readers): rsna, luna16, dsb2, hcp
4. per-notebook pipelines, models, evaluation, the synthetic generators
5. entry points: datasets (``resolve`` generates a stand-in on demand), runner

Every import counts, at module level or inside a function.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "helpers"
LAYERS = {
    0: {"helpers", "io", "paths", "cache", "shards", "layouts", "repro", "schedules"},
    1: {"dicom", "nifti", "metaimage"},
    2: {"ct", "augment", "plotting"},
    3: {"rsna", "luna16", "dsb2", "hcp"},
    4: {"evaluation", "detection", "tabular", "classical", "training", "segmentation", "keypoints", "cam", "cardiac",
        "models", "synthetic"},
    5: {"datasets", "runner"},
}
READERS = LAYERS[1] | LAYERS[3]


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The helpers modules that ``path`` imports, as dotted names (``helpers.x.y``)."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "helpers":
                stem = node.module
            else:
                continue
            for alias in node.names:
                candidate = f"{stem}.{alias.name}"
                found.add(candidate if _exists(candidate) else stem)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "helpers"}
    return {name for name in found if _exists(name)} - {module}


def _exists(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _layer(name: str) -> int:
    top = name.split(".")[1] if "." in name else "helpers"
    for rank, members in LAYERS.items():
        if top in members:
            return rank
    raise AssertionError(f"{name} has no layer: add it to LAYERS in {__file__}")


GRAPH = {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_upward_import(module):
    upward = sorted(t for t in GRAPH[module] if _layer(t) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports {upward} from above"


def test_readers_never_import_the_generators_or_the_entry_point():
    for module, targets in GRAPH.items():
        if module.count(".") == 1 and module.split(".")[1] in READERS:
            bad = sorted(t for t in targets if t.startswith(("helpers.synthetic", "helpers.datasets")))
            assert not bad, f"reader {module} imports {bad}"


def test_plotting_knows_no_dataset_layout():
    assert not {t for t in GRAPH["helpers.plotting"] if _layer(t) >= 3 or t == "helpers.layouts"}


def test_no_import_circle():
    def visit(node, stack):
        if node in stack:
            return stack[stack.index(node):] + [node]
        for target in GRAPH.get(node, ()):
            cycle = visit(target, stack + [node])
            if cycle:
                return cycle
        return None

    for module in GRAPH:
        cycle = visit(module, [])
        assert cycle is None, " -> ".join(cycle)
