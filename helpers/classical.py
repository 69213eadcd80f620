"""Classical machine learning on subjects × voxels matrices: pipelines, nested CV, leakage.

Everything fitted on data lives inside a scikit-learn :class:`~sklearn.pipeline.Pipeline`
(scaling → PCA → model), so cross-validation refits it on each training fold and the test
fold never shapes the features (the leakage lesson of notebook 05, measured by
:func:`leakage_experiment`).

* :func:`pipelines` — the four models of notebook 05 with their hyper-parameter grids.
* :func:`nested_cv` — inner ``GridSearchCV`` inside an outer ``StratifiedKFold``: the
  outer folds estimate how well *the whole tuning procedure* generalises.
* :func:`best_model_on_split` — tune every model on a training set only, pick the best by
  inner CV, report its held-out accuracy and AUC (notebook 08 compares its CNN with it on
  the same subject split).
* PCA helpers: :func:`components_for`, :func:`reconstruct`, :func:`plot_explained_variance`.

Rows are subjects (one volume each), so every split here is a subject split.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MODEL_NAMES = ("logreg", "linear_svm", "rbf_svm", "knn")


def pipelines(seed: int = 0, pca_variance: float = 0.9, c_values=(0.001, 0.01, 0.1, 1.0),
              gamma_values=("scale",), k_values=(1, 5, 9)) -> dict:
    """``{name: (pipeline, param_grid)}`` for logistic regression, linear SVM, RBF SVM and kNN.

    Each pipeline is ``StandardScaler`` (per voxel) → ``PCA`` (keeping ``pca_variance`` of the
    variance, so it adapts to how many training subjects a fold has) → the model. Grids
    tune ``C`` (logreg, SVMs), ``gamma`` (RBF SVM; ``"scale"`` is 1 / (n_features · var))
    and the number of neighbours (kNN).
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    def make(model):
        return Pipeline([("scale", StandardScaler()),
                         ("pca", PCA(n_components=pca_variance, svd_solver="full", random_state=seed)),
                         ("model", model)])

    c_values = list(c_values)
    return {
        "logreg": (make(LogisticRegression(max_iter=5000)), {"model__C": c_values}),
        "linear_svm": (make(SVC(kernel="linear")), {"model__C": c_values}),
        "rbf_svm": (make(SVC(kernel="rbf")), {"model__C": [c * 100 for c in c_values],
                                              "model__gamma": list(gamma_values)}),
        "knn": (make(KNeighborsClassifier()), {"model__n_neighbors": list(k_values)}),
    }


def _folds(n_splits: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def nested_cv(X: np.ndarray, y: np.ndarray, models: dict, outer_folds: int = 5, inner_folds: int = 3,
              seed: int = 0, n_jobs: int = -1) -> pd.DataFrame:
    """Nested cross-validation of each ``(pipeline, grid)`` in ``models``.

    For each outer stratified fold, ``GridSearchCV`` (``inner_folds``-fold, on the outer
    training subjects only) picks the hyper-parameters, refits on the outer training set and
    is scored on the outer test subjects. Outer folds run in parallel (joblib).
    Returns one row per model and outer fold: ``model``, ``fold``, ``accuracy``,
    ``best_params`` (as text). Summarise with :func:`summary`. Every subject is tested in
    exactly one outer fold: ``results.attrs["predictions"]`` holds those out-of-fold
    predictions (``model``, ``subject`` = row of ``X``, ``fold``, ``y_true``, ``y_pred``), which
    :func:`accuracy_ci` resamples by subject.
    """
    from sklearn.model_selection import GridSearchCV, cross_validate

    rows, predictions = [], []
    for name, (pipe, grid) in models.items():
        search = GridSearchCV(pipe, grid, cv=_folds(inner_folds, seed), scoring="accuracy", n_jobs=1)
        result = cross_validate(search, X, y, cv=_folds(outer_folds, seed), scoring="accuracy",
                                n_jobs=n_jobs, return_estimator=True, return_indices=True)
        tests = result["indices"]["test"]
        for fold, (score, est, test) in enumerate(zip(result["test_score"], result["estimator"], tests)):
            params = {k.split("__", 1)[1]: v for k, v in est.best_params_.items()}
            rows.append({"model": name, "fold": fold, "accuracy": float(score), "best_params": str(params)})
            predictions.append(pd.DataFrame({"model": name, "subject": test, "fold": fold, "y_true": y[test],
                                             "y_pred": est.predict(X[test])}))
    out = pd.DataFrame(rows)
    out.attrs["predictions"] = pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame()
    return out


def accuracy_ci(results: pd.DataFrame, seed: int = 0, n_boot: int = 1000) -> dict:
    """95 % bootstrap interval of each model's nested-CV accuracy, resampling **subjects**.

    Uses the out-of-fold predictions in ``results.attrs["predictions"]`` (every subject once);
    returns ``{model: [low, high]}`` (rounded to 4 digits) in the order the models were run.
    """
    from . import evaluation

    pred = results.attrs["predictions"]
    out = {}
    for name, part in pred.groupby("model", sort=False):
        correct = (part["y_true"].to_numpy() == part["y_pred"].to_numpy()).astype(float)
        out[name] = evaluation.bootstrap_ci(np.mean, part["subject"].to_numpy(), correct, n_boot=n_boot, seed=seed,
                                            digits=4)
    return out


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd of the outer-fold accuracy per model (rows in the order they were run)."""
    order = list(dict.fromkeys(results["model"]))
    table = results.groupby("model", sort=False)["accuracy"].agg(["mean", "std", "count"]).loc[order]
    table = table.rename(columns={"mean": "accuracy_mean", "std": "accuracy_sd", "count": "folds"})
    table["accuracy"] = [f"{m:.3f} ± {s:.3f}" for m, s in zip(table["accuracy_mean"], table["accuracy_sd"])]
    return table.reset_index()


def leakage_experiment(X: np.ndarray, y: np.ndarray, n_features: int = 500, folds: int = 5, seed: int = 0,
                       C: float = 1.0, n_jobs: int = -1) -> dict:
    """Univariate feature selection before vs inside cross-validation; returns both accuracies.

    * ``leaky``: ``SelectKBest(f_classif, n_features)`` is fitted on **all** subjects (the
      test folds' labels pick the voxels), then a linear SVM is cross-validated on them.
    * ``honest``: the same selection inside a Pipeline, refitted on each training fold.

    Same folds and model for both; ``gap`` = leaky − honest is the optimism leakage buys.
    On pure noise the leaky score sits well above chance while the honest one stays near it.
    """
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    k = int(min(n_features, X.shape[1]))
    model = Pipeline([("scale", StandardScaler()), ("model", SVC(kernel="linear", C=C))])
    cv = _folds(folds, seed)
    selected = SelectKBest(f_classif, k=k).fit(X, y).transform(X)
    leaky = cross_val_score(model, selected, y, cv=cv, n_jobs=n_jobs)
    honest_pipe = Pipeline([("select", SelectKBest(f_classif, k=k)), *model.steps])
    honest = cross_val_score(honest_pipe, X, y, cv=cv, n_jobs=n_jobs)
    return {"leaky": float(leaky.mean()), "honest": float(honest.mean()), "gap": float(leaky.mean() - honest.mean()),
            "leaky_folds": leaky.tolist(), "honest_folds": honest.tolist(), "n_features": k}


def _scores(estimator, X) -> np.ndarray:
    if hasattr(estimator, "decision_function"):
        return estimator.decision_function(X)
    return estimator.predict_proba(X)[:, list(estimator.classes_).index(max(estimator.classes_))]


def best_model_on_split(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                        seed: int = 0, models: dict | None = None, inner_folds: int = 3, n_jobs: int = -1) -> dict:
    """Tune each model on the training subjects only, keep the best by inner CV, test it once.

    ``models`` defaults to :func:`pipelines` ``(seed)``. Returns ``name`` (the chosen model),
    ``accuracy`` and ``auc`` on the test subjects (AUC from the decision function, the larger
    label as positive), ``params`` (its tuned hyper-parameters) and ``inner_scores``
    ``{model: inner CV accuracy}``. ``X`` rows are subjects (flattened volumes).
    """
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import GridSearchCV

    from . import evaluation

    models = models or pipelines(seed)
    searches = {}
    for name, (pipe, grid) in models.items():
        searches[name] = GridSearchCV(pipe, grid, cv=_folds(inner_folds, seed), scoring="accuracy",
                                      n_jobs=n_jobs).fit(X_train, y_train)
    name = max(searches, key=lambda n: searches[n].best_score_)
    best = searches[name]
    auc = evaluation.auc(y_test == max(y_train), _scores(best, X_test))
    return {"name": name, "accuracy": float(accuracy_score(y_test, best.predict(X_test))), "auc": float(auc),
            "params": {k.split("__", 1)[1]: v for k, v in best.best_params_.items()},
            "inner_scores": {n: float(s.best_score_) for n, s in searches.items()}}


# --------------------------------------------------------------------------------- PCA helpers
def components_for(pca, fractions=(0.5, 0.8, 0.95)) -> dict:
    """Smallest number of components whose cumulative explained variance reaches each fraction.

    ``None`` when the fitted PCA never reaches it (fewer subjects than needed).
    """
    cumulative = np.cumsum(pca.explained_variance_ratio_)
    out = {}
    for f in fractions:
        hit = np.flatnonzero(cumulative >= f - 1e-9)
        out[f] = int(hit[0] + 1) if hit.size else None
    return out


def reconstruct(pca, X: np.ndarray, n_components: int) -> np.ndarray:
    """Project ``X`` on the first ``n_components`` of a fitted PCA and map back (same units as X)."""
    n = int(min(n_components, pca.n_components_))
    codes = (X - pca.mean_) @ pca.components_[:n].T
    return (codes @ pca.components_[:n] + pca.mean_).astype(np.float32)


def plot_explained_variance(pca, fractions=(0.5, 0.8, 0.95), ax=None):
    """Cumulative explained variance against the number of components; returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    cumulative = np.cumsum(pca.explained_variance_ratio_)
    n = np.arange(1, len(cumulative) + 1)
    ax.plot(n, cumulative, marker=".", lw=1)
    for f, k in components_for(pca, fractions).items():
        ax.axhline(f, color="grey", lw=0.6, ls="--")
        if k:
            ax.annotate(f"{int(f * 100)} %: {k}", (k, f), textcoords="offset points", xytext=(5, -12), fontsize=8)
    ax.set_xlabel("number of components")
    ax.set_ylabel("cumulative explained variance")
    ax.set_ylim(0, 1.02)
    return ax.figure


def plot_accuracies(results: pd.DataFrame, ax=None, chance: float = 0.5):
    """Outer-fold accuracies per model (points) with their mean (bar); returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    order = list(dict.fromkeys(results["model"]))
    for i, name in enumerate(order):
        acc = results.loc[results["model"] == name, "accuracy"].to_numpy()
        ax.bar(i, acc.mean(), color="C0", alpha=0.4)
        ax.scatter(np.full(len(acc), i) + np.linspace(-0.15, 0.15, len(acc)), acc, color="C0", s=12)
    ax.axhline(chance, color="red", lw=0.8, ls="--", label="chance")
    ax.set_xticks(range(len(order)), order)
    ax.set_ylabel("outer-fold accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", fontsize=8)
    return ax.figure


def plot_leakage(experiments: dict, ax=None):
    """Bars of leaky vs honest accuracy for each ``{title: leakage_experiment result}``; returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    width = 0.38
    for i, res in enumerate(experiments.values()):
        for j, (kind, color) in enumerate([("leaky", "C3"), ("honest", "C0")]):
            ax.bar(i + (j - 0.5) * width, res[kind], width, color=color, label=kind if i == 0 else None)
            ax.text(i + (j - 0.5) * width, res[kind] + 0.01, f"{res[kind]:.2f}", ha="center", fontsize=8)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(experiments)), list(experiments))
    ax.set_ylabel("cross-validated accuracy")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8, loc="lower right")
    return ax.figure
