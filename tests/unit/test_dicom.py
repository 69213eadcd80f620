"""helpers.dicom: the header index and Hounsfield units, on pydicom's bundled files and tiny CTs."""
import os
import shutil
import warnings
from pathlib import Path

import data_store
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from helpers import dicom

# The files that ship inside the pydicom wheel (get_testdata_files would also try a download).
PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
BUNDLED = sorted(str(p) for p in PYDICOM_FILES.rglob("*") if p.suffix.lower() == ".dcm")
CT_SMALL = str(PYDICOM_FILES / "CT_small.dcm")
# Every file pydicom (test_files, charset_files, palettes) and pydicom-data (data_store/data)
# install, any name: DICOMDIR trees without suffixes, and the READMEs / JSON / dumps among them.
SHIPPED = sorted(str(p) for root in (PYDICOM_FILES.parent, Path(data_store.__file__).parent / "data")
                 for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
                 and "__pycache__" not in p.parts)
# The shipped files that are not DICOM: both routes give a NotDicomError. no_meta.dcm is
# CT_small.dcm without its file meta but starting one byte early (a stray 0x20), so pydicom
# with force=True reads one garbage element from it: not DICOM for the index either.
NOT_DICOM_SUFFIXES = (".txt", ".json", ".md", ".dump", ".gz", ".icc")
NOT_DICOM = {f for f in SHIPPED if Path(f).suffix in NOT_DICOM_SUFFIXES or Path(f).name == "README"} | \
    {str(PYDICOM_FILES / "no_meta.dcm")}


def make_ct(path, stored, bits_stored=12, pixel_rep=0, intercept=-1024.0, slope=1.0, window=40,
            position=(-125.0, -125.0, 0.0), implicit=False):
    """A tiny single-slice CT file in the RSNA style; returns its path."""
    stored = np.asarray(stored)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientID = "ID_0000001"
    ds.ImagePositionPatient = list(position)
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = pixel_rep
    ds.RescaleIntercept = intercept
    ds.RescaleSlope = slope
    ds.WindowCenter = window
    ds.WindowWidth = 80 if not isinstance(window, list) else [80] * len(window)
    ds.PixelData = stored.astype(np.int16 if pixel_rep else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def air_and_brain(air, brain):
    """8x8 stored values: background ``air``, a 4x4 square of ``brain``."""
    img = np.full((8, 8), air, dtype=np.int32)
    img[2:6, 2:6] = brain
    return img


# --- the index ---------------------------------------------------------------------------
def test_every_bundled_file_gives_a_row_or_a_reason():
    assert len(BUNDLED) > 50
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = dicom.index_dicoms(BUNDLED, n_jobs=1, cache=False)
    assert list(table["path"]) == BUNDLED
    assert list(table.columns[:2]) == ["path", "error"]
    errors = table["error"].dropna()
    assert errors.map(lambda e: isinstance(e, str) and ": " in e and len(e) <= dicom.ERROR_CHARS).all()
    by_name = dict(zip(table["path"].map(lambda p: Path(p).name), table["error"]))
    assert by_name["CT_small.dcm"] is None
    assert by_name["MR_small_bigendian.dcm"] is None and by_name["MR_small_implicit.dcm"] is None
    assert by_name["JPEG2000.dcm"] is None            # compressed: the header still indexes
    assert by_name["MR_truncated.dcm"].startswith("TruncatedFileError")
    assert by_name["rtplan.dcm"].startswith("MissingPixelDataError")   # a DICOM without an image
    assert table["error"].isna().sum() >= 40
    ct = table[table["path"] == CT_SMALL].iloc[0]
    ds = pydicom.dcmread(CT_SMALL)
    assert ct["Rows"] == ds.Rows and ct["RescaleIntercept"] == float(ds.RescaleIntercept)
    assert [ct[f"ImagePositionPatient{i}"] for i in range(3)] == [float(v) for v in ds.ImagePositionPatient]
    assert ct["TransferSyntaxUID"] == ds.file_meta.TransferSyntaxUID
    assert "PixelData" not in table.columns and not any(c.startswith("Private") for c in table.columns)


def test_bundled_table_writes_to_parquet(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = dicom.index_dicoms(BUNDLED, n_jobs=1, cache=False)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert back.shape == table.shape


@pytest.mark.parametrize("images_only", [True, False])
def test_fast_scanner_and_pydicom_give_the_same_rows(tmp_path, monkeypatch, images_only):
    """Every shipped file (``SHIPPED``, as an explicit path list: most have no ``.dcm``), read by
    the header scanner and by pydicom alone (``_FAST = False``), gives the same row. The one
    documented difference: a file whose header is cut short inside an element
    (rtplan_truncated.dcm) — pydicom reads the elements before the cut silently, the scanner
    reports a TruncatedFileError; the tags read before the cut are the same."""
    assert len(SHIPPED) > 250 and sum("." not in Path(f).name for f in SHIPPED) > 50
    files = SHIPPED + [make_ct(tmp_path / "e.dcm", air_and_brain(24, 1064), window=[40, 400]),
                       make_ct(tmp_path / "i.dcm", air_and_brain(-1000, 40), pixel_rep=1, intercept=0,
                               implicit=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = [dicom.read_header(f, images_only) for f in files]
        monkeypatch.setattr(dicom, "_FAST", False)
        slow = [dicom.read_header(f, images_only) for f in files]
        table = dicom.index_dicoms(files, n_jobs=1, cache=False, images_only=images_only)
    assert list(table["path"]) == files and table["error"].isna().sum() == sum(r["error"] is None for r in slow)
    cut = [i for i, f in enumerate(files) if Path(f).name == "rtplan_truncated.dcm"]
    assert len(cut) == 1 and fast[cut[0]]["error"].startswith("TruncatedFileError: truncated in the header")
    assert slow[cut[0]]["error"] == ("MissingPixelDataError: no image: missing required tag(s) Rows, Columns"
                                     if images_only else None)
    assert {k: v for k, v in fast[cut[0]].items() if k != "error"} == \
        {k: v for k, v in slow[cut[0]].items() if k != "error"}
    differ = [files[i] for i, (a, b) in enumerate(zip(fast, slow)) if a != b and i not in cut]
    assert differ == []
    not_dicom = {f for f, r in zip(files, fast) if (r["error"] or "").startswith("NotDicomError")}
    assert not_dicom == NOT_DICOM
    scanned = 0
    for f in files:
        with open(f, "rb") as fp:
            try:
                scanned += dicom._scan_file(fp, os.path.getsize(f)) is not None
            except dicom.TruncatedFileError:
                scanned += 1
    assert scanned >= len(files) // 2, "the common case takes the fast route"


def test_multivalued_tags_are_numbered_columns(tmp_path):
    make_ct(tmp_path / "a.dcm", air_and_brain(24, 1064), window=[40, 400], position=(1.5, -2.0, 30.0))
    make_ct(tmp_path / "b.DCM", air_and_brain(24, 1064), window=40, position=(1.5, -2.0, 35.0))
    table = dicom.index_dicoms(tmp_path, n_jobs=1, cache=False)
    assert [Path(p).name for p in table["path"]] == ["a.dcm", "b.DCM"]   # any case, sorted
    assert table["error"].isna().all()
    assert list(table["WindowCenter0"]) == [40.0, 40.0]                   # single value -> column 0
    assert table["WindowCenter1"].iloc[0] == 400.0 and pd.isna(table["WindowCenter1"].iloc[1])
    assert "WindowCenter" not in table.columns
    assert list(table["ImagePositionPatient2"]) == [30.0, 35.0]
    assert table[["PixelSpacing0", "PixelSpacing1"]].to_numpy().tolist() == [[0.5, 0.5]] * 2
    assert [f"ImageOrientationPatient{i}" for i in range(6)] == \
        sorted(c for c in table.columns if c.startswith("ImageOrientationPatient"))
    assert table["Rows"].dtype.kind == "i" and table["PatientID"].iloc[0] == "ID_0000001"


def test_vm1_tag_split_in_one_file_merges_into_column_zero():
    rows = [{"path": "a", "error": None, "Foo": 1.0}, {"path": "b", "error": None, "Foo0": 2.0, "Foo1": 3.0}]
    table = dicom._assemble(rows)
    assert "Foo" not in table.columns and list(table["Foo0"]) == [1.0, 2.0]


def test_mixed_type_columns_become_strings_and_write_to_parquet(tmp_path):
    rows = [{"path": "a", "error": None, "X": 1, "Y": 2}, {"path": "b", "error": "E: x", "X": "abc", "Y": 2.5}]
    table = dicom._assemble(rows)
    assert list(table["X"]) == ["1", "abc"] and table["Y"].dtype.kind == "f"
    table.to_parquet(tmp_path / "t.parquet")


def test_bad_files_are_rows_with_reasons(tmp_path):
    good = shutil.copy(CT_SMALL, tmp_path / "good.dcm")
    data = Path(CT_SMALL).read_bytes()
    (tmp_path / "half.dcm").write_bytes(data[: len(data) // 2])        # truncated in the pixels
    (tmp_path / "header.dcm").write_bytes(data[:700])                   # truncated in the header
    (tmp_path / "notes.dcm").write_text("this is a text file renamed to .dcm\n" * 20)
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("not indexed: wrong extension")
    table = dicom.index_dicoms(tmp_path, n_jobs=1, cache=False)
    errors = dict(zip(table["path"].map(lambda p: Path(p).name), table["error"]))
    assert set(errors) == {"good.dcm", "half.dcm", "header.dcm", "notes.dcm", "empty.dcm"}
    assert errors["good.dcm"] is None and str(good) in set(table["path"])
    assert errors["half.dcm"].startswith("TruncatedFileError")
    assert errors["header.dcm"].startswith("TruncatedFileError: truncated in the header")
    assert errors["notes.dcm"].startswith("NotDicomError")
    assert errors["empty.dcm"].startswith("EmptyFileError")
    summary = dicom.summary(table)
    assert summary["n_files"] == 5 and summary["n_read"] == 1 and summary["n_errors"] == 4
    assert Path(CT_SMALL).read_bytes() == data   # raw files untouched


def test_missing_or_empty_folder_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        dicom.index_dicoms(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="empty"):
        dicom.index_dicoms(tmp_path / "empty")
    assert list(dicom.index_dicoms([], cache=False).columns) == ["path", "error"]


def test_recursive_and_not(tmp_path):
    make_ct(tmp_path / "top.dcm", air_and_brain(24, 1064))
    (tmp_path / "sub").mkdir()
    make_ct(tmp_path / "sub" / "deep.dcm", air_and_brain(24, 1064))
    assert len(dicom.index_dicoms(tmp_path, n_jobs=1, cache=False)) == 2
    assert len(dicom.index_dicoms(tmp_path, n_jobs=1, cache=False, recursive=False)) == 1


def test_cache_hit_then_miss_after_a_file_changes(tmp_path, monkeypatch):
    for i in range(3):
        make_ct(tmp_path / f"s{i}.dcm", air_and_brain(24, 1064), position=(0.0, 0.0, 5.0 * i))
    builds = []
    real = dicom._build_index
    monkeypatch.setattr(dicom, "_build_index", lambda *a, **k: builds.append(1) or real(*a, **k))
    first = dicom.index_dicoms(tmp_path, n_jobs=1)
    cached = list((tmp_path / ".medimg_cache").glob("dicom-index-*.parquet"))
    assert len(builds) == 1 and len(cached) == 1
    second = dicom.index_dicoms(tmp_path, n_jobs=1)
    assert len(builds) == 1, "unchanged files are served from the cache"
    pd.testing.assert_frame_equal(first, second)
    assert second["error"].map(lambda e: e is None).all()
    st = os.stat(tmp_path / "s1.dcm")
    os.utime(tmp_path / "s1.dcm", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    dicom.index_dicoms(tmp_path, n_jobs=1)
    assert len(builds) == 2, "a touched file makes a new key"
    assert dicom.index_dicoms(tmp_path, n_jobs=1, cache=False) is not None and len(builds) == 3


def test_parallel_matches_serial(tmp_path, monkeypatch):
    for i in range(12):
        make_ct(tmp_path / f"s{i:02d}.dcm", air_and_brain(24, 1064), position=(0.0, 0.0, float(i)))
    (tmp_path / "broken.dcm").write_bytes(b"garbage" * 10)
    serial = dicom.index_dicoms(tmp_path, n_jobs=1, cache=False)
    monkeypatch.setattr(dicom, "PARALLEL_MIN_FILES", 4)
    parallel = dicom.index_dicoms(tmp_path, n_jobs=2, cache=False, progress=False)
    pd.testing.assert_frame_equal(serial, parallel)
    assert parallel["error"].notna().sum() == 1


# --- Hounsfield units --------------------------------------------------------------------
def test_read_hu_matches_rescaled_pixel_array():
    ds = pydicom.dcmread(CT_SMALL)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    for source in (CT_SMALL, ds):
        hu = dicom.read_hu(source)
        assert hu.dtype == np.float32 and hu.shape == (ds.Rows, ds.Columns)
        np.testing.assert_allclose(hu, expected)


def test_missing_slope_and_intercept_default_to_1_and_0(tmp_path):
    ds = pydicom.dcmread(make_ct(tmp_path / "a.dcm", air_and_brain(-1000, 40), pixel_rep=1, intercept=0))
    del ds.RescaleSlope, ds.RescaleIntercept
    np.testing.assert_array_equal(dicom.read_hu(ds), air_and_brain(-1000, 40))
    assert not dicom.is_defective(ds)


@pytest.mark.parametrize("name,group", [
    ("unsigned12", dict(bits_stored=12, pixel_rep=0, intercept=-1024.0, stored=air_and_brain(24, 1064))),
    ("signed12", dict(bits_stored=12, pixel_rep=1, intercept=0.0, stored=air_and_brain(-1000, 40))),
    ("signed16", dict(bits_stored=16, pixel_rep=1, intercept=-1024.0, stored=air_and_brain(24, 1064))),
])
def test_correct_rsna_groups_are_untouched(tmp_path, name, group):
    path = make_ct(tmp_path / f"{name}.dcm", **group)
    ds = pydicom.dcmread(path)
    assert not dicom.is_defective(ds)
    hu = dicom.read_hu(path)
    np.testing.assert_array_equal(hu, dicom.read_hu(path, repair=False))
    assert hu[0, 0] == -1000 and hu[3, 3] == 40


@pytest.mark.parametrize("intercept", [-100.0, 0.0, 1.0])
def test_defective_slices_are_repaired(tmp_path, intercept):
    # signed 12-bit values stored as unsigned: air (-1000) reads as 3096, brain (40) as 40
    path = make_ct(tmp_path / "bad.dcm", air_and_brain(3096, 40), bits_stored=12, pixel_rep=0, intercept=intercept)
    ds = pydicom.dcmread(path)
    assert dicom.is_defective(ds)
    hu = dicom.read_hu(path)
    assert hu[0, 0] == -1000 and hu[3, 3] == 40
    raw = dicom.read_hu(path, repair=False)
    assert raw[0, 0] == 3096 + intercept, "repair=False shows the defect"
    pixels, new_intercept = dicom.repair_representation(ds.pixel_array, ds)
    assert new_intercept == -1000.0 and pixels[0, 0] == 0 and pixels[3, 3] == 1040
    assert ds.pixel_array[0, 0] == 3096, "the input is not modified"


def test_defect_condition_is_exact():
    assert not dicom.is_defective({"PixelRepresentation": 0, "RescaleIntercept": -100.5})
    assert dicom.is_defective({"PixelRepresentation": 0, "RescaleIntercept": -100})
    assert not dicom.is_defective({"PixelRepresentation": 1, "RescaleIntercept": 0})
    assert not dicom.is_defective({"PixelRepresentation": 0})
    assert not dicom.is_defective({"RescaleIntercept": 0})
    row = pd.Series({"PixelRepresentation": 0.0, "RescaleIntercept": 0.0})   # an index row
    assert dicom.is_defective(row)
    assert not dicom.is_defective(pd.Series({"PixelRepresentation": np.nan, "RescaleIntercept": 0.0}))


def test_undecodable_pixels_raise_value_error_naming_file_and_codec(monkeypatch):
    """Without an installed decoder (simulated: pydicom's JPEG-LS decoder with no plugin
    available) the message names the file, the transfer syntax and the packages that would help;
    with the plugins installed it names the decoders pydicom tried (tests/unit/test_codecs.py)."""
    path = str(PYDICOM_FILES / "MR_small_jpeg_ls_lossless.dcm")
    monkeypatch.setattr(get_decoder("1.2.840.10008.1.2.4.80"), "_available", {})
    with pytest.raises(ValueError) as info:
        dicom.read_hu(path)
    message = str(info.value)
    assert path in message and "JPEG-LS" in message and "1.2.840.10008.1.2.4.80" in message
    assert "no decoder installed — install pyjpegls, or pylibjpeg + pylibjpeg-libjpeg, or GDCM (python-gdcm)" \
        in message
    assert "RuntimeError" in message, "pydicom's own reason follows"


@pytest.mark.parametrize("name,reason", [("rtplan.dcm", "no Pixel Data"), ("MR_truncated.dcm", "less than expected")])
def test_missing_or_truncated_pixels_raise_value_error(name, reason):
    path = str(PYDICOM_FILES / name)
    with pytest.raises(ValueError, match=reason) as info:
        dicom.read_hu(path)
    assert path in str(info.value)


def test_unreadable_files_raise_value_error(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "notes.dcm").write_text("hello\n" * 50)
    for name in ("empty.dcm", "notes.dcm"):
        with pytest.raises(ValueError, match=name):
            dicom.read_hu(tmp_path / name)
