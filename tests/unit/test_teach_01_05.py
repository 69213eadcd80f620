"""The code that notebooks 01 and 05 write out by hand gives the same numbers as the helpers.

A notebook's hand-written version of a helper is a code cell with a ``# lesson: ...`` line;
these tests take those cells from the committed ``.ipynb``, run them on a small input, and
compare with the helper the notebook switches to afterwards (``dicom.read_hu``,
``classical.pipelines`` + ``classical.nested_cv``). The notebooks also print the comparison
and store it in metrics.json (``read_hu_hand_vs_helper_max_abs_diff``,
``nested_cv_hand_vs_helper_max_abs_diff``; checked in tests/notebooks/).
"""
import contextlib
import io

import nbformat
import numpy as np
import pytest
from sklearn.decomposition import PCA

from helpers import classical, dicom, paths


def make_ct(path, stored, bits_stored=12, pixel_rep=0, intercept=-1024.0, slope=1.0):
    """A tiny single-slice CT file with the four tags the lesson reads; returns its path."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, pixel_rep
    ds.RescaleIntercept, ds.RescaleSlope = intercept, slope
    ds.PixelData = stored.astype(np.int16 if pixel_rep else np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def air_and_brain(air, brain):
    """8x8 stored values: background ``air``, a 4x4 square of ``brain``."""
    img = np.full((8, 8), air, dtype=np.int32)
    img[2:6, 2:6] = brain
    return img


def lesson_cells(stem: str) -> list[str]:
    """Sources of the notebook's ``# lesson:`` code cells, in notebook order."""
    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{stem}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"
            and any(line.startswith("# lesson:") for line in c.source.splitlines())]


def run_lessons(stem: str, namespace: dict) -> dict:
    """Execute the lesson cells in one namespace (their printed lines are kept as ``_printed``)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for source in lesson_cells(stem):
            exec(compile(source, f"{stem}:lesson", "exec"), namespace)   # noqa: S102 - our own notebook
    namespace["_printed"] = printed.getvalue()
    return namespace


def test_each_notebook_has_its_lesson_cells():
    assert len(lesson_cells("01_data_cleaning")) == 2   # HU by hand, the repair by hand
    assert len(lesson_cells("05_pca_svm")) == 1         # pipeline + nested CV, honest and leaky


# --- 01: HU and the representation repair, by hand vs dicom.read_hu ---------------------------
@pytest.mark.parametrize("name,group", [
    ("defective", dict(bits_stored=12, pixel_rep=0, intercept=-50.0, stored=air_and_brain(3096, 40))),
    ("defective_at_-100", dict(bits_stored=12, pixel_rep=0, intercept=-100.0, stored=air_and_brain(3096, 40))),
    ("unsigned12", dict(bits_stored=12, pixel_rep=0, intercept=-1024.0, stored=air_and_brain(24, 1064))),
    ("signed12", dict(bits_stored=12, pixel_rep=1, intercept=0.0, stored=air_and_brain(-1000, 40))),
    ("signed16_slope2", dict(bits_stored=16, pixel_rep=1, intercept=-1024.0, slope=2.0, stored=air_and_brain(12, 532))),
])
def test_01_hu_by_hand_equals_read_hu(tmp_path, name, group):
    path = make_ct(tmp_path / f"{name}.dcm", **group)
    ns = run_lessons("01_data_cleaning", {"example": path, "np": np})
    np.testing.assert_array_equal(ns["hu_plain"], dicom.read_hu(path, repair=False))
    np.testing.assert_array_equal(ns["hu_by_hand"], dicom.read_hu(path))
    assert ns["hu_by_hand"][0, 0] == -1000 and ns["hu_by_hand"][3, 3] == 40, "air and brain in HU after the lesson"
    assert "Bits Stored" in ns["_printed"] and "Rescale Slope" in ns["_printed"]
    assert len(ns["_printed"].splitlines()) <= 6, "the header excerpt stays short"


# --- 05: the written-out pipeline and nested CV vs classical.pipelines / nested_cv -----------
def test_05_hand_nested_cv_equals_the_helper():
    rng = np.random.default_rng(0)
    y = np.array([1, -1] * 15)
    X = rng.normal(size=(30, 120)).astype(np.float32)
    X[:, :10] += 0.8 * (y[:, None] == 1)
    params = dict(pca_variance=0.9, c_values=[0.01, 1.0], seed=0, inner_folds=3, outer_folds=3)
    ns = run_lessons("05_pca_svm", {"X": X, "y": y, "np": np, "PCA": PCA, **params})
    models = classical.pipelines(params["seed"], params["pca_variance"], params["c_values"], k_values=(5,))
    results = classical.nested_cv(X, y, {"linear_svm": models["linear_svm"]}, params["outer_folds"],
                                  params["inner_folds"], params["seed"], n_jobs=1)
    np.testing.assert_array_equal(ns["honest"], results["accuracy"].to_numpy())
    assert ns["leaky"].shape == ns["honest"].shape and np.all((0 <= ns["leaky"]) & (ns["leaky"] <= 1))
    # the leaky line really fits scaling + PCA on all subjects: the same as doing it by hand
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    Z = PCA(n_components=0.9, svd_solver="full", random_state=0).fit_transform(StandardScaler().fit_transform(X))
    search = GridSearchCV(Pipeline([("model", SVC(kernel="linear"))]), {"model__C": [0.01, 1.0]},
                          cv=StratifiedKFold(3, shuffle=True, random_state=0))
    expected = cross_val_score(search, Z, y, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    np.testing.assert_allclose(ns["leaky"], expected)
    assert "honest" in ns["_printed"] and "leaky" in ns["_printed"]
