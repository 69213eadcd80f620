"""Every function of the package that draws takes matplotlib's ``ax=`` and returns its figure."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers import augment, keypoints, plotting, segmentation  # noqa: E402

PACKAGE = Path(__file__).resolve().parents[2] / "helpers"
DRAWS = re.compile(r"plt\.subplots|plt\.figure|\.imshow\(|\b_grid\(|\bpanels\(")


def _drawing_functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and node.name != "panels":
                if DRAWS.search(ast.get_source_segment(text, node)):
                    yield f"{path.relative_to(PACKAGE.parent)}:{node.name}", node


@pytest.mark.parametrize("name,node", list(_drawing_functions()), ids=lambda v: v if isinstance(v, str) else "")
def test_takes_ax(name, node):
    args = {a.arg for a in node.args.args + node.args.kwonlyargs}
    assert "ax" in args, f"{name} draws but has no ax= parameter"


def test_multi_panel_plots_draw_into_given_axes():
    fig, axes = plt.subplots(2, 3)
    images = [np.random.default_rng(i).normal(size=(16, 16)) for i in range(2)]
    assert augment.before_after(images, {"flip": {"flip_lr": True}, "none": {}}, ax=axes) is fig
    fig2, axes2 = plt.subplots(1, 3)
    assert plotting.montage(images, ax=axes2) is fig2
    masks = [im > 0 for im in images]
    fig3, axes3 = plt.subplots(1, 2)
    assert segmentation.show_predictions(images, masks, masks, [0, 1], ax=axes3) is fig3
    fig4, axes4 = plt.subplots(1, 2)
    assert keypoints.plot_keypoints(images, truth_rc=np.zeros((2, 2)), ax=axes4) is fig4
    with pytest.raises(ValueError, match="need 4 axes"):
        plotting.panels(2, 2, (4, 4), ax=axes4)
    plt.close("all")
