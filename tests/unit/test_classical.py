"""Pipelines, nested CV, the leakage experiment and the PCA helpers, on small matrices."""
import numpy as np
import pytest
from sklearn.decomposition import PCA

from helpers import classical


def _signal_data(n=60, p=400, seed=0, strength=1.2):
    rng = np.random.default_rng(seed)
    y = np.array([1, -1] * (n // 2))
    X = rng.normal(size=(n, p)).astype(np.float32)
    X[:, :20] += strength * (y[:, None] == 1)
    return X, y


def test_leakage_on_pure_noise_is_optimistic_and_honest_is_not():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3000)).astype(np.float32)
    leaky, honest = [], []
    for seed in range(3):
        y = np.random.default_rng(seed + 10).permutation([1, -1] * 20)
        res = classical.leakage_experiment(X, y, n_features=50, folds=5, seed=seed, n_jobs=1)
        leaky.append(res["leaky"])
        honest.append(res["honest"])
        assert res["gap"] == pytest.approx(res["leaky"] - res["honest"])
        assert res["n_features"] == 50
    assert np.mean(leaky) > 0.8, "selecting on all subjects finds 'signal' in noise"
    assert abs(np.mean(honest) - 0.5) < 0.15, "selection inside the folds stays at chance"


def test_nested_cv_and_summary():
    X, y = _signal_data()
    models = classical.pipelines(0, pca_variance=0.9, c_values=(0.01, 1.0), k_values=(5,))
    assert list(models) == list(classical.MODEL_NAMES)
    results = classical.nested_cv(X, y, models, outer_folds=3, inner_folds=3, seed=0, n_jobs=1)
    assert len(results) == 4 * 3
    assert set(results.columns) >= {"model", "fold", "accuracy", "best_params"}
    summary = classical.summary(results)
    assert list(summary["model"]) == list(classical.MODEL_NAMES)
    acc = dict(zip(summary["model"], summary["accuracy_mean"]))
    assert acc["logreg"] > 0.75 and acc["linear_svm"] > 0.75
    assert all(0 <= a <= 1 for a in acc.values())
    assert "±" in summary["accuracy"].iloc[0]
    again = classical.nested_cv(X, y, models, outer_folds=3, inner_folds=3, seed=0, n_jobs=1)
    assert np.array_equal(again["accuracy"], results["accuracy"]), "seeded: same folds, same scores"
    # every subject is predicted once per model, out of fold; the fold accuracies follow from them
    pred = results.attrs["predictions"]
    assert len(pred) == 4 * len(y)
    for name, part in pred.groupby("model"):
        assert sorted(part["subject"]) == list(range(len(y)))
        by_fold = part.assign(ok=part["y_true"] == part["y_pred"]).groupby("fold")["ok"].mean()
        np.testing.assert_allclose(by_fold.to_numpy(), results[results["model"] == name]["accuracy"])
    cis = classical.accuracy_ci(results, seed=0, n_boot=200)
    assert list(cis) == list(classical.MODEL_NAMES)
    for name, (low, high) in cis.items():
        assert 0 <= low <= acc[name] + 0.02 and acc[name] - 0.02 <= high <= 1


def test_best_model_on_split_reports_held_out_scores():
    X, y = _signal_data(n=80, seed=1)
    models = classical.pipelines(0, c_values=(0.01, 1.0), k_values=(5,))
    res = classical.best_model_on_split(X[:56], y[:56], X[56:], y[56:], seed=0, models=models, n_jobs=1)
    assert res["name"] in classical.MODEL_NAMES
    assert set(res["inner_scores"]) == set(classical.MODEL_NAMES)
    assert res["inner_scores"][res["name"]] == max(res["inner_scores"].values())
    assert res["accuracy"] > 0.7 and res["auc"] > 0.75


def test_pca_helpers():
    X, _ = _signal_data(n=30, p=200)
    pca = PCA(svd_solver="full").fit(X)
    counts = classical.components_for(pca, (0.5, 0.8, 0.95, 1.01))
    assert counts[0.5] <= counts[0.8] <= counts[0.95] <= 30 and counts[1.01] is None
    full = classical.reconstruct(pca, X, pca.n_components_)
    assert np.allclose(full, X, atol=1e-3)
    few = classical.reconstruct(pca, X, 2)
    assert np.abs(few - X).mean() > np.abs(classical.reconstruct(pca, X, 20) - X).mean()
    assert classical.plot_explained_variance(pca).axes
