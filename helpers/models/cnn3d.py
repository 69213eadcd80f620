"""A small 3-D CNN for whole-brain volumes, and what a network costs in memory.

``build_cnn3d`` returns a Keras Functional model::

    input (x, y, z, 1)
    -> [coordinate channels] -> [Conv3D 3x3x3 -> BatchNorm -> ReLU] x convs_per_block -> MaxPool3D 2   (every block but the last)
    -> [Conv3D -> BatchNorm -> ReLU] x convs_per_block                        (last block, conv "last_conv")
    -> GlobalAveragePooling3D ("gap") -> Dropout -> [Dense(dense) -> Dropout] -> Dense ("classifier")

With ``dense=0`` the classifier sits directly on the global average pool, which is what
the original class activation map (:func:`helpers.cam.cam`) needs. Grad-CAM works on both.

``memory_table`` / ``memory_summary`` compute, from the layer output shapes alone (nothing
is run), how much memory a network needs: weights, optimiser state and the activations that
training keeps for back-propagation. Building a model symbolically allocates only its
weights, so even a network for 155x165x195 volumes can be measured on a laptop.
"""
from __future__ import annotations

import helpers  # noqa: F401  (TF logging variables before keras is imported)

# isort: split
from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

LAST_CONV = "last_conv"


@keras.saving.register_keras_serializable(package="helpers")
class AddCoords(layers.Layer):
    """Append one channel per spatial axis holding that axis's position, -1 to 1 (CoordConv).

    Convolutions and global average pooling are (almost) blind to *where* a pattern is.
    For registered brains (all in MNI space) where matters: atrophy in the left temporal
    lobe and the same atrophy elsewhere are different findings. The coordinate channels let
    the filters tell them apart (Liu et al. 2018, "An intriguing failing of CNNs ... CoordConv").
    """

    def call(self, x):
        spatial = tuple(int(n) for n in x.shape[1:-1])
        grids = np.meshgrid(*[np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in spatial], indexing="ij")
        coords = ops.convert_to_tensor(np.stack(grids, axis=-1)[None], dtype=x.dtype)
        coords = ops.broadcast_to(coords, (ops.shape(x)[0],) + spatial + (len(spatial),))
        return ops.concatenate([x, coords], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + len(input_shape) - 2,)


def build_cnn3d(input_shape: Sequence[int], filters: Sequence[int] = (8, 16, 32), dense: int = 64,
                dropout: float = 0.3, n_classes: int = 1, kernel_size: int = 3,
                convs_per_block: int = 1, pool: int = 2, coords: bool = False, batch_norm: bool = True,
                bn_momentum: float = 0.9, name: str = "cnn3d"):
    """Build a 3-D CNN classifier (Keras Functional model, not compiled).

    Parameters
    ----------
    input_shape : (x, y, z) or (x, y, z, channels)
        Volume shape in voxels; a missing channel axis means one channel.
    filters : channels of each block; every block but the last is followed by max pooling
        by ``pool`` along each axis, so the last conv sees the volume at
        ``1 / pool ** (len(filters) - 1)`` of its resolution.
    dense : units of the hidden dense layer after global average pooling (0: none, so the
        classifier is linear on the pooled maps, as CAM requires).
    dropout : dropout rate before each dense layer.
    n_classes : 1 gives one sigmoid output (probability of the positive class); >= 2 gives a
        softmax over the classes.
    convs_per_block : number of Conv3D-BN-ReLU units per block.
    coords : append x, y, z coordinate channels to the input (:class:`AddCoords`), so the
        network can learn *where* a pattern matters, not only what it looks like.
    batch_norm : BatchNormalization after each conv (the convs then have no bias). With a
        few dozen training volumes and a handful of steps per epoch, the moving statistics
        used at test time lag behind the weights; :func:`train_classifier` recomputes them
        (:func:`recalibrate_batch_norm`). ``False`` gives plain Conv3D(bias) -> ReLU, which
        trains much more slowly here.
    bn_momentum : momentum of the BatchNorm moving averages (0.9, as in the other models).

    The last convolution is named ``"last_conv"`` (its ReLU ``"last_conv_relu"``), the
    pooling ``"gap"`` and the output layer ``"classifier"``.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = shape + (1,)
    if len(shape) != 4:
        raise ValueError(f"input_shape must be (x, y, z) or (x, y, z, channels), got {input_shape}")
    if not filters:
        raise ValueError("filters must name at least one block")
    inputs = keras.Input(shape, name="volume")
    x = AddCoords(name="coords")(inputs) if coords else inputs
    n_blocks = len(filters)
    for b, f in enumerate(filters, 1):
        for c in range(1, convs_per_block + 1):
            last = b == n_blocks and c == convs_per_block
            conv_name = LAST_CONV if last else f"block{b}_conv{c}"
            x = layers.Conv3D(int(f), kernel_size, padding="same", use_bias=not batch_norm, name=conv_name)(x)
            if batch_norm:
                x = layers.BatchNormalization(momentum=bn_momentum, name=f"{conv_name}_bn")(x)
            x = layers.Activation("relu", name=f"{conv_name}_relu")(x)
        if b < n_blocks:
            x = layers.MaxPooling3D(pool, padding="same", name=f"block{b}_pool")(x)
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    if dropout:
        x = layers.Dropout(dropout, name="gap_dropout")(x)
    if dense:
        x = layers.Dense(int(dense), activation="relu", name="dense")(x)
        if dropout:
            x = layers.Dropout(dropout, name="dense_dropout")(x)
    if n_classes == 1:
        outputs = layers.Dense(1, activation="sigmoid", name="classifier")(x)
    elif n_classes >= 2:
        outputs = layers.Dense(int(n_classes), activation="softmax", name="classifier")(x)
    else:
        raise ValueError("n_classes must be 1 (sigmoid) or >= 2 (softmax)")
    return keras.Model(inputs, outputs, name=name)


def param_count(model) -> int:
    """Number of parameters (trainable and not) of a built Keras model."""
    return int(model.count_params())


def _output_shape(layer):
    out = layer.output
    shape = out.shape if not isinstance(out, (list, tuple)) else out[0].shape
    return tuple(shape)


def memory_table(model, batch_size: int = 1, bytes_per_value: int = 4):
    """One row per layer: output shape, values per sample, activation MiB for the batch, params.

    Computed from the symbolic output shapes, so nothing is allocated or run. The
    ``activation_mib`` column is what the forward pass produces at each layer for
    ``batch_size`` samples at ``bytes_per_value`` bytes (4 for float32).
    """
    import pandas as pd

    rows = []
    for layer in model.layers:
        shape = _output_shape(layer)
        values = int(np.prod([s for s in shape[1:] if s is not None], dtype=np.int64))
        rows.append({"layer": layer.name, "type": type(layer).__name__,
                     "output_shape": "x".join(str(s) for s in shape[1:]),
                     "values_per_sample": values,
                     "activation_mib": values * batch_size * bytes_per_value / 2**20,
                     "params": int(layer.count_params())})
    return pd.DataFrame(rows)


def memory_summary(model, batch_size: int = 1, bytes_per_value: int = 4, optimizer_slots: int = 2) -> dict:
    """Training-memory estimate of ``model`` in MiB, from its shapes (a lower bound).

    * ``weights_mib``: the parameters;
    * ``training_state_mib``: parameters + their gradients + ``optimizer_slots`` copies
      (Adam keeps two moments per parameter), i.e. ``(2 + slots) x`` the weights;
    * ``activations_mib``: every layer's output for ``batch_size`` samples; back-propagation
      keeps (almost) all of them until the backward pass reaches that layer;
    * ``largest_layer_mib`` / ``largest_layer``: the single biggest activation;
    * ``total_training_mib``: state + activations. Frameworks add workspace and copies on
      top, so real peaks are higher; the order of magnitude is what this is for.
    """
    table = memory_table(model, batch_size, bytes_per_value)
    params = param_count(model)
    weights = params * bytes_per_value / 2**20
    acts = table.loc[table["type"] != "InputLayer", "activation_mib"]
    biggest = table.loc[table["activation_mib"].idxmax()]
    state = weights * (2 + optimizer_slots)
    return {"params": params, "batch_size": batch_size, "weights_mib": weights,
            "training_state_mib": state, "activations_mib": float(acts.sum()),
            "input_mib": float(table["activation_mib"].iloc[0]),
            "largest_layer": str(biggest["layer"]), "largest_layer_mib": float(biggest["activation_mib"]),
            "total_training_mib": float(state + acts.sum())}


def recalibrate_batch_norm(model, x: np.ndarray, batch_size: int = 8) -> int:
    """Set every BatchNormalization layer's moving statistics to their exact values on ``x``.

    During training BatchNorm normalises with each mini-batch's own statistics and keeps a
    running average for test time. With a few dozen volumes and weights still moving, that
    average lags behind the final weights, and because a global-average-pooled classifier
    reads small differences of the pooled features, a lag shifts every test prediction the
    same way: a model can rank the test subjects perfectly (AUC 1) and still call them all
    one class. "Precise BN" (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm")
    recomputes the statistics once training is done: layer by layer, in order, the mean
    and variance of the layer's input over all of ``x`` (the *training* volumes), with the
    earlier layers already recalibrated. Returns the number of layers updated.
    """
    import keras

    x = np.asarray(x, dtype=np.float32)
    if x.ndim == len(model.inputs[0].shape) - 1:
        x = x[..., None]
    n = 0
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        probe = keras.Model(model.input, layer.input)
        total, total_sq, count = 0.0, 0.0, 0
        for start in range(0, len(x), batch_size):
            feats = np.asarray(probe(x[start:start + batch_size], training=False), dtype=np.float64)
            feats = feats.reshape(-1, feats.shape[-1])
            total, total_sq, count = total + feats.sum(0), total_sq + (feats ** 2).sum(0), count + len(feats)
        mean = total / count
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(np.maximum(total_sq / count - mean ** 2, 0.0).astype(np.float32))
        n += 1
    return n


def standardise_volumes(volumes: np.ndarray, train_idx, floor: float = 0.05, apply_to=None) -> np.ndarray:
    """Voxelwise z-scores: subtract the *training* subjects' mean volume, divide by their sd.

    For registered brains this turns "what does this brain look like" into "where does it
    differ from the others" (the idea behind voxel-based morphometry). Only training
    subjects enter the mean and sd (no leakage); ``floor`` keeps background voxels, whose sd
    is ~0, from blowing up. Returns float32 of the same shape.

    A caution that notebook 08 measures: where the classes differ, the sd across subjects
    is large *because* of the class effect, so dividing by it shrinks exactly the signal a
    classifier needs, while rare, unrelated variation elsewhere gets amplified. On the
    synthetic study the 3-D CNN did clearly worse with these z-scores than on the
    intensity-normalised volumes themselves.

    ``apply_to`` (optional, volumes on the same grid, e.g. an external study) is standardised
    with the same training mean and sd instead of ``volumes``: a trained model must see other
    data through exactly its own preprocessing.
    """
    train = np.asarray(volumes)[np.asarray(train_idx)]
    mean, sd = train.mean(axis=0), train.std(axis=0)
    target = np.asarray(volumes if apply_to is None else apply_to)
    return ((target - mean) / (sd + floor)).astype(np.float32)


def train_classifier(volumes: np.ndarray, labels, train_idx, test_idx, epochs: int = 40, batch_size: int = 8,
                     learning_rate: float = 3e-3, seed: int = 0, recalibrate: bool = True,
                     **build_kwargs) -> dict:
    """Build (:func:`build_cnn3d`), train on ``train_idx`` and test once on ``test_idx``.

    ``labels`` are 1 / -1 (or 1 / 0): class 1 is the positive class. ``volumes`` is
    ``(n, x, y, z)``. Adam with binary cross-entropy, seeded; the test subjects are never
    seen during training (no early stopping on them). With ``recalibrate`` (default) the
    BatchNorm statistics are recomputed on the training volumes after training
    (:func:`recalibrate_batch_norm`) before the test subjects are predicted. Returns ``model``, ``history``
    (per-epoch training loss/accuracy), ``test_prob`` (P(class 1) per test subject),
    ``accuracy``, ``auc``, ``accuracy_running_bn`` / ``auc_running_bn`` (the same test
    subjects scored with the BatchNorm running averages, before recalibration: the pitfall
    made visible), ``params`` and ``seconds`` (training wall time).
    """
    import time

    from ..evaluation import binary_report

    keras.utils.set_random_seed(seed)
    x = np.asarray(volumes, dtype=np.float32)[..., None]
    y = (np.asarray(labels) > 0).astype(np.float32)
    train_idx, test_idx = np.asarray(train_idx), np.asarray(test_idx)
    model = build_cnn3d(x.shape[1:], n_classes=1, **build_kwargs)
    model.compile(keras.optimizers.Adam(learning_rate), "binary_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x[train_idx], y[train_idx], epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    before = model.predict(x[test_idx], batch_size=batch_size, verbose=0)[:, 0]
    if recalibrate:
        recalibrate_batch_norm(model, x[train_idx], batch_size)
    prob = model.predict(x[test_idx], batch_size=batch_size, verbose=0)[:, 0] if recalibrate else before
    report, running = binary_report(y[test_idx], prob), binary_report(y[test_idx], before)
    return {"model": model, "history": history.history, "test_prob": prob,
            "accuracy": report["accuracy"], "auc": report["auc"],
            "accuracy_running_bn": running["accuracy"], "auc_running_bn": running["auc"],
            "params": param_count(model), "seconds": seconds}


# --------------------------------------------------------------------------------- scoring
def predict_proba(model, volumes: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """P(class 1) per volume ``(n, x, y, z)`` from a trained single-output classifier (unchanged model)."""
    x = np.asarray(volumes, dtype=np.float32)[..., None]
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))[:, 0].astype(float)


def subject_scores(labels, prob, subjects, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy (at ``threshold``) and AUC of per-subject probabilities, each with a 95 % interval.

    ``labels`` are 1 / -1 (or 1 / 0; class 1 positive), ``prob`` P(class 1), ``subjects`` the
    held-out unit of each row: the intervals resample subjects
    (:func:`helpers.evaluation.bootstrap_ci`). Returns ``accuracy``, ``accuracy_ci``, ``auc``,
    ``auc_ci`` (``None`` where undefined, e.g. an AUC with one class) and ``n_subjects``.
    """
    from ..evaluation import auc, with_ci

    y = (np.asarray(labels) > 0).astype(float)
    prob = np.asarray(prob, dtype=float)
    subjects = np.asarray(subjects)
    if len(y) == 0:
        return {"accuracy": None, "accuracy_ci": None, "auc": None, "auc_ci": None, "n_subjects": 0}
    accuracy, accuracy_ci = with_ci(lambda t, p: np.mean((p >= threshold) == (t > 0)), subjects, y, prob,
                                    n_boot=n_boot, seed=seed)
    area, area_ci = with_ci(auc, subjects, y, prob, n_boot=n_boot, seed=seed)
    return {"accuracy": accuracy, "accuracy_ci": accuracy_ci, "auc": area, "auc_ci": area_ci,
            "n_subjects": int(len(np.unique(subjects)))}


def classical_baseline(flat: np.ndarray, labels, train_idx, test_idx, subjects, seed: int = 0,
                       n_boot: int = 1000) -> dict:
    """:func:`helpers.classical.best_model_on_split` on subjects × voxels rows, plus its test predictions.

    The chosen pipeline is refitted with its tuned hyper-parameters on the training rows
    (exactly what ``GridSearchCV`` refits), so every test subject's prediction ``test_pred``
    is known and the accuracy gets an interval resampling ``subjects`` (``accuracy_ci``).
    Returns the keys of ``best_model_on_split`` plus ``test_pred`` and ``accuracy_ci``.
    """
    from .. import classical
    from ..evaluation import bootstrap_ci

    labels, train_idx, test_idx = np.asarray(labels), np.asarray(train_idx), np.asarray(test_idx)
    result = classical.best_model_on_split(flat[train_idx], labels[train_idx], flat[test_idx], labels[test_idx],
                                           seed=seed)
    pipe = classical.pipelines(seed)[result["name"]][0]
    pipe.set_params(**{f"model__{k}": v for k, v in result["params"].items()})
    pred = pipe.fit(flat[train_idx], labels[train_idx]).predict(flat[test_idx])
    correct = (pred == labels[test_idx]).astype(float)
    return {**result, "test_pred": pred, "accuracy": float(correct.mean()),
            "accuracy_ci": bootstrap_ci(np.mean, np.asarray(subjects)[test_idx], correct, n_boot=n_boot, seed=seed)}


def describe_transfer(name: str, internal, internal_ci, external, external_ci, digits: int = 3) -> str:
    """One sentence comparing an internal test score with the same model's external score.

    The words follow from the two intervals (:func:`helpers.evaluation.intervals_overlap`),
    not from the point values, so the sentence stays true whichever way the numbers fall.
    """
    from ..evaluation import format_ci, intervals_overlap

    text = f"{name}: internal {format_ci(internal, internal_ci, digits)}, external {format_ci(external, external_ci, digits)}"
    overlap = intervals_overlap(internal_ci, external_ci)
    if overlap is None:
        return text + " (an interval is missing: no verdict)"
    if overlap:
        return text + " (the intervals overlap: no clear change on the external data)"
    return text + f" (the intervals do not overlap: clearly {'lower' if external < internal else 'higher'} externally)"
