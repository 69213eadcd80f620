"""helpers.shards: the on-disk store (build, resume, read) and its array view."""
from __future__ import annotations

import pickle
from functools import partial

import numpy as np
import pandas as pd
import pytest

from helpers import shards

ROWS = {"data": ((3, 2), np.int32)}


def square_rows(items, calls=None):
    """work(): row i is i² everywhere, the table says which item it was."""
    if calls is not None:
        calls.append(list(items))
    array = np.stack([np.full((3, 2), v * v, np.int32) for v in items]) if items else np.zeros((0, 3, 2), np.int32)
    return array, pd.DataFrame({"item": list(items)})


def build(folder, items, **kw):
    return shards.build(folder, items, square_rows, ROWS, **{"shard_size": 4, "n_jobs": 1, **kw})


def test_build_then_read_every_way(tmp_path):
    report = build(tmp_path / "s", list(range(10)))
    assert (report["n_shards"], report["n_built"], report["n_reused"]) == (3, 3, 0)
    assert shards.is_complete(tmp_path / "s") and not shards.is_complete(tmp_path / "s", key="other")
    a = shards.ShardedArray(tmp_path / "s")
    expected = np.stack([np.full((3, 2), v * v, np.int32) for v in range(10)])
    assert a.shape == (10, 3, 2) and a.dtype == np.int32 and len(a) == 10 and a.ndim == 3
    np.testing.assert_array_equal(np.asarray(a), expected)
    np.testing.assert_array_equal(a[7], expected[7])
    np.testing.assert_array_equal(a[-1], expected[-1])
    np.testing.assert_array_equal(a[2:9:3], expected[2:9:3])
    np.testing.assert_array_equal(a[[9, 0, 5, 5]], expected[[9, 0, 5, 5]])       # any order, repeats
    mask = np.arange(10) % 3 == 0
    np.testing.assert_array_equal(a[mask], expected[mask])
    np.testing.assert_array_equal(a[4, 1], expected[4, 1])
    with pytest.raises(IndexError):
        a[10]
    assert shards.read_table(tmp_path / "s")["item"].tolist() == list(range(10))


def test_views_are_lazy_and_compose(tmp_path):
    build(tmp_path / "s", list(range(10)))
    a = shards.ShardedArray(tmp_path / "s")
    expected = np.asarray(a)
    view = a.take([8, 2, 3]).astype(np.float32)
    assert view.shape == (3, 3, 2) and view.dtype == np.float32
    np.testing.assert_array_equal(view[1:], expected[[2, 3]].astype(np.float32))
    twice = view.map(lambda b: b[:, :1] * 2)          # output shape comes from the function
    assert twice.shape == (3, 1, 2)
    np.testing.assert_array_equal(twice[0], expected[8, :1] * 2.0)
    np.testing.assert_array_equal(twice.take([2])[0], expected[3, :1] * 2.0)
    assert [b.shape[0] for b in a.batches(4)] == [4, 4, 2]
    restored = pickle.loads(pickle.dumps(a.take([1, 2])))   # travels to worker processes
    np.testing.assert_array_equal(restored[:], expected[[1, 2]])


def test_interrupted_build_resumes_and_redoes_only_unfinished_shards(tmp_path):
    folder, items = tmp_path / "s", list(range(10))
    build(folder, items, key="k")
    (folder / "manifest.json").unlink()                    # as if stopped before the end ...
    (folder / "shard-00001.parquet").unlink()              # ... with shard 1 not finished
    (folder / ".shard-00001.parquet.xyz.tmp").write_bytes(b"half")   # and a half-written file
    calls = []
    report = shards.build(folder, items, partial(square_rows, calls=calls), ROWS, shard_size=4,
                          n_jobs=1, key="k")
    assert calls == [[4, 5, 6, 7]] and (report["n_built"], report["n_reused"]) == (1, 2)
    assert not list(folder.glob("*.tmp"))
    np.testing.assert_array_equal(shards.ShardedArray(folder)[5], np.full((3, 2), 25))


def test_a_store_of_an_older_layout_is_not_complete(tmp_path):
    build(tmp_path / "s", list(range(10)), key="k")
    (tmp_path / "s" / "manifest.json").write_text('{"key": "k", "n": 10, "n_shards": 3, "dtype": "<i4"}')
    assert not shards.is_complete(tmp_path / "s", key="k")


def test_other_key_or_shard_size_starts_over(tmp_path):
    folder = tmp_path / "s"
    build(folder, list(range(10)), key="k")
    calls = []
    report = shards.build(folder, list(range(10)), partial(square_rows, calls=calls), ROWS,
                          shard_size=4, n_jobs=1, key="k2")
    assert report["n_built"] == 3 and len(calls) == 3
    report = build(folder, list(range(10)), key="k2", shard_size=5)
    assert (report["n_shards"], report["n_built"]) == (2, 2)


def test_parallel_build_matches_in_process_build(tmp_path):
    build(tmp_path / "one", list(range(20)))
    build(tmp_path / "two", list(range(20)), n_jobs=2)
    np.testing.assert_array_equal(np.asarray(shards.ShardedArray(tmp_path / "one")),
                                  np.asarray(shards.ShardedArray(tmp_path / "two")))


def test_work_returning_the_wrong_rows_is_refused(tmp_path):
    def short(items):
        return np.zeros((len(items) - 1, 3, 2), np.int32), pd.DataFrame({"item": items})

    with pytest.raises(ValueError, match="shard 0"):
        shards.build(tmp_path / "s", [1, 2, 3], short, ROWS, n_jobs=1)
    assert not shards.is_complete(tmp_path / "s")


def test_empty_store(tmp_path):
    report = build(tmp_path / "s", [])
    assert report["n_shards"] == 0
    a = shards.ShardedArray(tmp_path / "s")
    assert a.shape == (0, 3, 2) and a[:].shape == (0, 3, 2)


def variable_rows(items):
    """work() with several arrays and a different number of rows per item (like slices of a series)."""
    rows = [v for v in items for _ in range(v % 3)]
    images = np.array([np.full((2, 2), v, np.float32) for v in rows]).reshape(-1, 2, 2)
    return {"images": images, "ids": np.array(rows, np.int64)}, pd.DataFrame({"item": rows})


def test_shards_with_several_arrays_and_any_number_of_rows(tmp_path):
    report = shards.build(tmp_path / "s", list(range(10)), variable_rows,
                          {"images": ((2, 2), np.float32), "ids": ((), np.int64)}, shard_size=3, n_jobs=1)
    expected = [v for v in range(10) for _ in range(v % 3)]
    assert report["n"] == len(expected) and report["counts"] == [3, 3, 3, 0]   # the last shard is empty
    store = shards.open_store(tmp_path / "s")
    assert store["ids"][:].tolist() == expected and store["images"].shape == (len(expected), 2, 2)
    np.testing.assert_array_equal(store["images"][[0, 8]][:, 0, 0], [expected[0], expected[8]])
    assert shards.read_table(tmp_path / "s")["item"].tolist() == expected
    with pytest.raises(ValueError, match="say which"):
        shards.ShardedArray(tmp_path / "s")
