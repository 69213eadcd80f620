"""Which shipped DICOM files' pixels decode: pydicom's own decoders vs every installed plugin.

Not a test. Over every file that pydicom (``pydicom/data``: test_files, charset_files,
palettes) and pydicom-data (``data_store/data``) install — globbed from the installed
package folders, any file name, nothing downloaded — takes those with pixel data (their
:func:`helpers.dicom.read_header` row has no error, or a ``TruncatedFileError`` in the
pixels; files that are not DICOM, hold no image or end inside the header are left out) and decodes each with ``ds.pixel_array``
three ways:

* **pydicom only** — ``ds.pixel_array_options(decoding_plugin="pydicom")``: the native
  (uncompressed, deflated) decoders and pydicom's own RLE decoder, no third-party codec;
* **+ Pillow** — the plugins installed before issue 14 (pydicom's own and Pillow): a file
  counts when either decodes it;
* **all installed** — no ``decoding_plugin``: every installed plugin in turn, as
  ``helpers.dicom.read_hu`` does (here pydicom, Pillow, pylibjpeg with libjpeg, openjpeg, rle).

Prints a markdown table by transfer syntax (every syntax pydicom has a decoder for, 0 where
no shipped file uses it), with the files that still fail and why.

    python bench/codec_coverage.py > bench/results/codec-coverage.md
"""
from __future__ import annotations

import sys
import warnings
from collections import defaultdict
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import dicom  # noqa: E402

SKIP_SUFFIXES = (".py", ".pyc")


def shipped_files() -> list[str]:
    """Every file installed under pydicom's and pydicom-data's data folders, sorted."""
    import data_store
    import pydicom

    roots = [Path(pydicom.__file__).parent / "data", Path(data_store.__file__).parent / "data"]
    return sorted(str(p) for root in roots for p in root.rglob("*")
                  if p.is_file() and p.suffix not in SKIP_SUFFIXES and "__pycache__" not in p.parts)


def decodes(path: str, plugin: str = "") -> tuple[bool, str]:
    """(pixel data decodes, reason if not) with one pydicom decoding plugin, or all of them."""
    try:
        with open(path, "rb") as fp:
            ds = dicom._dcmread(fp, path, stop_before_pixels=False)
        if plugin:
            ds.pixel_array_options(decoding_plugin=plugin)
        _ = ds.pixel_array
        return True, ""
    except Exception as err:   # noqa: BLE001 - counted, and the reason printed
        return False, dicom._reason(err)


def main() -> None:
    warnings.simplefilter("ignore")
    files = shipped_files()
    rows = dicom.index_dicoms(files, n_jobs=1, cache=False, progress=False)
    error = rows["error"].fillna("")
    pixels_short = error.str.startswith("TruncatedFileError") & ~error.str.contains("truncated in the header")
    with_pixels = rows[(error == "") | pixels_short]
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    failing: dict[str, list[str]] = defaultdict(list)
    for path, syntax in zip(with_pixels["path"], with_pixels["TransferSyntaxUID"]):
        syntax = syntax if isinstance(syntax, str) else ""
        own, _ = decodes(path, "pydicom")
        pillow = own or decodes(path, "pillow")[0]
        every, reason = decodes(path)
        c = counts[syntax]
        c[0] += 1
        c[1] += own
        c[2] += pillow
        c[3] += every
        if not every:
            failing[syntax].append(f"`{Path(path).name}` ({reason[:160]})")

    from pydicom.uid import UID, AllTransferSyntaxes

    versions = ", ".join(f"{p} {metadata.version(p)}" for p in
                         ("pydicom", "pillow", "pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg",
                          "pylibjpeg-rle", "pydicom-data"))
    print("# Pixel decoding of the DICOM files pydicom and pydicom-data ship\n")
    print(f"`python bench/codec_coverage.py`: {len(files)} files installed, {len(with_pixels)} with pixel data "
          f"(the rest are not DICOM or hold no image). {versions}.\n")
    print("| transfer syntax | UID | files | pydicom only | + Pillow (before) | all installed plugins |")
    print("|---|---|---:|---:|---:|---:|")
    total = [0, 0, 0, 0]
    syntaxes = set(counts) | {str(uid) for uid in AllTransferSyntaxes if dicom._installed_decoders(uid) is not None}
    for syntax in sorted(syntaxes, key=lambda s: [int(x) for x in s.split(".")] if s else [0]):
        c = counts[syntax] if syntax in counts else [0, 0, 0, 0]
        total = [t + x for t, x in zip(total, c)]
        name = UID(syntax).name if syntax else "(no TransferSyntaxUID in the file meta)"
        print(f"| {name} | {syntax or '—'} | {c[0]} | {c[1]} | {c[2]} | {c[3]} |")
    print(f"| **all** | | **{total[0]}** | **{total[1]}** | **{total[2]}** | **{total[3]}** |")
    print("\nStill failing with every installed plugin:\n")
    for syntax in sorted(failing):
        name = UID(syntax).name if syntax else "no TransferSyntaxUID"
        for item in failing[syntax]:
            print(f"- {name}: {item}")


if __name__ == "__main__":
    main()
