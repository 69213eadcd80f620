"""helpers.cache: keyed by files and parameters, written atomically, never over raw data."""
import os

import numpy as np
import pandas as pd
import pytest

from helpers import cache


def _files(tmp_path, n=3):
    files = []
    for i in range(n):
        f = tmp_path / f"f{i}.dat"
        f.write_bytes(bytes([i]) * (10 + i))
        files.append(f)
    return files


def test_fingerprint_changes_with_content_size_mtime_params_and_membership(tmp_path):
    files = _files(tmp_path)
    key = cache.fingerprint(files, stage="x")
    assert key == cache.fingerprint(list(reversed(files)), stage="x"), "order does not matter"
    assert key != cache.fingerprint(files, stage="y"), "parameters are part of the key"
    assert key != cache.fingerprint(files[:2], stage="x"), "a removed file changes the key"
    files[0].write_bytes(b"longer content than before")
    assert key != cache.fingerprint(files, stage="x"), "a changed size changes the key"
    key2 = cache.fingerprint(files, stage="x")
    st = files[1].stat()
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert key2 != cache.fingerprint(files, stage="x"), "a touched file changes the key"


def test_fingerprint_of_vanished_file_differs_from_present(tmp_path):
    files = _files(tmp_path, 1)
    key = cache.fingerprint(files)
    files[0].unlink()
    assert cache.fingerprint(files) != key


def test_cached_table_builds_once_then_reads(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return pd.DataFrame({"a": [1, 2], "b": ["x", None]})

    path = tmp_path / "c" / "t.parquet"
    first = cache.cached_table(path, build)
    second = cache.cached_table(path, build)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first, second)
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.parquet"], "no temporary files left"


def test_damaged_cache_is_rebuilt(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"not parquet")
    table = cache.cached_table(path, lambda: pd.DataFrame({"a": [1]}))
    assert table["a"].tolist() == [1]
    assert pd.read_parquet(path)["a"].tolist() == [1]


def test_failed_build_leaves_no_file(tmp_path):
    path = tmp_path / "a.npz"
    with pytest.raises(RuntimeError):
        cache.cached_arrays(path, lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_cached_arrays_round_trip(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(6, dtype=np.int16).reshape(2, 3), "y": np.array([0.5], np.float32)}

    a = cache.cached_arrays(tmp_path / "a.npz", build)
    b = cache.cached_arrays(tmp_path / "a.npz", build)
    assert len(calls) == 1
    assert b["x"].dtype == np.int16 and np.array_equal(a["x"], b["x"])


def test_cache_dir_beside_writable_data(tmp_path):
    assert cache.cache_dir(tmp_path) == tmp_path.resolve() / cache.CACHE_FOLDER


def test_cache_dir_for_read_only_data_goes_to_processed(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIMG_DATA", str(tmp_path / "data"))
    download = tmp_path / "download"
    download.mkdir()
    real_access = os.access
    monkeypatch.setattr(cache.os, "access",
                        lambda p, mode: False if str(p).startswith(str(download)) else real_access(p, mode))
    folder = cache.cache_dir(download, name="rsna")
    assert folder.is_dir() and folder.parent == (tmp_path / "data" / "processed").resolve()
    assert folder.name.startswith("rsna-")
    assert list(download.iterdir()) == [], "nothing written into the read-only dataset"


def test_cached_arrays_reads_only_the_keys_asked_for(tmp_path):
    build = lambda: {"images": np.zeros((3, 4, 4), np.int16), "ids": np.array(["a", "b", "c"])}  # noqa: E731
    full = cache.cached_arrays(tmp_path / "a.npz", build, keys=["ids"])
    assert set(full) == {"images", "ids"}, "a fresh build returns everything it built"
    part = cache.cached_arrays(tmp_path / "a.npz", build, keys=["ids"])
    assert set(part) == {"ids"} and part["ids"].tolist() == ["a", "b", "c"]
