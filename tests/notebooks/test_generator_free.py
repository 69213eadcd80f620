"""The series on datasets without any generator-only file, as a real download is.

``ground_truth.json`` and ``ground_truth_lesions.csv`` are written only by our generators
(``../shared/DATASETS.md``: optional everywhere). Each notebook must run to the end on a
copy of its dataset with them removed. 01 and 04–08 do that in their own test files (on
copies of the seed-1 variants, or with an external dataset); this file covers the rest.
"""
import pytest

from helpers import datasets, synthetic
from helpers.synthetic import GENERATOR_ONLY

pytestmark = pytest.mark.notebook


def test_the_copies_have_no_generator_files(generator_free_dataset):
    for name in datasets.LAYOUTS:
        root = generator_free_dataset(name)
        assert not [p for extra in GENERATOR_ONLY for p in root.rglob(extra)]
        assert not synthetic.is_complete(root)
        datasets.check_layout(name, root)   # still the public layout


def test_00_validates_user_datasets(run_notebook, generator_free_dataset):
    parent = {generator_free_dataset(name).parent for name in datasets.LAYOUTS}
    assert len(parent) == 1
    m = run_notebook("00_setup", variant="generator-free", data_dir=str(parent.pop()))["metrics"]
    assert m["datasets"] == {name: "ok" for name in datasets.LAYOUTS}


def test_02_and_03_run_without_generator_files(run_notebook, generator_free_dataset):
    rsna = generator_free_dataset("rsna")
    truth = synthetic.load_ground_truth(datasets.synthetic_dir("rsna", "smoke"))
    m02 = run_notebook("02_data_exploration", variant="generator-free", data_dir=str(rsna))["metrics"]
    assert m02["n_images"] == truth["kept"]["n_images"]
    m03 = run_notebook("03_data_augmentation", variant="generator-free", data_dir=str(rsna),
                       cardiac_data_dir=str(generator_free_dataset("dsb2")))["metrics"]
    assert m03["n_ct_slices"] > 0 and m03["dot_test_max_error_px"] < 1.0
