"""CT intensity tools: named windows, window channel stacks and histogram scaling.

CT pixels are Hounsfield units (HU): air -1000, fat about -100, water 0, blood 40-90 (fresh
blood is brighter than brain), grey matter ~40, white matter ~25, bone +700 and above. A
radiologist never looks at the whole HU range at once: a **window** (level L, width W) maps
``L - W/2 .. L + W/2`` linearly to black..white and clips everything else. Different windows
show different things, so a network can be given several as colour channels
(:func:`window_stack`) — or given HU directly and left to learn its own windows.

Windows here are ``(level, width)`` in HU. The commonly quoted "W/L" order is reversed:
"brain 80/40" is width 80, level 40.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Named CT windows as (level, width) in HU.
#: brain 40/80; subdural 100/254 (fastai's choice; wide enough to separate a thin
#: subdural collection from the skull); stroke 40/40 (narrow: early ischaemia is a few HU
#: darker); bone 600/2800 (skull and fractures); soft 40/375 (soft tissue of the scalp).
WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (100.0, 254.0),
    "stroke": (40.0, 40.0),
    "bone": (600.0, 2800.0),
    "soft": (40.0, 375.0),
}


def window(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Map HU to ``[0, 1]`` with a window: ``(hu - (level - width/2)) / width``, clipped.

    Works on any shape; returns float32 of the same shape.
    """
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    low = level - width / 2.0
    return np.clip((np.asarray(hu, np.float32) - np.float32(low)) / np.float32(width), 0.0, 1.0).astype(np.float32)


def named_window(hu: np.ndarray, name: str) -> np.ndarray:
    """:func:`window` with one of :data:`WINDOWS` (e.g. ``"brain"``)."""
    if name not in WINDOWS:
        raise KeyError(f"unknown window {name!r}; known: {sorted(WINDOWS)}")
    return window(hu, *WINDOWS[name])


def window_stack(hu: np.ndarray, names: Sequence[str] = ("brain", "subdural", "bone")) -> np.ndarray:
    """Several windows of the same HU image as channels: shape ``hu.shape + (len(names),)``, in [0, 1].

    With three names the result can be shown as an RGB image, or fed to a network that
    expects three channels.
    """
    return np.stack([named_window(hu, n) for n in names], axis=-1)


def window_stack_uint8(hu: np.ndarray, names: Sequence[str] = ("brain", "subdural", "bone")) -> np.ndarray:
    """:func:`window_stack` rounded to ``uint8`` (0–255): a quarter of float32's memory.

    The network input of notebook 04; :func:`helpers.training.make_dataset` scales ``uint8``
    back to [0, 1]. Anything that feeds the same network (08's Grad-CAM) builds it here too.
    """
    return np.round(window_stack(hu, names) * 255).astype(np.uint8)


def freqhist_bins(values: np.ndarray, n_bins: int = 100) -> np.ndarray:
    """Bin edges that split ``values`` into bins of (roughly) equal counts.

    The edges are quantiles of the values; duplicates (from large constant regions such as
    air) are removed, so fewer than ``n_bins + 1`` edges may come back (at least two).
    """
    flat = np.asarray(values, np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        raise ValueError("no finite values to compute histogram bins from")
    edges = np.unique(np.quantile(flat, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size == 1:
        edges = np.array([edges[0], edges[0] + 1.0])
    return edges


def hist_scaled(hu: np.ndarray, bins: np.ndarray | None = None, n_bins: int = 100) -> np.ndarray:
    """Histogram (frequency-bin) scaling: map each value to its quantile, in ``[0, 1]``.

    ``bins`` from :func:`freqhist_bins` (computed from ``hu`` itself when ``None``; pass
    bins computed on a training sample to scale every image the same way). Values between
    edges are interpolated linearly; the output has a roughly uniform histogram, so every
    intensity range gets contrast in proportion to how many pixels it holds.
    """
    hu = np.asarray(hu, np.float32)
    if bins is None:
        bins = freqhist_bins(hu, n_bins)
    targets = np.linspace(0.0, 1.0, len(bins))
    return np.interp(hu, bins, targets).astype(np.float32)


def hu_histogram(hu: np.ndarray, ax=None, bins: int = 200, hu_range: tuple[float, float] | None = (-1100, 1600),
                 title: str | None = None, windows: Sequence[str] = ("brain",), log: bool = True,
                 color: str = "tab:blue", label: str | None = None, alpha: float = 1.0):
    """Histogram of HU values with named windows shaded; returns the figure.

    ``hu_range=None`` uses the data's own range (to show out-of-range values such as the
    3096 peak of an unrepaired slice). ``log`` counts on a log scale, so small peaks show.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    values = np.asarray(hu, np.float32).ravel()
    ax.hist(values, bins=bins, range=hu_range, color=color, log=log, label=label, alpha=alpha)
    for name in windows:
        level, width = WINDOWS[name]
        ax.axvspan(level - width / 2, level + width / 2, color="tab:orange", alpha=0.3, label=f"{name} window")
    ax.set_xlabel("HU")
    ax.set_ylabel("pixels")
    if windows or label:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure
