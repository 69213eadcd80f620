"""Plotting helpers shared by the notebooks.

Every function takes an optional ``axes`` (or ``ax``) to draw into, so a notebook can
compose figures, and returns the matplotlib Figure it drew on. Images are 2-D arrays in
(row, col) order shown with the origin at the top left, as radiologists view slices.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


def panels(nrows: int, ncols: int, figsize: tuple[float, float], ax=None):
    """``(figure, axes as an (nrows, ncols) array)``: new axes, or the ``ax`` given (any array or
    sequence of ``nrows * ncols`` axes, e.g. part of a larger figure). The one way every
    multi-panel plot of the package gets its axes, so all of them accept ``ax=``."""
    if ax is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
        return fig, axes
    axes = np.asarray(ax, dtype=object).ravel()
    if axes.size != nrows * ncols:
        raise ValueError(f"need {nrows * ncols} axes, got {axes.size}")
    return axes[0].figure, axes.reshape(nrows, ncols)


def _grid(n: int, ncols: int | None, size: float):
    ncols = ncols or min(n, 6)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    return fig, axes.ravel()


def montage(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, ncols: int | None = None,
            cmap: str = "gray", vmin=None, vmax=None, size: float = 2.2, axes=None,
            suptitle: str | None = None, ax=None):
    """Show images in a grid (one per axis) and return the figure.

    ``vmin``/``vmax`` fix the grey scale for all panels (e.g. a CT window in HU), so the
    panels are comparable; leave them ``None`` to scale each panel to its own range.
    """
    images = list(images)
    axes = ax if ax is not None else axes
    if axes is None:
        fig, axes = _grid(max(len(images), 1), ncols, size)
    else:
        axes = np.ravel(axes)
        fig = axes[0].figure
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap=cmap, vmin=vmin, vmax=vmax)
            if titles is not None and i < len(titles):
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def overlay(image: np.ndarray, mask: np.ndarray | None = None, heatmap: np.ndarray | None = None,
            points: np.ndarray | None = None, ax=None, cmap: str = "gray", vmin=None, vmax=None,
            mask_color: str = "tab:red", title: str | None = None, alpha: float = 0.4):
    """Draw an image with an optional mask contour, heatmap and (row, col) points; return the figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4))
    fig = ax.figure
    ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
    if heatmap is not None:
        ax.imshow(heatmap, cmap="jet", alpha=alpha)
    if mask is not None and np.any(mask):
        ax.contour(np.asarray(mask, float), levels=[0.5], colors=[mask_color], linewidths=1)
    if points is not None:
        pts = np.atleast_2d(points)
        ax.scatter(pts[:, 1], pts[:, 0], s=30, c="yellow", marker="+")
    if title:
        ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def training_curves(history, metrics: Sequence[str] = ("loss",), ax=None):
    """Plot training and validation curves from a Keras ``History`` (or its ``.history`` dict)."""
    hist = getattr(history, "history", history)
    if ax is None:
        fig, ax = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3), squeeze=False)
        ax = ax.ravel()
    axes = np.ravel(ax)
    for a, name in zip(axes, metrics):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            if key in hist:
                a.plot(np.arange(1, len(hist[key]) + 1), hist[key], style, label=key)
        a.set_xlabel("epoch")
        a.set_title(name)
        a.legend(fontsize=8)
    fig = axes[0].figure
    fig.tight_layout()
    return fig



def dataset_examples(examples: dict, size: float = 3.6, ax=None):
    """One image per dataset: ``{name: (image, title, (vmin, vmax))}``, as
    :func:`helpers.datasets.example_image` returns them. ``ax``: a sequence of axes to draw
    on (one per dataset); returns the figure."""
    if ax is None:
        fig, axes = _grid(len(examples), len(examples), size)
    else:
        axes = list(np.ravel(ax))
        fig = axes[0].figure
    for a, (image, title, (vmin, vmax)) in zip(axes, examples.values()):
        a.imshow(image, cmap="gray", vmin=vmin, vmax=vmax)
        a.set_title(title, fontsize=8)
        a.axis("off")
    return fig
