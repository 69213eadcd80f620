"""Geometric and photometric augmentation that moves masks and keypoints with the image.

Augmentation is applied to **training data only**: validation and test images are never
augmented, so that their scores measure the model on the data it will meet, not on
transformed copies (and so that two evaluations of the same model give the same number).

One sample, one draw
--------------------
For every sample the random parameters (flips, rotation, zoom, translation, blur, brightness,
contrast) are drawn **once** from a seeded :class:`numpy.random.Generator`
(:func:`sample_params`), and the geometric part becomes **one** 3×3 affine matrix
(:func:`affine_matrix`). That one matrix is applied

* to the image with :func:`scipy.ndimage.affine_transform`, linear interpolation (``order=1``);
* to the mask with the same function, nearest neighbour (``order=0``), so labels stay labels;
* to the keypoints by a matrix product (:func:`transform_keypoints`).

So image, mask and keypoints cannot drift apart: they share the matrix.

Pixel-centre convention
-----------------------
Coordinates are ``(row, col)`` in pixels, and **pixel ``(i, j)`` has its centre at the
coordinate ``(i, j)``** (the NumPy/SciPy convention: the image covers
``[-0.5, rows - 0.5] × [-0.5, cols - 0.5]``). A keypoint at ``(12.0, 30.0)`` sits on the centre
of pixel ``[12, 30]``. Rotations and zooms are about the image centre
``((rows - 1) / 2, (cols - 1) / 2)``; a left-right flip maps column ``c`` to ``cols - 1 - c``.
With this convention a transformed keypoint lands on the same anatomy as the transformed
image, within interpolation error (well under 1 px; checked by the unit tests). Keypoints
may leave the image under large translations; they are returned as computed (not clipped).

Photometric changes (blur, brightness, contrast) touch the image only, never the mask or the
keypoints. Brightness is a shift in units of the image's standard deviation and contrast a
factor about its mean, so they mean the same thing for HU and for normalised images; note
that they move HU values, which is why CT notebooks use them sparingly.

In a ``tf.data`` pipeline use :func:`augment_dataset` (or :func:`tf_augment`), which calls the
same NumPy code through ``tf.numpy_function`` and sets the static shapes again.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms (each drawn once per sample).

    Attributes
    ----------
    flip_lr, flip_ud : float
        Probability of a left-right (column) / up-down (row) flip.
    rotation_deg : float
        Rotation angle drawn uniformly from ``[-rotation_deg, rotation_deg]`` degrees.
    zoom : tuple[float, float]
        Scale factor range (``> 1`` magnifies). ``(1, 1)`` disables zoom.
    translate : float
        Shift drawn from ``[-translate, translate]`` × image size, per axis (fraction).
    blur_sigma : float
        Gaussian blur sigma drawn from ``[0, blur_sigma]`` pixels (``0`` disables).
    brightness : float
        Additive shift drawn from ``[-brightness, brightness]`` × the image's std.
    contrast : float
        Factor drawn from ``[1 - contrast, 1 + contrast]`` about the image mean.
    fill : str
        ``scipy.ndimage`` boundary mode for the image (``"constant"`` fills with ``cval``,
        ``"nearest"`` repeats the edge). Masks are always filled with 0.
    cval : float
        Fill value for ``fill="constant"``.
    """

    flip_lr: float = 0.5
    flip_ud: float = 0.0
    rotation_deg: float = 10.0
    zoom: tuple[float, float] = (0.95, 1.05)
    translate: float = 0.05
    blur_sigma: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    fill: str = "constant"
    cval: float = 0.0

    def as_dict(self) -> dict:
        """The configuration as a plain dict (e.g. for ``metrics.json``)."""
        return asdict(self)


#: No transform at all (useful to check that the plumbing is the identity).
IDENTITY = AugmentConfig(flip_lr=0.0, flip_ud=0.0, rotation_deg=0.0, zoom=(1.0, 1.0), translate=0.0)


class Augmented(NamedTuple):
    """The result of :func:`augment`: arrays are ``None`` when they were not given."""

    image: np.ndarray
    mask: np.ndarray | None
    keypoints: np.ndarray | None
    params: dict


def sample_params(rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> dict:
    """Draw one sample's transform parameters from ``rng`` (always the same number of draws)."""
    u = rng.uniform(size=9)  # fixed number of draws: a config change never shifts the stream
    lo, hi = config.zoom
    return {
        "flip_lr": bool(u[0] < config.flip_lr),
        "flip_ud": bool(u[1] < config.flip_ud),
        "rotation_deg": float((2 * u[2] - 1) * config.rotation_deg),
        "zoom": float(lo + (hi - lo) * u[3]),
        "translate": (float((2 * u[4] - 1) * config.translate), float((2 * u[5] - 1) * config.translate)),
        "blur_sigma": float(u[6] * config.blur_sigma),
        "brightness": float((2 * u[7] - 1) * config.brightness),
        "contrast": float(1 + (2 * u[8] - 1) * config.contrast),
    }


def affine_matrix(params: dict, shape: tuple[int, int]) -> np.ndarray:
    """The forward 3×3 matrix mapping input ``(row, col, 1)`` to output coordinates.

    Order: flip, then rotate and zoom about the image centre, then translate
    (``params["translate"]`` is a fraction of ``shape``). Pixel centres are integer
    coordinates (see the module docstring).
    """
    rows, cols = shape[:2]
    centre = np.array([(rows - 1) / 2.0, (cols - 1) / 2.0])
    flip = np.diag([-1.0 if params.get("flip_ud") else 1.0, -1.0 if params.get("flip_lr") else 1.0])
    theta = np.deg2rad(params.get("rotation_deg", 0.0))
    # (row, col) axes with rows pointing down: a positive angle turns the image clockwise on screen.
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    linear = params.get("zoom", 1.0) * rot @ flip
    shift = np.asarray(params.get("translate", (0.0, 0.0)), float) * np.array([rows, cols], float)
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = centre - linear @ centre + shift
    return matrix


def transform_keypoints(keypoints, matrix: np.ndarray) -> np.ndarray:
    """Apply a forward matrix to ``(n, 2)`` (or ``(2,)``) ``(row, col)`` keypoints."""
    pts = np.asarray(keypoints, dtype=np.float64)
    flat = pts.reshape(-1, 2)
    out = flat @ matrix[:2, :2].T + matrix[:2, 2]
    return out.reshape(pts.shape)


def transform_image(image: np.ndarray, matrix: np.ndarray, order: int = 1, mode: str = "constant",
                    cval: float = 0.0) -> np.ndarray:
    """Resample ``image`` (``(H, W)`` or ``(H, W, C)``) under a forward matrix; same shape out.

    ``order=1`` (linear) for images, ``order=0`` (nearest) for masks and label maps.
    """
    image = np.asarray(image)
    inverse = np.linalg.inv(matrix)
    if image.ndim == 2:
        return ndimage.affine_transform(image, inverse, order=order, mode=mode, cval=cval)
    channels = [ndimage.affine_transform(image[..., k], inverse, order=order, mode=mode, cval=cval)
                for k in range(image.shape[-1])]
    return np.stack(channels, axis=-1)


def adjust_intensity(image: np.ndarray, params: dict) -> np.ndarray:
    """Blur (spatial axes only), then contrast about the mean and brightness in std units."""
    out = np.asarray(image, dtype=np.float32)
    sigma = params.get("blur_sigma", 0.0)
    if sigma > 0:
        out = ndimage.gaussian_filter(out, sigma=[sigma, sigma] + [0] * (out.ndim - 2))
    contrast, brightness = params.get("contrast", 1.0), params.get("brightness", 0.0)
    if contrast != 1.0 or brightness != 0.0:
        mean, std = float(out.mean()), float(out.std()) or 1.0
        out = (out - mean) * contrast + mean + brightness * std
    return out.astype(np.float32, copy=False)


def augment(image: np.ndarray, mask: np.ndarray | None = None, keypoints=None,
            rng: np.random.Generator | int | None = None,
            config: AugmentConfig = AugmentConfig(), params: dict | None = None) -> Augmented:
    """Augment one training sample: image with its mask and/or keypoints.

    Parameters
    ----------
    image : array ``(H, W)`` or ``(H, W, C)``
        Any units; returned as float32 of the same shape.
    mask : array ``(H, W)``, optional
        Label map, transformed with nearest neighbour and the same matrix (dtype kept).
    keypoints : array ``(n, 2)`` or ``(2,)``, optional
        ``(row, col)`` pixel coordinates, pixel centres at integers.
    rng : Generator or int seed
        Source of the random parameters (drawn once for this sample).
    config : AugmentConfig
        Ranges of the transforms.
    params : dict, optional
        Use these parameters instead of drawing them (e.g. to replay a transform).

    Training data only: never augment validation or test data.
    """
    if params is None:
        params = sample_params(np.random.default_rng(rng), config)
    image = np.asarray(image, dtype=np.float32)
    matrix = affine_matrix(params, image.shape[:2])
    out_image = adjust_intensity(transform_image(image, matrix, 1, config.fill, config.cval), params)
    out_mask = None
    if mask is not None:
        mask = np.asarray(mask)
        out_mask = transform_image(mask, matrix, order=0, mode="constant", cval=0).astype(mask.dtype)
    out_points = None if keypoints is None else transform_keypoints(keypoints, matrix).astype(np.float32)
    return Augmented(out_image, out_mask, out_points, {**params, "matrix": matrix})


def augment_batch(images: np.ndarray, keypoints=None, masks=None, seed: int = 0,
                  config: AugmentConfig = AugmentConfig()):
    """Augment each sample of a batch independently; returns ``(images, keypoints, masks)``.

    ``images`` is ``(N, H, W[, C])``; ``keypoints`` ``(N, 2)`` or ``(N, k, 2)``; ``masks``
    ``(N, H, W)``. Sample ``i`` uses the seed ``(seed, i)``, so a batch is reproducible.
    Entries not given come back as ``None``.
    """
    out_images, out_points, out_masks = [], [], []
    for i, image in enumerate(images):
        res = augment(image, None if masks is None else masks[i], None if keypoints is None else keypoints[i],
                      rng=np.random.default_rng([seed, i]), config=config)
        out_images.append(res.image)
        out_points.append(res.keypoints)
        out_masks.append(res.mask)
    return (np.stack(out_images), None if keypoints is None else np.stack(out_points),
            None if masks is None else np.stack(out_masks))


# --------------------------------------------------------------------------- tf.data
def tf_augment(config: AugmentConfig = AugmentConfig(), target: str = "keypoints"):
    """A ``tf.data`` map function ``(image, target, seed) -> (image, target)``.

    ``target`` is ``"keypoints"`` (``(k, 2)`` or ``(2,)`` row/col pixels), ``"mask"``
    (``(H, W)`` labels) or ``"none"`` (the second element is passed through unchanged). The
    NumPy :func:`augment` runs inside ``tf.numpy_function`` with
    ``np.random.default_rng(seed)``, so the result equals ``augment(..., rng=seed)``; static
    shapes are set again after the call. Training data only.
    """
    import tensorflow as tf

    def _numpy(image, tgt, seed):
        if target == "keypoints":
            res = augment(image, keypoints=tgt, rng=int(seed), config=config)
            return res.image, res.keypoints.astype(tgt.dtype)
        if target == "mask":
            res = augment(image, mask=tgt, rng=int(seed), config=config)
            return res.image, res.mask
        return augment(image, rng=int(seed), config=config).image, tgt

    def fn(image, tgt, seed):
        image = tf.cast(image, tf.float32)
        out_image, out_tgt = tf.numpy_function(_numpy, [image, tgt, seed], [tf.float32, tgt.dtype])
        out_image.set_shape(image.shape)
        out_tgt.set_shape(tgt.shape)
        return out_image, out_tgt

    return fn


def augment_dataset(dataset, config: AugmentConfig = AugmentConfig(), seed: int = 0, target: str = "keypoints",
                    num_parallel_calls=None):
    """Augment a ``tf.data.Dataset`` of ``(image, target)`` pairs (training data only).

    Each element gets its own seed from ``tf.data.Dataset.random(seed)``, re-drawn on every
    iteration (epoch), so every epoch sees new transforms and the run is reproducible.
    ``target`` as in :func:`tf_augment`. Returns a dataset of ``(image, target)``.
    """
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).map(
        lambda s: tf.math.floormod(s, 2**31 - 1))
    fn = tf_augment(config, target)
    zipped = tf.data.Dataset.zip((dataset, seeds))
    kwargs = {} if num_parallel_calls is None else {"num_parallel_calls": num_parallel_calls,
                                                    "deterministic": True}
    return zipped.map(lambda pair, s: fn(pair[0], pair[1], s), **kwargs)


# --------------------------------------------------------------------------- checks and figures
def dot_image(shape, centre, sigma: float = 1.5) -> np.ndarray:
    """A Gaussian dot (``sigma`` px) at ``centre`` (row, col, sub-pixel) on a ``shape`` image, peak 1."""
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    return np.exp(-((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def dot_centre(image: np.ndarray) -> np.ndarray:
    """Where the bright dot is (row, col, sub-pixel): intensity-weighted centroid of pixels > 30 % of the max."""
    weights = np.where(image > 0.3 * image.max(), image, 0)
    rr, cc = np.mgrid[:image.shape[0], :image.shape[1]]
    return np.array([(rr * weights).sum(), (cc * weights).sum()]) / weights.sum()


def dot_test(config: AugmentConfig = AugmentConfig(), n_draws: int = 100, shape=(96, 80), sigma: float = 1.5,
             seed: int = 0) -> dict:
    """The bright-dot check: does a transformed keypoint land on the transformed anatomy?

    A Gaussian dot (``sigma`` px) is placed at a random keypoint; after each of ``n_draws``
    augmentations the dot is found again (intensity-weighted centroid of its bright pixels)
    and compared with the transformed keypoint. Draws that push the dot off the image are
    skipped. Returns ``{"max_error_px", "median_error_px", "n_draws"}``.
    """
    rng = np.random.default_rng(seed)
    geometric = replace_photometric(config)
    errors = []
    for _ in range(n_draws):
        point = rng.uniform(0.3, 0.7, 2) * np.array(shape)
        res = augment(dot_image(shape, point, sigma), keypoints=point, rng=rng, config=geometric)
        if res.image.max() < 0.5 or not (np.all(res.keypoints >= 3) and np.all(res.keypoints <= np.array(shape) - 4)):
            continue
        errors.append(float(np.linalg.norm(dot_centre(res.image) - res.keypoints)))
    errors = np.array(errors)
    return {"max_error_px": float(errors.max()), "median_error_px": float(np.median(errors)),
            "n_draws": int(len(errors))}


def replace_photometric(config: AugmentConfig, blur_sigma: float = 0.0, brightness: float = 0.0,
                        contrast: float = 0.0) -> AugmentConfig:
    """``config`` with its photometric ranges replaced (by default switched off)."""
    from dataclasses import replace

    return replace(config, blur_sigma=blur_sigma, brightness=brightness, contrast=contrast)


def mask_keypoint_offsets(image: np.ndarray, mask: np.ndarray, keypoint, config: AugmentConfig = AugmentConfig(),
                          n_draws: int = 50, seed: int = 0) -> np.ndarray:
    """How far the augmented keypoint lies from the augmented mask's centroid, per draw (px).

    For a keypoint that *is* the centroid of the mask (the LV centroid and its blood-pool
    mask), the distance stays at its un-augmented value when mask and keypoint move together.
    Returns ``(n_draws + 1,)`` distances, the first without augmentation; draws whose mask
    leaves the image are NaN.
    """
    out = []
    for k in range(n_draws + 1):
        res = augment(image, mask=mask, keypoints=keypoint,
                      rng=np.random.default_rng([seed, k]), config=IDENTITY if k == 0 else config)
        rows, cols = np.nonzero(res.mask)
        if rows.size < 0.9 * np.count_nonzero(mask):
            out.append(np.nan)
            continue
        out.append(float(np.hypot(rows.mean() - res.keypoints[0], cols.mean() - res.keypoints[1])))
    return np.array(out)


def before_after(images, transforms: dict, config: AugmentConfig = AugmentConfig(), vmin=None, vmax=None,
                 size: float = 1.9, cmap: str = "gray", ax=None):
    """A grid: one row per image, the original then one column per named transform; returns the figure.

    ``transforms`` maps a column title to a parameter dict for :func:`augment` (e.g.
    ``{"left-right flip": {"flip_lr": True}}``); ``config`` supplies the fill mode and value
    (use the air value, -1000 HU, for CT). ``vmin``/``vmax`` fix the grey scale (a CT window),
    so an intensity change shows.
    """
    from .plotting import panels

    images = list(images)
    cols = ["original", *transforms]
    fig, axes = panels(len(images), len(cols), (size * len(cols), size * len(images)), ax)
    for i, image in enumerate(images):
        for j, name in enumerate(cols):
            shown = image if j == 0 else augment(image, params=transforms[name], config=config).image
            axes[i, j].imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax)
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
    fig.tight_layout()
    return fig


def plot_draws(image: np.ndarray, mask=None, keypoints=None, config: AugmentConfig = AugmentConfig(),
               n_draws: int = 5, seed: int = 0, size: float = 2.2, ax=None):
    """The original and ``n_draws`` augmentations of one sample, mask contour (red) and keypoints (yellow +)."""
    from .plotting import panels

    fig, grid = panels(1, n_draws + 1, (size * (n_draws + 1), size), ax)
    for k, ax in enumerate(grid[0]):  # noqa: B020 - the loop's own axes
        res = augment(image, mask=mask, keypoints=keypoints, rng=np.random.default_rng([seed, k]),
                      config=IDENTITY if k == 0 else config)
        ax.imshow(res.image if res.image.ndim == 2 else res.image[..., 0], cmap="gray")
        if res.mask is not None and res.mask.any():
            ax.contour(np.asarray(res.mask, float), levels=[0.5], colors=["tab:red"], linewidths=1)
        if res.keypoints is not None:
            pts = np.reshape(res.keypoints, (-1, 2))
            ax.plot(pts[:, 1], pts[:, 0], "+", color="yellow", ms=10, mew=2)
        ax.set_title("original" if k == 0 else f"draw {k}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig
