"""The index and the cleaning run unchanged on a Dask cluster (joblib's dask backend)."""
from __future__ import annotations

import logging

import joblib
import numpy as np
import pandas as pd
import pytest

from helpers import dicom, rsna, synthetic

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as local, distributed.Client(local) as client:
        yield client


def test_index_and_cleaning_on_a_local_cluster_match_the_default_backend(cluster, tmp_path, monkeypatch):
    root = tmp_path / "rsna"
    synthetic.generate("rsna", root, "smoke", seed=3)
    files = sorted(str(p) for p in (root / rsna.IMAGE_FOLDER).glob("*.dcm"))
    monkeypatch.setattr(dicom, "PARALLEL_MIN_FILES", 10)     # a small set takes the parallel path too
    with joblib.parallel_config(backend="dask"):
        with distributed.get_task_stream(cluster) as index_tasks:      # its record is read on exit
            on_cluster = dicom.index_dicoms(files, cache=False)
        with distributed.get_task_stream(cluster) as clean_tasks:
            images, table = rsna.load_clean(root, image_size=32, cache_dir=tmp_path / "cluster")
    assert len(index_tasks.data) > 0                           # the cluster really read the headers ...
    assert len(clean_tasks.data) > 0 and rsna.build_report(root, 32, tmp_path / "cluster")["n_built"] > 1
    workers = set(cluster.scheduler_info()["workers"])
    assert {t["worker"] for t in index_tasks.data + clean_tasks.data} <= workers   # joblib batches the shards
    local = dicom.index_dicoms(files, n_jobs=1, cache=False)   # ... and cleaned every shard
    pd.testing.assert_frame_equal(on_cluster, local)
    local_images, local_table = rsna.load_clean(root, image_size=32, n_jobs=1, cache_dir=tmp_path / "local")
    pd.testing.assert_frame_equal(table, local_table)
    np.testing.assert_array_equal(np.asarray(images), np.asarray(local_images))
