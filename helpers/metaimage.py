"""Read MetaImage volumes (``.mhd`` header + ``.raw`` data, the LUNA16 format) with SimpleITK.

Axis orders — the classic source of off-by-a-transpose bugs — are fixed here once:

* ``array``     : NumPy ``(z, y, x)`` (slice, row, column), as ``sitk.GetArrayFromImage`` gives it.
* ``spacing``   : ``(z, y, x)`` in mm, i.e. in the **array's** order (``ElementSpacing`` reversed).
* ``origin``    : ``(x, y, z)`` in world mm (``Offset`` in the header), the centre of voxel 0.
* ``direction`` : 3×3, SimpleITK's convention: column ``k`` is the world direction of the
  k-th *index* axis in (x, y, z) order (``TransformMatrix``; identity in LUNA16).

The world position of the voxel with array index ``(k, j, i)`` (z, y, x) is::

    world_xyz = origin + direction @ (spacing_xyz * [i, j, k])

and :func:`world_to_voxel` / :func:`voxel_to_world` apply it and its inverse. World
coordinates are always ``(x, y, z)`` mm (as annotations.csv gives them); voxel coordinates
are always ``(z, y, x)`` (so they index the array directly).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Bytes per element of the MetaImage element types.
ELEMENT_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
                 "MET_UINT": 4, "MET_LONG": 8, "MET_ULONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


def read_header(path: str | os.PathLike) -> dict:
    """The ``key = value`` fields of an ``.mhd`` header as strings (no data read)."""
    fields = {}
    with open(path, "rb") as fh:
        for raw in fh.read(64 * 1024).decode("latin-1").splitlines():
            if "=" in raw:
                key, value = raw.split("=", 1)
                fields[key.strip()] = value.strip()
                if key.strip() == "ElementDataFile":  # the last header field by the standard
                    break
    return fields


def check_data_file(path: str | os.PathLike, header: dict | None = None) -> None:
    """Raise ``ValueError`` when the ``.raw`` beside an ``.mhd`` is missing or too short.

    SimpleITK only notices a truncated file when reading the voxels; this check costs one
    ``stat``. Compressed data and data stored inside the header (``LOCAL``) are not checked.
    """
    path = Path(path)
    header = read_header(path) if header is None else header
    data = header.get("ElementDataFile", "")
    if not data or data.upper() == "LOCAL" or header.get("CompressedData", "False").lower() == "true":
        return
    if data.upper() == "LIST" or "%" in data:
        return
    try:
        dims = [int(v) for v in header["DimSize"].split()]
        n_bytes = int(np.prod(dims)) * ELEMENT_BYTES[header["ElementType"]]
        n_bytes *= int(header.get("ElementNumberOfChannels", 1))
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path.name}: bad header ({type(err).__name__}: {err})") from err
    data_path = path.parent / data
    if not data_path.is_file():
        raise ValueError(f"{path.name}: data file {data} is missing")
    size = data_path.stat().st_size
    if size < n_bytes:
        raise ValueError(f"{path.name}: data file {data} is truncated ({size} of {n_bytes} bytes)")


def read_info(path: str | os.PathLike) -> dict:
    """Geometry of an ``.mhd`` without reading its voxels (raises on a bad header or data file).

    Returns ``shape`` (z, y, x), ``spacing`` (z, y, x) mm, ``origin`` (x, y, z) mm,
    ``direction`` (3×3) and ``element_type``.
    """
    import SimpleITK as sitk

    path = Path(path)
    header = read_header(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise ValueError(f"{path.name}: cannot read header ({str(err).strip().splitlines()[-1]})") from err
    if reader.GetDimension() != 3:
        raise ValueError(f"{path.name}: expected a 3-D volume, got {reader.GetDimension()}-D")
    check_data_file(path, header)
    return {"shape": tuple(int(v) for v in reader.GetSize()[::-1]),
            "spacing": tuple(float(v) for v in reader.GetSpacing()[::-1]),
            "origin": tuple(float(v) for v in reader.GetOrigin()),
            "direction": np.array(reader.GetDirection(), float).reshape(3, 3),
            "element_type": header.get("ElementType", "")}


def read_mhd(path: str | os.PathLike):
    """Read a MetaImage volume.

    Returns
    -------
    array : ndarray (z, y, x)
        Voxel values as stored (int16 Hounsfield units for LUNA16's ``MET_SHORT``; other
        element types keep SimpleITK's dtype).
    spacing : ndarray (3,)
        Voxel size in mm in **(z, y, x)** order (the array's order).
    origin : ndarray (3,)
        World position of voxel (0, 0, 0) in mm, **(x, y, z)** order.
    direction : ndarray (3, 3)
        Direction cosines; column k = world (x, y, z) direction of index axis k (x, y, z).

    Raises ``ValueError`` naming the file for a bad header or a missing/truncated data file.
    """
    import SimpleITK as sitk

    path = Path(path)
    check_data_file(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path.name}: cannot read ({str(err).strip().splitlines()[-1]})") from err
    if image.GetDimension() != 3:
        raise ValueError(f"{path.name}: expected a 3-D volume, got {image.GetDimension()}-D")
    array = sitk.GetArrayFromImage(image)
    spacing = np.array(image.GetSpacing()[::-1], float)
    origin = np.array(image.GetOrigin(), float)
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    return array, spacing, origin, direction


def _direction(direction) -> np.ndarray:
    return np.eye(3) if direction is None else np.asarray(direction, float).reshape(3, 3)


def world_to_voxel(xyz_mm, origin, spacing, direction=None) -> np.ndarray:
    """World ``(x, y, z)`` mm → continuous voxel coordinates ``(z, y, x)``.

    ``xyz_mm`` is ``(3,)`` or ``(n, 3)``; ``origin`` is (x, y, z) mm, ``spacing`` (z, y, x) mm,
    ``direction`` 3×3 (None = identity). Round the result to get array indices.
    """
    xyz = np.asarray(xyz_mm, float)
    d = _direction(direction)
    spacing_xyz = np.asarray(spacing, float)[::-1]
    rel = xyz - np.asarray(origin, float)
    index_xyz = np.linalg.solve(d, rel.T).T / spacing_xyz
    return index_xyz[..., ::-1]


def voxel_to_world(zyx, origin, spacing, direction=None) -> np.ndarray:
    """Voxel coordinates ``(z, y, x)`` (``(3,)`` or ``(n, 3)``) → world ``(x, y, z)`` mm."""
    zyx = np.asarray(zyx, float)
    d = _direction(direction)
    spacing_xyz = np.asarray(spacing, float)[::-1]
    index_xyz = zyx[..., ::-1] * spacing_xyz
    return (d @ index_xyz.T).T + np.asarray(origin, float)


def write_mhd(path: str | os.PathLike, array: np.ndarray, spacing, origin, direction=None) -> Path:
    """Write a (z, y, x) int16 array as ``.mhd`` + ``.raw`` (LUNA16-style header; for tests/synthetic data).

    ``spacing`` is (z, y, x) mm, ``origin`` (x, y, z) mm, ``direction`` 3×3 (None = identity).
    """
    path = Path(path)
    array = np.ascontiguousarray(array, dtype="<i2")
    d = _direction(direction)
    nz, ny, nx = array.shape
    sz, sy, sx = (float(v) for v in spacing)
    raw = path.with_suffix(".raw")
    header = "\n".join([
        "ObjectType = Image", "NDims = 3", "BinaryData = True", "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        "TransformMatrix = " + " ".join(f"{v:.17g}" for v in d.T.ravel()),  # MetaIO: row k = index axis k
        "Offset = " + " ".join(f"{float(v):.6g}" for v in origin),
        "CenterOfRotation = 0 0 0", "AnatomicalOrientation = RAI",
        f"ElementSpacing = {sx:.6g} {sy:.6g} {sz:.6g}", f"DimSize = {nx} {ny} {nz}",
        "ElementType = MET_SHORT", f"ElementDataFile = {raw.name}", ""])
    path.write_text(header)
    array.tofile(raw)
    return path
