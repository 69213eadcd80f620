"""Metadata features without identifiers, patient-grouped splits and CV, and the row-order bug."""
import numpy as np
import pandas as pd
import pytest

from helpers import evaluation, tabular


def _index(n_patients=12, per=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        spacing, z0 = rng.uniform(0.4, 0.5), rng.uniform(-300, 300)
        for k in range(per):
            uid = f"ID_{p:03d}{k:03d}abc"
            rows.append({"path": f"/data/stage_2_train/{uid}.dcm", "error": None, "SOPInstanceUID": uid,
                         "PatientID": f"ID_p{p}", "StudyInstanceUID": f"ID_s{p}", "SeriesInstanceUID": f"1.2.{p}",
                         "StudyID": "", "ImplementationVersionName": "PYDICOM 3",
                         "Modality": "CT", "Manufacturer": ["GE", "SIEMENS"][p % 2],
                         "AcquisitionDate": f"2020{p:02d}{k:02d}",
                         "PixelSpacing0": spacing, "ImagePositionPatient2": z0 + 5 * k,
                         "RescaleIntercept": -1024.0, "WindowCenter0": [40, 36][p % 2]})
    return pd.DataFrame(rows)


def test_metadata_features_remove_identifiers_constants_and_free_text():
    index = _index()
    index["any"] = 1
    feats = tabular.metadata_features(index)
    assert set(feats.columns) == {"Manufacturer", "PixelSpacing0", "ImagePositionPatient2", "WindowCenter0"}
    assert all(dtype == np.float64 for dtype in feats.dtypes)
    assert sorted(feats["Manufacturer"].unique()) == [0.0, 1.0]
    assert list(feats.index) == list(index.index)
    assert "PixelSpacing0" not in tabular.metadata_features(index, exclude=["PixelSpacing0"])


def test_image_ids_from_uid_or_file_name():
    index = _index(1, 3)
    index.loc[1, "SOPInstanceUID"] = None
    assert list(tabular.image_ids(index)) == ["ID_000000abc", "ID_000001abc", "ID_000002abc"]
    assert list(tabular.image_ids(index.drop(columns="SOPInstanceUID"))) == list(tabular.image_ids(index))


def test_patient_split_keeps_patients_apart_and_covers_all_rows():
    index = _index(20, 8)
    y = (np.arange(len(index)) % 3 == 0).astype(int)
    for labels in (None, y):
        split = tabular.patient_split(index["PatientID"], labels, test_size=0.25, val_size=0.15, seed=3)
        parts = [set(index["PatientID"].iloc[split[k]]) for k in ("train", "val", "test")]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert sorted(np.concatenate(list(split.values()))) == list(range(len(index)))
        assert 2 <= len(parts[2]) <= 8 and len(parts[1]) >= 1
    again = tabular.patient_split(index["PatientID"], y, 0.25, 0.15, seed=3)
    np.testing.assert_array_equal(again["test"], split["test"])


def test_grouped_cv_finds_real_signal_and_no_fake_signal():
    rng = np.random.default_rng(0)
    index = _index(30, 10)
    groups = index["PatientID"]
    signal = rng.normal(size=len(index))
    y = (signal + 0.3 * rng.normal(size=len(index)) > 0.5).astype(int)
    feats = pd.DataFrame({"signal": signal, "noise": rng.normal(size=len(index))})
    res = tabular.grouped_cv(feats, y, groups, n_splits=5, seed=0, model=tabular.make_forest(0, 30))
    assert res["auc"] > 0.85
    assert len(res["folds"]) == 5 and not np.isnan(res["scores"]).any()
    for test_rows in res["folds"]:   # no patient on both sides of a fold
        train_patients = set(groups.drop(index=test_rows))
        assert not set(groups.iloc[test_rows]) & train_patients
    noise = tabular.grouped_cv(feats[["noise"]], y, groups, 5, 0, tabular.make_forest(0, 30))
    assert abs(noise["auc"] - 0.5) < 0.15
    # the headline recomputed from rows is the same number, and its patient bootstrap brackets it
    assert tabular.mean_fold_auc(y, res["scores"], res["fold_of"]) == pytest.approx(res["auc"])
    low, high = evaluation.bootstrap_ci(tabular.mean_fold_auc, groups, y, noise["scores"], noise["fold_of"],
                                        n_boot=200, seed=0)
    assert low <= noise["auc"] <= high and low < 0.5 < high, "no signal: the interval contains chance"


def test_slice_split_leaks_patient_level_labels():
    index = _index(30, 10)
    patient_rate = np.repeat(np.random.default_rng(1).uniform(size=30) > 0.6, 10).astype(int)
    feats = tabular.metadata_features(index)[["PixelSpacing0"]]   # a per-patient fingerprint
    leaky = tabular.slice_cv(feats, patient_rate, 5, 0, tabular.make_forest(0, 30))
    honest = tabular.grouped_cv(feats, patient_rate, index["PatientID"], 5, 0, tabular.make_forest(0, 30))
    assert leaky["auc"] > 0.95 and honest["auc"] < 0.8


def test_row_order_join_misattaches_labels_and_agreement_is_measured():
    index = _index(2, 5)
    labels = pd.DataFrame({"image_id": tabular.image_ids(index), "any": [1, 0, 0, 1, 0, 1, 1, 0, 0, 0]})
    shuffled = labels.sample(frac=1.0, random_state=0).reset_index(drop=True)
    by_row = tabular.join_by_row_order(index, shuffled)
    assert list(by_row["any"]) == list(shuffled["any"])            # positions, not IDs
    truth = index.assign(image_id=tabular.image_ids(index)).merge(labels, on="image_id")["any"]
    agree = tabular.row_order_agreement(truth, by_row["any"])
    assert agree["agreement"] == pytest.approx(np.mean(truth.to_numpy() == by_row["any"].to_numpy()))
    assert agree["chance"] == pytest.approx(0.4 ** 2 + 0.6 ** 2)
    short = tabular.join_by_row_order(index, shuffled.iloc[:7])
    assert short["any"].isna().sum() == 3 and len(short) == len(index)


def test_in_file_order_follows_the_csv(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("ID,Label\nID_b_epidural,0\nID_b_any,1\nID_a_epidural,0\nID_a_any,0\nID_b_any,1\n")
    labels = pd.DataFrame({"image_id": ["ID_a", "ID_b", "ID_c"], "any": [0, 1, 0]})
    assert list(tabular.in_file_order(labels, csv)["image_id"]) == ["ID_b", "ID_a", "ID_c"]


def test_feature_importances_and_plot():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    feats = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    imp = tabular.feature_importances(feats, (feats["a"] > 0).astype(int), model=tabular.make_forest(0, 20))
    assert imp.index[0] == "a" and imp.sum() == pytest.approx(1.0)
    fig, ax = plt.subplots()
    assert tabular.plot_importances(imp, ax=ax) is fig and len(ax.patches) == 2
    plt.close(fig)
