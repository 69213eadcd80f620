"""helpers.dicom.read_hu on real-world compressed DICOM: every file pydicom and pydicom-data ship.

With pydicom's pixel-data plugins installed (pylibjpeg with libjpeg, openjpeg and rle; Pillow),
pydicom decodes JPEG Baseline/Extended, JPEG Lossless, JPEG-LS, JPEG 2000 and RLE Lossless.
Every shipped file in one of those transfer syntaxes either decodes or raises a ValueError
that names the file, the transfer syntax (name and UID) and the reason; the three shipped
files that are broken on purpose are named below. ``bench/codec_coverage.py`` prints the
counts by transfer syntax (``bench/results/codec-coverage.md``).
"""
import hashlib
import warnings
from pathlib import Path

import data_store
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID

from helpers import dicom

# pydicom's own warnings on the odd files it ships (EOF before a delimiter, VR mismatches)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")

PYDICOM_DATA = Path(pydicom.__file__).parent / "data"
TEST_FILES = PYDICOM_DATA / "test_files"
STORE = Path(data_store.__file__).parent / "data"


def shipped_files() -> list[str]:
    """Every file installed in pydicom's and pydicom-data's data folders, any name (globbed from
    the installed packages: ``pydicom.data.get_testdata_files`` may try a download)."""
    return sorted(str(p) for root in (PYDICOM_DATA, STORE) for p in root.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)


def shipped(name: str) -> str:
    path = TEST_FILES / name if (TEST_FILES / name).is_file() else STORE / name
    assert path.is_file(), f"{name} is not shipped by pydicom or pydicom-data"
    return str(path)


JPEG_BASELINE, JPEG_EXTENDED = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS, JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"
JPEG_LS, JPEG_LS_NEAR = "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS, J2K = "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"
RLE = "1.2.840.10008.1.2.5"
COMPRESSED = (JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1, JPEG_LS, JPEG_LS_NEAR,
              J2K_LOSSLESS, J2K, RLE)

# Shipped files whose pixel data is broken on purpose; read_hu raises a named ValueError.
KNOWN_BAD = {
    "JPEG-lossy.dcm": "12-bit JPEG Extended with invalid scan parameters (pydicom's README; JPGExtended.dcm "
                      "is the fixed file)",
    "JPEG2000-embedded-sequence-delimiter.dcm": "4 codestream bytes replaced by a sequence delimiter "
                                                "(pydicom's README)",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "the encapsulated pixel data is cut short (no sequence "
                                                 "delimiter)",
}

# At least one shipped file that decodes, per syntax (JPEG Lossless .57: none ships, see below).
KNOWN_GOOD = [
    (JPEG_BASELINE, "SC_rgb_jpeg.dcm"), (JPEG_BASELINE, "SC_rgb_jpeg_dcmtk.dcm"),
    (JPEG_BASELINE, "SC_rgb_dcmtk_+eb+cy+np.dcm"), (JPEG_BASELINE, "examples_ybr_color.dcm"),
    (JPEG_EXTENDED, "JPGExtended.dcm"),
    (JPEG_LOSSLESS_SV1, "JPEG-LL.dcm"), (JPEG_LOSSLESS_SV1, "JPGLosslessP14SV1_1s_1f_8b.dcm"),
    (JPEG_LOSSLESS_SV1, "SC_rgb_jpeg_gdcm.dcm"),
    (JPEG_LS, "MR_small_jpeg_ls_lossless.dcm"), (JPEG_LS, "emri_small_jpeg_ls_lossless.dcm"),
    (JPEG_LS_NEAR, "JPEGLSNearLossless_08.dcm"), (JPEG_LS_NEAR, "JPEGLSNearLossless_16.dcm"),
    (JPEG_LS_NEAR, "SC_rgb_jls_lossy_line.dcm"),
    (J2K_LOSSLESS, "MR_small_jp2klossless.dcm"), (J2K_LOSSLESS, "emri_small_jpeg_2k_lossless.dcm"),
    (J2K_LOSSLESS, "US1_J2KR.dcm"), (J2K_LOSSLESS, "GDCMJ2K_TextGBR.dcm"),
    (J2K, "JPEG2000.dcm"), (J2K, "693_J2KI.dcm"), (J2K, "SC_rgb_gdcm_KY.dcm"),
    (RLE, "MR_small_RLE.dcm"), (RLE, "emri_small_RLE.dcm"), (RLE, "SC_rgb_rle_16bit_2frame.dcm"),
    (RLE, "rtdose_rle.dcm"),
]

# (uncompressed, lossless-compressed) pairs of the same image: decoded pixels are identical.
LOSSLESS_TWINS = [
    ("MR_small.dcm", "MR_small_RLE.dcm"), ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("emri_small.dcm", "emri_small_RLE.dcm"), ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
    ("SC_rgb.dcm", "SC_rgb_jpeg_gdcm.dcm"), ("SC_rgb.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_16bit_2frame.dcm", "SC_rgb_rle_16bit_2frame.dcm"), ("SC_rgb_32bit.dcm", "SC_rgb_rle_32bit.dcm"),
    ("OBXXXX1A_2frame.dcm", "OBXXXX1A_rle_2frame.dcm"), ("rtdose.dcm", "rtdose_rle.dcm"),
    ("JPEG2000_UNC.dcm", "JPEG2000.dcm"),
    ("693_UNCR.dcm", "693_J2KR.dcm"), ("MR2_UNCR.dcm", "MR2_J2KR.dcm"), ("US1_UNCR.dcm", "US1_J2KR.dcm"),
    ("RG3_UNCR.dcm", "RG3_J2KR.dcm"),
    # the irreversible J2K files and their reference decodes (UNCI): the same decoder output
    ("693_UNCI.dcm", "693_J2KI.dcm"), ("US1_UNCI.dcm", "US1_J2KI.dcm"),
]


def syntax_of(path: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


def expected_shape(path: str) -> tuple[int, ...]:
    """From the header: (rows, cols) for one frame, (frames, rows, cols) for several; colour
    (SamplesPerPixel 3) adds a trailing axis of 3, as pydicom's ``pixel_array`` does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    frames, samples = int(ds.get("NumberOfFrames") or 1), int(ds.get("SamplesPerPixel") or 1)
    return (frames,) * (frames > 1) + (int(ds.Rows), int(ds.Columns)) + (samples,) * (samples > 1)


def assert_names_file_syntax_and_reason(message: str, path: str, uid: str) -> None:
    """read_hu's message: the file, ``(transfer syntax <name>, <uid>; <decoders>)``, and a reason —
    the decoder's error after ``): `` or, when pydicom found no pixel element, that."""
    assert str(path) in message, message
    assert f"transfer syntax {UID(uid).name}, {uid}" in message, message
    reason = message.rsplit("): ", 1)[-1] if "cannot decode pixel data of" in message else ""
    assert len(reason.strip()) > 10 or "no Pixel Data element" in message, f"no reason in: {message}"


@pytest.fixture(scope="module")
def compressed_with_pixels() -> list[tuple[str, str]]:
    """(path, syntax) of every shipped file in a listed compressed syntax whose header has Pixel Data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = dicom.index_dicoms(shipped_files(), n_jobs=1, cache=False, progress=False)
    error = table["error"].fillna("")
    has_pixels = (error == "") | (error.str.startswith("TruncatedFileError") & ~error.str.contains("in the header"))
    rows = table[has_pixels & table["TransferSyntaxUID"].isin(COMPRESSED)]
    return list(zip(rows["path"], rows["TransferSyntaxUID"]))


def test_every_shipped_compressed_file_decodes_or_names_file_syntax_and_reason(compressed_with_pixels):
    found = {Path(p).name for p, _ in compressed_with_pixels}
    assert len(compressed_with_pixels) >= 55, "pydicom + pydicom-data ship ~60 compressed files"
    assert set(KNOWN_BAD) <= found and {name for _, name in KNOWN_GOOD} <= found
    failed = {}
    for path, uid in compressed_with_pixels:
        try:
            hu = dicom.read_hu(path)
        except ValueError as err:
            assert_names_file_syntax_and_reason(str(err), path, uid)
            failed[Path(path).name] = str(err)
            continue
        assert hu.dtype == np.float32 and hu.shape == expected_shape(path), path
        del hu
    assert set(failed) <= set(KNOWN_BAD), f"newly undecodable: {sorted(set(failed) - set(KNOWN_BAD))}"


@pytest.mark.parametrize("name", sorted(KNOWN_BAD))
def test_known_bad_shipped_files_raise_value_error_naming_file_syntax_and_reason(name):
    path = shipped(name)
    with pytest.raises(ValueError) as info:
        dicom.read_hu(path)
    assert_names_file_syntax_and_reason(str(info.value), path, syntax_of(path))


def test_every_listed_syntax_has_a_known_good_file():
    assert {uid for uid, _ in KNOWN_GOOD} | {JPEG_LOSSLESS} == set(COMPRESSED)


@pytest.mark.parametrize("uid,name", KNOWN_GOOD, ids=[n for _, n in KNOWN_GOOD])
def test_known_good_files_decode(uid, name):
    path = shipped(name)
    assert syntax_of(path) == uid
    hu = dicom.read_hu(path)
    shape = expected_shape(path)
    assert hu.dtype == np.float32 and hu.shape == shape and np.isfinite(hu).all()
    assert hu.std() > 0, "a real image, not a constant"


@pytest.mark.parametrize("plain,compressed", LOSSLESS_TWINS, ids=[c for _, c in LOSSLESS_TWINS])
def test_lossless_files_decode_to_their_uncompressed_twin_exactly(plain, compressed):
    assert syntax_of(shipped(plain)) in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
    assert syntax_of(shipped(compressed)) in COMPRESSED
    np.testing.assert_array_equal(dicom.read_hu(shipped(compressed)), dicom.read_hu(shipped(plain)))


def jpeg_ls_near(path: str) -> int:
    """The largest NEAR parameter of the JPEG-LS scans (SOS: Ls, Ns, Ns x (Cs, Tm), NEAR)."""
    ds = pydicom.dcmread(path)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    near, pos = [], frame.find(b"\xff\xda")
    while pos >= 0:   # 0xFF 0xDA cannot occur in JPEG-LS entropy-coded data (bit stuffing)
        components = frame[pos + 4]
        near.append(frame[pos + 5 + 2 * components])
        pos = frame.find(b"\xff\xda", pos + 2)
    return max(near)


@pytest.mark.parametrize("lossy,reference,tolerance", [
    # JPEG-LS near-lossless: every sample within NEAR of the original (the standard's guarantee)
    ("SC_rgb_jls_lossy_line.dcm", "SC_rgb.dcm", "near"), ("SC_rgb_jls_lossy_sample.dcm", "SC_rgb.dcm", "near"),
    # JPEG baseline vs dcmtk's own decode of the same file: IDCT / colour-conversion rounding only
    ("SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_dcmtk_ebcr_dcmd.dcm", 2), ("SC_rgb_dcmtk_+eb+cy+n1.dcm",
                                                                  "SC_rgb_dcmtk_ebcyn1_dcmd.dcm", 2),
    ("SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_dcmtk_ebcynp_dcmd.dcm", 2), ("SC_rgb_dcmtk_+eb+cy+s4.dcm",
                                                                       "SC_rgb_dcmtk_ebcys4_dcmd.dcm", 2),
])
def test_lossy_files_stay_close_to_their_reference(lossy, reference, tolerance):
    tolerance = jpeg_ls_near(shipped(lossy)) if tolerance == "near" else tolerance
    assert 0 < tolerance <= 4
    diff = np.abs(dicom.read_hu(shipped(lossy)) - dicom.read_hu(shipped(reference)))
    assert diff.max() <= tolerance


def test_jpeg_lossless_process_14_decodes(tmp_path):
    """No shipped file uses JPEG Lossless (.57). A selection-value-1 codestream (.70) is a valid
    Process 14 codestream, so the same file relabelled .57 must decode to the same pixels."""
    source = shipped("SC_rgb_jpeg_gdcm.dcm")
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = JPEG_LOSSLESS
    ds.save_as(tmp_path / "p14.dcm")
    hu = dicom.read_hu(tmp_path / "p14.dcm")
    np.testing.assert_array_equal(hu, dicom.read_hu(shipped("SC_rgb.dcm")))


def _rewrite(tmp_path, name: str, codestream=None, syntax=None) -> str:
    """A copy of a shipped file (read and written with pydicom) with another codestream or syntax."""
    ds = pydicom.dcmread(shipped(name))
    if codestream is not None:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        ds.PixelData = encapsulate([codestream(frame)])
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    out = tmp_path / f"broken-{name}"
    ds.save_as(out)
    return str(out)


@pytest.mark.parametrize("label,codestream", [
    ("truncated", lambda frame: frame[: len(frame) // 2]),
    ("header overwritten", lambda frame: frame[:6] + b"\xff" * 40 + frame[46:]),
])
def test_corrupted_jpeg2000_raises_value_error_naming_file_syntax_and_reason(tmp_path, label, codestream):
    original = shipped("MR_small_jp2klossless.dcm")
    digest = hashlib.sha256(Path(original).read_bytes()).hexdigest()
    path = _rewrite(tmp_path, "MR_small_jp2klossless.dcm", codestream=codestream)
    with pytest.raises(ValueError) as info:
        dicom.read_hu(path)
    message = str(info.value)
    assert_names_file_syntax_and_reason(message, path, J2K_LOSSLESS)
    assert "J2K" in message, "the decoder's reason is passed on"
    assert "decoders installed: " in message and "pylibjpeg" in message
    assert hashlib.sha256(Path(original).read_bytes()).hexdigest() == digest, "shipped file untouched"


@pytest.mark.parametrize("syntax,name", [("1.2.840.10008.1.2.4.100", "MPEG2 Main Profile / Main Level"),
                                         ("1.2.826.0.1.3680043.9.9999.1", "unknown to pydicom")])
def test_unsupported_transfer_syntax_raises_value_error_naming_it(tmp_path, syntax, name):
    path = _rewrite(tmp_path, "MR_small_jp2klossless.dcm", syntax=syntax)
    with pytest.raises(ValueError) as info:
        dicom.read_hu(path)
    message = str(info.value)
    assert path in message and syntax in message and name in message
    assert "pydicom has no decoder for this transfer syntax" in message
