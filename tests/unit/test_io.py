import json

import numpy as np
import pytest

from helpers import io


def test_atomic_path_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"], "no temporary file left behind"


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    with io.atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_save_metrics_converts_numpy_and_nan(tmp_path):
    path = io.save_metrics({"auc": np.float32(0.5), "n": np.int64(3), "bad": float("nan"),
                            "arr": np.arange(2)}, tmp_path)
    assert json.loads(path.read_text()) == {"auc": 0.5, "n": 3, "bad": None, "arr": [0, 1]}
    assert io.load_metrics(tmp_path)["n"] == 3


def test_atomic_dir_replaces_the_folder_only_when_the_writer_finishes(tmp_path):
    from helpers.io import atomic_dir

    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]     # untouched
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert not list(tmp_path.glob(".out.tmp"))


def test_error_reason_is_one_line_of_bounded_length():
    from helpers.io import error_reason

    assert error_reason(ValueError("bad\n   header")) == "ValueError: bad header"
    long = error_reason(OSError("x" * 500), limit=40)
    assert len(long) == 40 and long.endswith("…") and long.startswith("OSError: x")


@pytest.mark.parametrize("reader", ["dicom", "dsb2", "luna16", "hcp header", "hcp volume"])
def test_every_reader_records_an_unreadable_file_in_the_one_reason_format(tmp_path, reader):
    """A garbage file becomes a row whose reason is ``error_reason``'s "<ExceptionType>: <message>"
    (with the file's name in front where the row does not hold the path), for every layout."""
    import re

    from helpers import dicom, dsb2, hcp, luna16

    name = {"dicom": "x.dcm", "dsb2": "x.dcm", "luna16": "x.mhd"}.get(reader, "x.nii.gz")
    path = tmp_path / name
    path.write_bytes(b"not a medical image\n" * 8)
    reason = {"dicom": lambda: dicom.read_header(path)["error"],
              "dsb2": lambda: dsb2._read_header(path)["error"],
              "luna16": lambda: luna16._index_row(path, tmp_path)["error"],
              "hcp header": lambda: hcp._header_row(path)["error"],
              "hcp volume": lambda: hcp.prepare_volume(path)["error"]}[reader]()
    assert isinstance(reason, str) and "\n" not in reason
    assert re.match(rf"^(?:{re.escape(str(path))}: )?[A-Z]\w*(?:Error|Exception): \S", reason), reason
