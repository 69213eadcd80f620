"""Read DICOM files: a header index of a whole folder, and pixels in Hounsfield units.

Two jobs, each one call a notebook can show:

* :func:`index_dicoms` — one row per file with the header tags as columns (a pandas table,
  the usual starting point for exploring a DICOM collection). Headers only (the bytes up
  to the pixel data), scanned directly for the common file layouts and through pydicom
  for the rest; large indexes are spread over a joblib process pool; the table is cached
  beside the data (:mod:`helpers.cache`). A file that cannot be read becomes a row with
  its ``error``; nothing raises for a bad file.
* :func:`read_hu` — the pixels of one slice in Hounsfield units (float32), with the rescale
  slope/intercept applied and the RSNA representation defect repaired under exactly the
  condition of ``../shared/DATASETS.md`` §1 (:func:`is_defective`,
  :func:`repair_representation`). Pixel data that cannot be decoded raises a
  :class:`ValueError` that names the file, the reason and the codec package that would help.

Columns of the index
--------------------
``path`` (str, as found or given), ``error`` (None when the file read, else
``"ExceptionType: message"``), then one column per standard tag, named by its keyword
(``PatientID``, ``RescaleIntercept``...). Values are int, float or str; empty tags are None.

* Tags whose DICOM dictionary allows several values (VM ``2``, ``3``, ``1-n``...) are
  **always** split into numbered columns ``<Keyword>0``, ``<Keyword>1``... — also when a
  file holds a single value, which then goes in column 0. So ``WindowCenter`` is
  ``WindowCenter0`` (and ``WindowCenter1`` when some file holds two) whether a file stores
  one value or several, and ``ImagePositionPatient`` is ``ImagePositionPatient0..2``
  (x, y, z in mm). fastai's ``from_dicoms`` splits the same tags but names them ``K, K1,
  K2`` and only when a file is multi-valued; numbered-from-0 columns keep one schema for
  every file. A single-valued tag (VM 1) that a non-conforming file stores with several
  values is split the same way, and its single values then go in column 0.
* Sequences (SQ), binary elements (OB, OW, OF, OD, OL, OV, UN), private tags (no keyword)
  and the pixel data are left out. File meta tags (``TransferSyntaxUID``...) are included.
* A column whose values mix types across files (e.g. ints and strings) is stored as str,
  so the table always writes to Parquet.

With ``images_only=True`` (the default) a file that reads but holds no image is a row with
an error: no ``Rows``/``Columns``, no Pixel Data element, or fewer pixel bytes in the file
than the header promises (a truncated download) — checked from the file size, without
reading the pixels.
"""
from __future__ import annotations

import math
import os
import struct
import warnings
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import cache as _cache

if TYPE_CHECKING:   # pandas is imported lazily: the worker processes only parse headers
    import pandas as pd

INDEX_VERSION = 1
"""Bumped whenever the index's columns or values change, so old caches are not reused."""

AUTO_PROGRESS = 2000
"""``progress=None`` shows a progress bar above this many files."""

PARALLEL_MIN_FILES = 20000
"""Fewer files are read in this process. The common-case header scan takes ~0.2-0.3 ms a
file, so 20,000 files take a few seconds, about what starting a process pool costs (each
worker imports numpy and pydicom) on a small or busy machine; measured with
``bench/bench_index_dicoms.py``. Larger indexes (RSNA: ~750,000 files) go to the pool."""

ERROR_CHARS = 300
"""Error reasons are cut to this many characters (one line)."""

SKIPPED_VRS = frozenset({"SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"})
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})

# ---------------------------------------------------------------------------------------
# Header values: raw bytes -> int / float / str, without building pydicom DataElements when
# the conversion is unambiguous (the common case); everything else goes through pydicom.
# ---------------------------------------------------------------------------------------
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})          # ASCII by the standard
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "PN", "UC"})       # may use SpecificCharacterSet
_SINGLE_TEXT_VRS = frozenset({"ST", "LT", "UT", "UR"})                      # never split on backslash
_BINARY_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}


@cache
def _dictionary_entry(tag: int) -> tuple[str, str, bool]:
    """(keyword, dictionary VR, multi-valued by the dictionary) of a tag; keyword '' if unknown."""
    from pydicom import datadict

    try:
        keyword = datadict.keyword_for_tag(tag)
        vr = datadict.dictionary_VR(tag) if keyword else ""
        vm = datadict.dictionary_VM(tag) if keyword else "1"
    except KeyError:
        return "", "", False
    return keyword or "", vr, vm != "1"


def _number(text: str, vr: str):
    if vr == "IS":
        try:
            return int(text)
        except ValueError:
            return int(float(text))
    return float(text)


def _fast_value(vr: str, value: bytes | None, little: bool = True):
    """Convert an element's raw bytes, or return NotImplemented when pydicom must do it."""
    if value is None or len(value) == 0:
        return None
    if vr in _BINARY_FORMATS:
        code = _BINARY_FORMATS[vr]
        size = struct.calcsize(code)
        if len(value) % size:
            return NotImplemented
        out = struct.unpack(("<" if little else ">") + code * (len(value) // size), value)
        return out[0] if len(out) == 1 else list(out)
    if vr in ("DS", "IS", "UR") or vr in _TEXT_VRS or vr in _CHARSET_VRS:
        if (vr in _CHARSET_VRS and not value.isascii()) or b"\x1b" in value:
            return NotImplemented   # non-ASCII text: let pydicom apply the character set
        text = value.decode("ascii")
        parts = [text] if vr in _SINGLE_TEXT_VRS else text.split("\\")
        parts = [p.strip(" \x00") if vr != "UT" else p.rstrip(" \x00") for p in parts]
        if vr in ("DS", "IS"):
            try:
                parts = [_number(p, vr) if p else None for p in parts]
            except ValueError:
                return NotImplemented
        else:
            parts = [p if p else None for p in parts]
        if len(parts) == 1:
            return parts[0]
        return parts
    return NotImplemented


def _plain(value):
    """A pydicom value as int / float / str / list of those; ``NotImplemented`` to skip it."""
    from pydicom.dataset import Dataset
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence as DicomSequence

    if value is None or value == "":
        return None
    if isinstance(value, (DicomSequence, Dataset, bytes, bytearray, memoryview)):
        return NotImplemented
    if isinstance(value, (MultiValue, list, tuple)):
        items = [_plain(v) for v in value]
        if any(v is NotImplemented for v in items):
            return NotImplemented
        return items[0] if len(items) == 1 else items
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return value.isoformat()
    return str(value)


def _element_value(ds, tag, elem):
    if getattr(elem, "is_raw", False):
        if elem.VR is not None and elem.VR in SKIPPED_VRS and elem.VR != "UN":
            return NotImplemented   # UN of a known tag: pydicom re-reads it with the dictionary VR
        if elem.VR is not None:
            value = _fast_value(elem.VR, elem.value, elem.is_little_endian)
            if value is not NotImplemented:
                return value
        elem = ds[tag]          # pydicom converts (charsets, implicit VR, ambiguous VRs)
    if elem.VR in SKIPPED_VRS:
        return NotImplemented
    return _plain(elem.value)


def _put(row: dict, keyword: str, value, multi: bool) -> None:
    """Store one tag: a multi-valued tag (by the DICOM dictionary) always goes in numbered
    columns ``K0, K1, …`` (a single value in ``K0``), so files with one and with several
    values (e.g. WindowCenter) share columns."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            row[f"{keyword}{i}"] = v
    elif multi:
        row[f"{keyword}0"] = value
    else:
        row[keyword] = value


def header_dict(ds) -> dict:
    """The header of a pydicom ``Dataset`` as ``{column: value}``, as one row of :func:`index_dicoms`.

    Values are int, float, str or None; multi-valued tags are split into numbered keys
    (``ImagePositionPatient0..2``); sequences, binary elements, private tags and the pixel
    data are left out.
    """
    row: dict = {}
    meta = getattr(ds, "file_meta", None)
    for source in ((meta,) if meta is not None else ()) + (ds,):
        for tag, elem in source._dict.items():
            if tag in PIXEL_TAGS:
                continue
            keyword, _, multi = _dictionary_entry(int(tag))
            if not keyword:
                continue
            try:
                value = _element_value(source, tag, elem)
            except Exception:   # noqa: BLE001 - one undecodable tag does not lose the file
                continue
            if value is NotImplemented:
                continue
            _put(row, keyword, value, multi)
    return row


# ---------------------------------------------------------------------------------------
# Reading one file's header
# ---------------------------------------------------------------------------------------
class NotDicomError(ValueError):
    """The file is not DICOM (no preamble and no recognisable data elements)."""


class EmptyFileError(ValueError):
    """The file has zero bytes."""


class MissingPixelDataError(ValueError):
    """The file reads but holds no image (missing Rows/Columns or Pixel Data)."""


class TruncatedFileError(ValueError):
    """The file holds fewer pixel bytes than its header promises."""


def _reason(err: BaseException) -> str:
    from .io import error_reason

    return error_reason(err, ERROR_CHARS)


def _dcmread(fp, name: str, stop_before_pixels: bool):
    """``pydicom.dcmread`` that also accepts preamble-less files, but not arbitrary bytes."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        fp.seek(0)
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, force=True)
        except Exception as err:   # noqa: BLE001
            raise NotDicomError(f"not a DICOM file (no 'DICM' preamble; {type(err).__name__}: {err})") from None
        known = [t for t in list(ds._dict)[:8] if _dictionary_entry(int(t))[0]]
        if len(ds._dict) == 0 or len(known) < min(2, len(ds._dict)):
            raise NotDicomError("not a DICOM file (no 'DICM' preamble and no recognisable data elements)") from None
        return ds


def _check_pixels(ds, row: dict, fp, size: int) -> None:
    """After a pydicom header read (``fp`` at the Pixel Data tag): :func:`_check_image`."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if syntax == "1.2.840.10008.1.2.1.99":
        return   # deflated: the file is compressed as a whole, positions are not file offsets
    little = ds.is_little_endian if ds.is_little_endian is not None else True
    implicit = bool(ds.is_implicit_VR)
    pos = fp.tell()
    head = fp.read(12)
    pixel = None
    if len(head) >= 8:
        group, elem = struct.unpack("<HH" if little else ">HH", head[:4])
        if group << 16 | elem in PIXEL_TAGS:
            if not (head[4:6].isalpha() and head[4:6].isupper()):   # no VR: implicit element header
                implicit = True
            if implicit:
                pixel = (pos, 8, struct.unpack("<I" if little else ">I", head[4:8])[0])
            elif head[4:6] in _LONG_VRS:
                if len(head) < 12:
                    raise TruncatedFileError("truncated in the Pixel Data element header")
                pixel = (pos, 12, struct.unpack("<I" if little else ">I", head[8:12])[0])
            else:
                pixel = (pos, 8, struct.unpack("<H" if little else ">H", head[6:8])[0])
    _check_image(row, pixel, size, syntax or None, implicit)


# The common case — a Part 10 file (preamble, "DICM"), little endian, explicit or implicit
# VR, no undefined-length sequence before the pixels, ASCII text — is scanned directly from
# the bytes, several times faster than building pydicom Datasets. Anything else (big endian,
# deflate, sequences of undefined length, other character sets, odd bytes) returns None and
# the file goes through pydicom. Values are converted by the same function either way, and a
# unit test checks that both routes give the same row.
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"})
_FAST_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.", "1.2.840.10008.1.2.5")
_UNPACK_TAG = struct.Struct("<HH").unpack_from
_UNPACK_U16 = struct.Struct("<H").unpack_from
_UNPACK_U32 = struct.Struct("<I").unpack_from


class _Fallback(Exception):
    """The fast scanner met something it leaves to pydicom."""


class _CutShort(_Fallback):
    """An element runs past the end of the bytes read (a truncated file, if all were read)."""


def _scan_elements(data: bytes, pos: int, implicit: bool, group_only: int | None, row: dict, pixel_rep):
    """Parse elements from ``data[pos:]`` into ``row``; return (position, pixel element tuple or None)."""
    end = len(data)
    while pos < end:
        if pos + 8 > end:
            raise _CutShort(f"the file ends {end - pos} bytes into an element header")
        group, element = _UNPACK_TAG(data, pos)
        if group_only is not None and group != group_only:
            return pos, None
        tag = group << 16 | element
        if implicit:
            length = _UNPACK_U32(data, pos + 4)[0]
            header, vr = 8, None
        else:
            vrb = data[pos + 4:pos + 6]
            if vrb in _LONG_VRS:
                if pos + 12 > end:
                    raise _CutShort(f"the file ends inside the header of element ({group:04X},{element:04X})")
                length, header = _UNPACK_U32(data, pos + 8)[0], 12
            elif vrb.isalpha() and vrb.isupper():
                length, header = _UNPACK_U16(data, pos + 6)[0], 8
            else:
                raise _Fallback("no VR where one was expected")
            vr = vrb.decode("ascii")
        if tag in PIXEL_TAGS:
            return pos, (pos, header, length)
        if length == 0xFFFFFFFF:
            raise _Fallback("undefined length")
        start = pos + header
        pos = start + length
        if pos > end:
            raise _CutShort(f"element ({group:04X},{element:04X}) needs {length} bytes, the file ends after {end - start}")
        keyword, dict_vr, multi = _dictionary_entry(tag)
        if not keyword or group == 0xFFFE:
            continue
        if vr is None or vr == "UN":
            vr = dict_vr
            if vr == "US or SS":
                if pixel_rep[0] is None:
                    raise _Fallback("ambiguous VR")
                vr = "SS" if pixel_rep[0] else "US"
        if vr in SKIPPED_VRS or " or " in vr:
            continue
        value = _fast_value(vr, data[start:pos])
        if value is NotImplemented:
            raise _Fallback(f"{keyword}: value left to pydicom")
        if tag == 0x00280103 and isinstance(value, int):
            pixel_rep[0] = value
        _put(row, keyword, value, multi)
    return pos, None


_READ_BLOCK = 16384


def _scan_file(fp, size: int):
    """(row, arguments of :func:`_check_image`) of a common-case file from its bytes, or None."""
    data = fp.read(_READ_BLOCK)
    if len(data) < 144 or data[128:132] != b"DICM":
        return None
    row: dict = {}
    pixel_rep = [None]
    while True:
        try:
            row.clear()
            pixel_rep[0] = None
            pos, _ = _scan_elements(data, 132, False, 0x0002, row, pixel_rep)
            syntax = row.get("TransferSyntaxUID")
            if not isinstance(syntax, str) or not (syntax in _FAST_SYNTAXES[:2]
                                                   or syntax.startswith(_FAST_SYNTAXES[2:])):
                return None
            implicit = syntax == "1.2.840.10008.1.2"
            pos, pixel = _scan_elements(data, pos, implicit, None, row, pixel_rep)
            if pixel is not None or len(data) >= size:
                break
            raise _Fallback("the header goes on past the block read")
        except (_Fallback, struct.error, UnicodeDecodeError) as err:
            if isinstance(err, _CutShort) and len(data) >= size:
                cut = TruncatedFileError(f"truncated in the header: {err}")
                cut.row = dict(row)   # the tags read before the cut still go in the index
                raise cut from None
            if len(data) >= size or len(data) >= 1 << 20:
                return None
            more = fp.read(len(data))
            if not more:
                return None
            data += more
    return row, (row, pixel, size, syntax, implicit)


def _check_image(row: dict, pixel, size: int, syntax: str | None, implicit: bool) -> None:
    """Raise when the header promises no image, or more pixel bytes than the file holds."""
    missing = [k for k in ("Rows", "Columns") if row.get(k) is None]
    if missing:
        raise MissingPixelDataError(f"no image: missing required tag(s) {', '.join(missing)}")
    if pixel is None:
        raise MissingPixelDataError("no image: no Pixel Data element")
    pos, header, length = pixel
    available = size - pos - header
    if length == 0xFFFFFFFF:   # encapsulated (compressed): fragments follow, length undefined
        if available <= 0:
            raise TruncatedFileError("truncated: no encapsulated pixel data after the header")
        return
    if available < length:
        raise TruncatedFileError(f"truncated: Pixel Data holds {max(available, 0)} of {length} bytes")
    try:
        bits = int(row.get("BitsAllocated") or 0)
        need = math.ceil(int(row["Rows"]) * int(row["Columns"]) * int(row.get("SamplesPerPixel") or 1)
                         * int(row.get("NumberOfFrames") or 1) * bits / 8)
    except (TypeError, ValueError):
        return
    if str(row.get("PhotometricInterpretation") or "").strip() in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        need = math.ceil(need * 2 / 3)   # chroma subsampled: 2 samples per pixel on average
    native = syntax is None or syntax in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
    if bits and native and length < need:
        raise TruncatedFileError(f"Pixel Data has {length} bytes; Rows x Columns x frames x bits needs {need}")


def read_header(path: str | os.PathLike, images_only: bool = True) -> dict:
    """One index row for ``path``: ``{"path", "error", <tags>...}``; never raises."""
    row: dict = {"path": str(path), "error": None}
    try:
        size = os.path.getsize(path)
        if size == 0:
            raise EmptyFileError("empty file (0 bytes)")
        with open(path, "rb") as fp:
            scanned = _scan_file(fp, size) if _FAST else None
            if scanned is None:
                fp.seek(0)
                ds = _dcmread(fp, str(path), stop_before_pixels=True)
                tags = header_dict(ds)
                row.update(tags)
                if images_only:
                    _check_pixels(ds, tags, fp, size)
            else:
                row.update(scanned[0])
                if images_only:
                    _check_image(*scanned[1])
    except Exception as err:   # noqa: BLE001 - a bad file is a row with a reason, never a crash
        row.update(getattr(err, "row", {}))
        row["error"] = _reason(err)
    row["path"] = str(path)
    return row


_FAST = True
"""Use the direct byte scanner for common-case files (False: always pydicom; for tests)."""


def _read_batch(paths: Sequence[str], images_only: bool) -> list[dict]:
    with warnings.catch_warnings():   # e.g. RSNA's "ID_<hex>" UIDs: one warning per file otherwise
        warnings.simplefilter("ignore")
        return [read_header(p, images_only) for p in paths]


# ---------------------------------------------------------------------------------------
# The index
# ---------------------------------------------------------------------------------------
def _dicom_paths(folder: str, recursive: bool) -> list[str]:
    out: list[str] = []
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.name.lower().endswith(".dcm") and entry.is_file():
                    out.append(entry.path)
                elif recursive and entry.is_dir() and entry.name != _cache.CACHE_FOLDER:
                    stack.append(entry.path)
    out.sort()
    return out


def dicom_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Every ``*.dcm`` file (any case) in ``folder``, sorted by path; cache folders are skipped."""
    return [Path(p) for p in _dicom_paths(os.fspath(folder), recursive)]


def _files_and_root(folder_or_paths, recursive: bool) -> tuple[list[str], Path | None]:
    if isinstance(folder_or_paths, (str, os.PathLike)):
        folder = Path(folder_or_paths).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"DICOM folder does not exist: {folder}")
        files = _dicom_paths(os.fspath(folder), recursive)
        if not files:
            raise FileNotFoundError(
                f"no *.dcm files in DICOM folder {folder}" + (" (searched recursively)" if recursive else ""))
        return files, folder
    files = [str(p) for p in folder_or_paths]
    if not files:
        return [], None
    try:
        root = Path(os.path.commonpath([os.path.abspath(os.path.dirname(f)) for f in files]))
    except ValueError:   # different drives
        root = None
    return files, root


def _coerce_types(table: pd.DataFrame) -> pd.DataFrame:
    """Make every column Parquet-safe: mixed-type object columns become str."""
    import pandas as pd

    for col in table.columns:
        if table[col].dtype != object:
            continue
        values = table[col].dropna()
        kinds = {type(v) for v in values}
        if not kinds or kinds <= {str}:
            continue
        if kinds <= {int, float} and col not in ("path", "error"):
            table[col] = pd.to_numeric(table[col])
            continue
        table[col] = table[col].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return table


def _assemble(rows: list[dict]) -> pd.DataFrame:
    import pandas as pd

    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame({"path": pd.Series(dtype=str), "error": pd.Series(dtype=object)})
    # a VM-1 tag that some non-conforming file split: its single values go to column 0
    for col in [c for c in table.columns if f"{c}0" in table.columns and c not in ("path", "error")]:
        table[f"{col}0"] = table[f"{col}0"].where(table[f"{col}0"].notna(), table[col])
        table = table.drop(columns=col)
    tags = sorted(c for c in table.columns if c not in ("path", "error"))
    table = table[["path", "error"] + tags]
    table = table.astype({"error": object})
    table["error"] = table["error"].where(table["error"].notna(), None)
    return _coerce_types(table)


def _workers(n_jobs: int) -> int:
    import joblib

    try:
        return max(1, int(joblib.effective_n_jobs(n_jobs)))
    except Exception:   # noqa: BLE001
        return 1


def _build_index(files: list[str], n_jobs: int, progress, images_only: bool) -> pd.DataFrame:
    import joblib

    show = (len(files) > AUTO_PROGRESS) if progress is None else bool(progress)
    workers = _workers(n_jobs)
    if workers == 1 or len(files) < PARALLEL_MIN_FILES:
        rows = _read_batch(_progress(files, show), images_only)
        return _assemble(rows)
    size = int(min(2000, max(64, math.ceil(len(files) / (workers * 4)))))
    batches = [files[i:i + size] for i in range(0, len(files), size)]
    parallel = joblib.Parallel(n_jobs=n_jobs, prefer="processes", return_as="generator")
    rows: list[dict] = []
    bar = _progress(None, show, total=len(files))
    try:
        for batch in parallel(joblib.delayed(_read_batch)(b, images_only) for b in batches):
            rows.extend(batch)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return _assemble(rows)


def _progress(items, show: bool, total: int | None = None):
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc="DICOM headers", unit="file")


def index_dicoms(folder_or_paths: str | os.PathLike | Iterable[str | os.PathLike], n_jobs: int = -1,
                 cache: bool = True, progress: bool | None = None, recursive: bool = True,
                 images_only: bool = True) -> pd.DataFrame:
    """A table of DICOM headers, one row per file (see the module docstring for the columns).

    Parameters
    ----------
    folder_or_paths : a folder (searched for ``*.dcm``, any case; recursively unless
        ``recursive=False``) or a list of file paths (taken as given, any extension).
    n_jobs : joblib workers (-1: all cores; 1: this process only). From
        ``PARALLEL_MIN_FILES`` files on, batches of files go to joblib's active backend (a
        ``loky`` process pool by default), so ``with joblib.parallel_backend("dask"):
        index_dicoms(...)`` spreads a large index over a Dask cluster. Smaller indexes are
        read in this process, which is faster than starting workers.
    cache : reuse / write the table as Parquet in :func:`helpers.cache.cache_dir` (beside the
        data when writable), keyed by every file's path, size and modification time; a second
        call on unchanged files is read from there.
    progress : show a tqdm bar (None: only above ``AUTO_PROGRESS`` files).
    images_only : record files that hold no image (no Rows/Columns/Pixel Data, or truncated
        pixel data) with an ``error``.

    Raises ``FileNotFoundError`` (naming the folder) for a missing folder or one without
    ``*.dcm`` files; never raises for a bad file — its row carries the reason in ``error``.
    Rows are in sorted path order (a list keeps its own order).
    """
    files, root = _files_and_root(folder_or_paths, recursive)
    if not files:
        return _assemble([])

    def build() -> pd.DataFrame:
        return _build_index(files, n_jobs, progress, images_only)

    if not cache or root is None:
        return build()
    key = _cache.fingerprint(files, stage="dicom-index", version=INDEX_VERSION, images_only=images_only,
                             order=files[:1] + files[-1:])
    path = _cache.cache_dir(root) / f"dicom-index-{key}.parquet"
    table = _cache.cached_table(path, build)
    if len(table) != len(files) or list(table["path"]) != files:   # a foreign table under our key
        table = build()
    table["error"] = table["error"].astype(object).where(table["error"].notna(), None)
    return table


def summary(table: pd.DataFrame) -> dict:
    """Counts a notebook reports: ``n_files``, ``n_read``, ``n_errors`` and errors by type."""
    errors = table["error"].dropna()
    return {"n_files": int(len(table)), "n_read": int(table["error"].isna().sum()),
            "n_errors": int(len(errors)),
            "errors_by_type": {str(k): int(v) for k, v in errors.str.split(":").str[0].value_counts().items()}}


# ---------------------------------------------------------------------------------------
# Pixels in Hounsfield units
# ---------------------------------------------------------------------------------------
DEFECT_INTERCEPT = -100.0
"""RSNA defect: PixelRepresentation 0 with a RescaleIntercept at or above this value."""

_LIBJPEG = "pylibjpeg + pylibjpeg-libjpeg"
_OPENJPEG = "pylibjpeg + pylibjpeg-openjpeg"
_GDCM = "GDCM (python-gdcm)"
_CODEC_HINTS = {
    # compressed transfer syntax -> {pydicom decoding plugin: what to install for it}; pydicom
    # tries every installed plugin in turn, the message lists the installed and the missing ones
    "1.2.840.10008.1.2.4.50": {"pillow": "Pillow", "pylibjpeg": _LIBJPEG, "gdcm": _GDCM},
    "1.2.840.10008.1.2.4.51": {"pylibjpeg": _LIBJPEG, "gdcm": _GDCM, "pillow": "Pillow (8-bit only)"},
    "1.2.840.10008.1.2.4.57": {"pylibjpeg": _LIBJPEG, "gdcm": _GDCM},
    "1.2.840.10008.1.2.4.70": {"pylibjpeg": _LIBJPEG, "gdcm": _GDCM},
    "1.2.840.10008.1.2.4.80": {"pyjpegls": "pyjpegls", "pylibjpeg": _LIBJPEG, "gdcm": _GDCM},
    "1.2.840.10008.1.2.4.81": {"pyjpegls": "pyjpegls", "pylibjpeg": _LIBJPEG, "gdcm": _GDCM},
    "1.2.840.10008.1.2.4.90": {"pylibjpeg": _OPENJPEG, "gdcm": _GDCM, "pillow": "Pillow with OpenJPEG"},
    "1.2.840.10008.1.2.4.91": {"pylibjpeg": _OPENJPEG, "gdcm": _GDCM, "pillow": "Pillow with OpenJPEG"},
    "1.2.840.10008.1.2.4.201": {"pylibjpeg": _OPENJPEG},
    "1.2.840.10008.1.2.4.202": {"pylibjpeg": _OPENJPEG},
    "1.2.840.10008.1.2.4.203": {"pylibjpeg": _OPENJPEG},
    "1.2.840.10008.1.2.5": {"pydicom": "pydicom's own decoder (numpy)", "pylibjpeg": "pylibjpeg + pylibjpeg-rle"},
}


def _value(ds, keyword: str):
    """First value of a tag from a Dataset, dict or index row; None when missing/empty/NaN."""
    value = ds.get(keyword) if hasattr(ds, "get") else getattr(ds, keyword, None)
    if value is None and keyword + "0" in getattr(ds, "keys", lambda: ())():
        value = ds.get(keyword + "0")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def is_defective(ds) -> bool:
    """The RSNA representation defect, exactly: PixelRepresentation 0 and RescaleIntercept >= -100.

    ``ds`` is a pydicom Dataset, a dict or a row of :func:`index_dicoms`. A file without
    either tag is not defective (the condition cannot hold). Only this condition: the signed
    12-bit files with intercept 0 (PixelRepresentation 1) are correct and must not be touched.
    """
    rep, intercept = _value(ds, "PixelRepresentation"), _value(ds, "RescaleIntercept")
    return rep is not None and intercept is not None and rep == 0 and intercept >= DEFECT_INTERCEPT


def repair_representation(stored: np.ndarray, ds=None) -> tuple[np.ndarray, float]:
    """Undo the RSNA defect: ``(stored + 1000, minus 4096 where >= 4096; intercept -1000)``.

    ``stored`` are the raw stored values (``ds.pixel_array``) of a slice for which
    :func:`is_defective` holds. Returns ``(pixels as int32, new intercept -1000.0)``; the
    input is not modified. ``ds`` is accepted for symmetry and not used.
    """
    pixels = np.asarray(stored).astype(np.int32) + 1000
    pixels[pixels >= 4096] -= 4096
    return pixels, -1000.0


def _installed_decoders(uid) -> tuple[str, ...] | None:
    """pydicom's installed decoding plugins for a transfer syntax; None when pydicom has no decoder for it."""
    from pydicom.pixels import get_decoder

    try:
        return tuple(get_decoder(uid).available_plugins)
    except NotImplementedError:
        return None


def _codec_hint(ds) -> str:
    """The part of an error message naming the transfer syntax (name and UID) and its decoders:
    the installed ones (pydicom tries each in turn) and the others that could be installed, or,
    when none is installed, the packages that would help."""
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        return " (no TransferSyntaxUID in the file meta)"
    uid = UID(str(uid))
    name = uid.name if uid.name != str(uid) else "unknown to pydicom"
    text = f" (transfer syntax {name}, {uid}"
    installed = _installed_decoders(uid)
    packages = _CODEC_HINTS.get(str(uid), {})
    missing = [package for plugin, package in packages.items() if plugin not in (installed or ())]
    if installed is None:
        text += "; pydicom has no decoder for this transfer syntax"
    elif installed and packages:
        text += f"; decoders installed: {', '.join(installed)}"
        text += f" (not installed: {', '.join(missing)})" if missing else ""
    elif packages:
        text += f"; no decoder installed — install {', or '.join(missing)}"
    return text + ")"


def _dataset(path_or_dataset):
    """(pydicom Dataset, name for messages) from a path or a Dataset; ValueError if unreadable."""
    if not isinstance(path_or_dataset, (str, os.PathLike)):
        return path_or_dataset, str(getattr(path_or_dataset, "filename", None) or "<in-memory dataset>")
    name = str(path_or_dataset)
    try:
        if os.path.getsize(name) == 0:
            raise EmptyFileError("empty file (0 bytes)")
        with open(name, "rb") as fp:
            return _dcmread(fp, name, stop_before_pixels=False), name
    except Exception as err:   # noqa: BLE001
        raise ValueError(f"cannot read DICOM file {name}: {_reason(err)}") from err


def read_hu(path_or_dataset, repair: bool = True) -> np.ndarray:
    """Pixels of one DICOM slice in Hounsfield units, float32 of shape (rows, cols).

    HU = stored × RescaleSlope + RescaleIntercept (a missing or zero slope → 1, a missing
    intercept → 0),
    after the RSNA representation defect is repaired when ``repair`` and :func:`is_defective`
    hold. Multi-frame files give (frames, rows, cols). Raises ``ValueError`` naming the file
    and the reason when the file cannot be read or its pixel data cannot be decoded
    (compressed without an installed codec — the message says which package would help —,
    no Pixel Data, truncated).
    """
    with warnings.catch_warnings():   # pydicom's value checks (e.g. RSNA's "ID_<hex>" UIDs)
        warnings.filterwarnings("ignore", message="Invalid value for VR")
        ds, name = _dataset(path_or_dataset)
        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            raise ValueError(f"cannot read pixels of {name}: no Pixel Data element{_codec_hint(ds)}")
        try:
            stored = ds.pixel_array
        except Exception as err:   # noqa: BLE001
            reason = " ".join(f"{type(err).__name__}: {err}".split())[:600]
            raise ValueError(f"cannot decode pixel data of {name}{_codec_hint(ds)}: {reason}") from err
    slope = _value(ds, "RescaleSlope")
    intercept = _value(ds, "RescaleIntercept")
    slope = 1.0 if slope is None or slope == 0 else slope
    intercept = 0.0 if intercept is None else intercept
    if repair and is_defective(ds):
        stored, intercept = repair_representation(stored, ds)
    return (stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.float32)
