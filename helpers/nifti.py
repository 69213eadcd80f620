"""Read NIfTI volumes in world coordinates: canonical (RAS) orientation and resampling.

A NIfTI file holds an array and a 4×4 **affine** that maps a voxel index ``(i, j, k, 1)`` to
world coordinates ``(x, y, z, 1)`` in millimetres, with ``+x`` Right, ``+y`` Anterior and
``+z`` Superior (RAS+, the NIfTI convention). Two files can store the same anatomy with
their axes permuted or flipped (e.g. ``LAS`` or ``PSR``): the arrays then look different, but
the affines say where every voxel is. So readers never trust array axes alone:

* :func:`load_canonical` reorients to the closest RAS+ voxel order
  (``nibabel.as_closest_canonical``): array axis 0 runs left→right, 1 posterior→anterior,
  2 inferior→superior, and the same world point keeps the same value.
* :func:`resample` changes the voxel size (mm) and returns the updated affine;
  :func:`resample_to_grid` samples a volume on any grid given by its affine and shape.

Every function takes arrays in voxel order ``(i, j, k)`` plus their affine and returns new
arrays (never modifies its inputs). Unreadable files raise :class:`NiftiReadError`, a
``ValueError`` naming the file and the reason, which dataset readers record and count.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

EXTENSIONS = (".nii.gz", ".nii")  # longest first, so stem() strips the whole suffix


class NiftiReadError(ValueError):
    """A NIfTI file that cannot be read (truncated, not NIfTI, bad header); names the file."""


def is_nifti(path: str | os.PathLike) -> bool:
    """True for names ending in ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return Path(path).name.lower().endswith(EXTENSIONS)


def stem(path: str | os.PathLike) -> str:
    """The file name without ``.nii`` / ``.nii.gz`` (the subject ID in the HCP layout)."""
    name = Path(path).name
    for ext in EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


def _expected_bytes(img) -> int:
    """Bytes a complete single-file NIfTI needs: header/extensions offset + the data array."""
    header = img.header
    offset = getattr(img.dataobj, "offset", None)
    offset = int(offset) if offset is not None else int(header.get_data_offset())
    return offset + int(np.prod(img.shape)) * header.get_data_dtype().itemsize


def _gzip_complete(path: Path, expected: int) -> str | None:
    """``None`` if the gzip stream decompresses to ``expected`` bytes, else the reason.

    The last four bytes of a gzip file hold the uncompressed size (mod 2**32): when they match
    the file is almost surely whole; otherwise the stream is decompressed (without building an
    array) to find out for certain (multi-member gzip files legitimately differ).
    """
    size = path.stat().st_size
    if size >= 18:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            if struct.unpack("<I", fh.read(4))[0] == expected % 2**32:
                return None
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                total += len(chunk)
    except (EOFError, OSError, gzip.BadGzipFile) as err:
        return f"truncated or corrupt gzip stream ({type(err).__name__}: {err})"
    if total < expected:
        return f"data truncated: {total} of {expected} bytes"
    return None


def read_header(path: str | os.PathLike) -> dict:
    """Header facts of one NIfTI file (no voxel data loaded), checking the file is complete.

    Returns ``shape``, ``voxel_size_mm`` (tuple), ``orientation`` (axis codes such as
    ``"LAS"``), ``dtype`` and ``format`` (``"nii"`` or ``"nii.gz"``). Raises
    :class:`NiftiReadError` for a file nibabel cannot parse, that is not 3D, or whose data is
    shorter than the header promises (a truncated download).
    """
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
        if len(img.shape) not in (3, 4) or (len(img.shape) == 4 and img.shape[3] != 1):
            raise NiftiReadError(f"{path}: expected a 3D volume, got shape {img.shape}")
        expected = _expected_bytes(img)
        if path.name.lower().endswith(".gz"):
            problem = _gzip_complete(path, expected)
        else:
            size = path.stat().st_size
            problem = None if size >= expected else f"data truncated: file has {size} of {expected} bytes"
        if problem:
            raise NiftiReadError(f"{path}: {problem}")
        return {"shape": tuple(int(s) for s in img.shape[:3]),
                "voxel_size_mm": tuple(round(float(z), 4) for z in img.header.get_zooms()[:3]),
                "orientation": "".join(nib.aff2axcodes(img.affine)),
                "dtype": str(img.get_data_dtype()),
                "format": "nii.gz" if path.name.lower().endswith(".gz") else "nii"}
    except NiftiReadError:
        raise
    except Exception as err:  # noqa: BLE001 - every failure becomes one clear error type
        raise NiftiReadError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {err})") from err


def load_canonical(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3D NIfTI volume reoriented to RAS+ (``nibabel.as_closest_canonical``).

    Returns ``(array, affine)``: ``array`` is float32 of shape ``(i, j, k)`` with scaling
    (``scl_slope``/``scl_inter``) applied, its axes running towards Right, Anterior and
    Superior; ``affine`` (float64, 4×4) maps voxel indices to world mm. The voxel at
    ``(i, j, k)`` holds the same tissue as the voxel of the original file at the same world
    coordinate. Raises :class:`NiftiReadError` naming the file when it cannot be read.
    """
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
        if len(img.shape) == 4 and img.shape[3] == 1:
            img = img.slicer[..., 0]
        if len(img.shape) != 3:
            raise NiftiReadError(f"{path}: expected a 3D volume, got shape {img.shape}")
        img = nib.as_closest_canonical(img)
        array = np.asarray(img.get_fdata(dtype=np.float32))
        if not np.isfinite(array).all():
            array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
        return array, np.asarray(img.affine, dtype=np.float64)
    except NiftiReadError:
        raise
    except Exception as err:  # noqa: BLE001
        raise NiftiReadError(f"{path}: cannot read the volume ({type(err).__name__}: {err})") from err


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel edge lengths in mm: the lengths of the affine's first three columns."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points ``(..., 3)`` through a 4×4 affine (voxel → world, or world → voxel with its inverse)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def _antialias(array: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Gaussian pre-smoothing before taking ``step`` (in source voxels, per axis) sized samples."""
    from scipy import ndimage

    sigma = np.where(step > 1.0, np.sqrt(np.maximum(step**2 - 1.0, 0.0)) / 2.0, 0.0)
    return ndimage.gaussian_filter(array, sigma) if np.any(sigma > 0) else array


def resample_to_grid(array: np.ndarray, affine: np.ndarray, grid_affine: np.ndarray, grid_shape,
                     order: int = 1, antialias: bool = True, cval: float = 0.0) -> np.ndarray:
    """Sample ``array`` (with ``affine``) at the voxel centres of another grid (world mm).

    ``grid_affine`` and ``grid_shape`` describe the target grid; any rotation or flip between
    the two is handled (each target voxel centre is mapped through ``inv(affine)`` into the
    source array). Points outside the source get ``cval``. With ``antialias`` the source is
    smoothed first when the target voxels are larger (no aliasing when downsampling).
    Returns float32 of shape ``grid_shape``.
    """
    from scipy import ndimage

    matrix = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.asarray(grid_affine, dtype=np.float64)
    source = np.asarray(array, dtype=np.float32)
    if antialias:
        step = np.sqrt((matrix[:3, :3] ** 2).sum(axis=1))  # target spacing in source voxels, per source axis
        source = _antialias(source, step)
    lin = matrix[:3, :3]
    diagonal = np.allclose(lin, np.diag(np.diag(lin)))
    out = ndimage.affine_transform(source, np.diag(lin) if diagonal else lin, offset=matrix[:3, 3],
                                   output_shape=tuple(int(s) for s in grid_shape), order=order,
                                   mode="constant", cval=cval, prefilter=order > 1)
    return out.astype(np.float32, copy=False)


def resample(array: np.ndarray, affine: np.ndarray, voxel_size_mm, order: int = 1,
             antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Resample to a new voxel size (mm, scalar or 3 values), keeping the field of view.

    The voxel axes keep their directions; the grid covers the same extent (its outer voxel
    edges stay where they were, the number of voxels is rounded). Returns
    ``(array float32, affine)`` where the new affine maps the new indices to the same world
    mm, so every tissue keeps its world position (checked in the unit tests).
    """
    affine = np.asarray(affine, dtype=np.float64)
    old = voxel_sizes(affine)
    new = np.broadcast_to(np.asarray(voxel_size_mm, dtype=np.float64), (3,))
    shape = np.maximum(np.round(np.asarray(array.shape[:3]) * old / new).astype(int), 1)
    scale = np.asarray(array.shape[:3]) * 1.0 / shape        # new voxel in old voxels (exact extent)
    to_old = np.eye(4)
    to_old[:3, :3] = np.diag(scale)
    to_old[:3, 3] = 0.5 * scale - 0.5                         # new voxel centres inside the same edges
    new_affine = affine @ to_old
    out = resample_to_grid(array, affine, new_affine, shape, order=order, antialias=antialias)
    return out, new_affine


def foreground_mask(array: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Voxels brighter than ``fraction`` of the robust maximum (99.5th percentile) after light smoothing.

    A simple head/brain mask for T1 images (background is dark); used for bounding boxes and
    intensity normalisation, not for segmentation.
    """
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(np.asarray(array, dtype=np.float32), 1.0)
    positive = smooth[smooth > 0]
    if positive.size == 0:
        return np.zeros(array.shape, dtype=bool)
    return smooth > fraction * np.percentile(positive, 99.5)


def bounding_box(mask: np.ndarray, min_fraction: float = 0.002) -> tuple[np.ndarray, np.ndarray] | None:
    """First and last index per axis of the mask (inclusive), ignoring stray voxels.

    A slice counts when it holds at least ``min_fraction`` of the mask's largest slice
    count, so isolated noise voxels far from the head do not stretch the box. ``None`` for
    an empty mask.
    """
    if not mask.any():
        return None
    lo, hi = [], []
    for axis in range(3):
        counts = mask.sum(axis=tuple(a for a in range(3) if a != axis))
        keep = np.flatnonzero(counts >= max(1, min_fraction * counts.max()))
        lo.append(keep[0])
        hi.append(keep[-1])
    return np.array(lo), np.array(hi)


def orthogonal_slices(volume: np.ndarray, axes=None, cmap: str = "gray", title: str | None = None,
                      index=None, symmetric: bool = False, labels: bool = True, ax=None):
    """Plot the three orthogonal middle slices of a RAS-ordered volume; returns the figure.

    ``volume`` is ``(i, j, k)`` in RAS order (as :func:`load_canonical` returns it): the
    sagittal view is ``volume[i]``, coronal ``volume[:, j]``, axial ``volume[:, :, k]``, each
    drawn with superior (axial: anterior) up and the patient's left on the viewer's left
    (the neurological convention nilearn uses, not the radiological one).
    ``index`` picks the slices (default: the centre); ``symmetric`` centres the colour scale
    on zero (for difference maps and eigenbrains). ``axes``: three matplotlib axes.
    """
    axes = ax if ax is not None else axes   # ax=: the package's one name
    import matplotlib.pyplot as plt

    volume = np.asarray(volume)
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    else:
        fig = axes[0].figure
    i, j, k = (np.asarray(volume.shape) // 2) if index is None else index
    views = [("sagittal", volume[i, :, :].T), ("coronal", volume[:, j, :].T), ("axial", volume[:, :, k].T)]
    if symmetric:
        vmax = float(np.abs(volume).max()) or 1.0
        kwargs = {"vmin": -vmax, "vmax": vmax, "cmap": "RdBu_r" if cmap == "gray" else cmap}
    else:
        kwargs = {"vmin": float(volume.min()), "vmax": float(volume.max()), "cmap": cmap}
    for ax, (name, image) in zip(axes, views):
        ax.imshow(image, origin="lower", **kwargs)
        ax.set_xticks([])
        ax.set_yticks([])
        if labels:
            ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
