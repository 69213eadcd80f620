"""Class activation maps (CAM, Grad-CAM) for 2-D and 3-D Keras models, and how to check them.

* :func:`grad_cam` (Selvaraju et al. 2017) works on any Functional model with a
  convolutional layer: it weights the layer's feature maps by the spatial mean of the
  gradient of the class score and keeps the positive part.
* :func:`cam` (Zhou et al. 2016) is the original class activation map for networks whose
  classifier is linear on a global average pool: feature maps x classifier weights.

Both return one heatmap per input, upsampled to the input grid (linear interpolation, voxel
areas aligned) and scaled to [0, 1]. Class scores are the classifier's *logits* (the input
of its sigmoid/softmax), so saturated probabilities do not flatten the gradients.

A heatmap is checked against a ground-truth region (where the classes really differ):
:func:`pointing_game` (is the maximum inside?), :func:`energy_inside` (what share of the
heat is inside?), each next to :func:`random_baseline` (what random maps score).

:func:`plot_cam_orthoslices` and :func:`plot_cam_montage` overlay heatmaps on volumes with
nilearn, in world coordinates (mm) given by the volume's affine.
"""
from __future__ import annotations

import helpers  # noqa: F401  (TF logging variables before keras is imported)

# isort: split

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

_CONV_TYPES = ("Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose",
               "Conv3DTranspose")


# ----------------------------------------------------------------------------- model plumbing
def last_conv_layer(model):
    """The last convolutional layer of ``model`` (in layer order), searched into nested models."""
    for layer in reversed(model.layers):
        if type(layer).__name__ in _CONV_TYPES:
            return layer
        if hasattr(layer, "layers"):  # a nested model
            try:
                return last_conv_layer(layer)
            except ValueError:
                continue
    raise ValueError(f"model {model.name!r} has no convolutional layer; pass layer_name")


def feature_layer(model, layer_name: str | None = None):
    """The layer whose maps Grad-CAM weights.

    ``layer_name`` given: that layer. Otherwise the last spatial feature maps: the layer
    that feeds the global pooling (or flattening) layer when the model has one, i.e. the
    last block's rectified output, after BatchNorm, activation and (in a residual network)
    the shortcut ``Add``, as in the Grad-CAM paper. Without such a layer: the last
    convolution with the BatchNorm / activation layers that directly follow it.
    """
    from keras import layers

    if layer_name is not None:
        return model.get_layer(layer_name)
    heads = (layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D, layers.GlobalAveragePooling3D,
             layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D, layers.GlobalMaxPooling3D, layers.Flatten)
    head = next((lay for lay in reversed(model.layers) if isinstance(lay, heads)), None)
    if head is not None:
        feeding = [lay for lay in model.layers if lay.output is head.input]
        if feeding and type(feeding[0]).__name__ != "InputLayer":
            return feeding[0]
    layer = last_conv_layer(model)
    if layer not in model.layers:  # inside a nested model: use it as is
        return layer
    follow = (layers.BatchNormalization, layers.Activation, layers.ReLU, layers.LeakyReLU)
    for nxt in model.layers[model.layers.index(layer) + 1:]:
        if isinstance(nxt, follow) and nxt.input is layer.output:
            layer = nxt
        else:
            break
    return layer


def _score_head(model):
    """How to get class logits: (tensor to expose, function tensor -> logits)."""
    from keras import activations, layers

    last = model.layers[-1]
    if isinstance(last, layers.Activation):
        return last.input, lambda t: t
    if isinstance(last, layers.Dense) and last.activation in (activations.sigmoid, activations.softmax):
        def logits(t):
            z = t @ last.kernel
            return z + last.bias if last.use_bias else z
        return last.input, logits
    return model.output, lambda t: t


def _class_scores(logits, class_index):
    """Score per sample: for one sigmoid output class 1 -> z, class 0 (or -1) -> -z."""
    import tensorflow as tf

    n_out = logits.shape[-1]
    if n_out == 1:
        z = logits[:, 0]
        if class_index is None:
            sign = tf.where(z >= 0, 1.0, -1.0)
        else:
            idx = np.broadcast_to(np.asarray(class_index), (int(logits.shape[0]),))
            sign = tf.constant(np.where(idx > 0, 1.0, -1.0), dtype=z.dtype)
        return z * tf.cast(sign, z.dtype)
    if class_index is None:
        idx = tf.argmax(logits, axis=-1)
    else:
        idx = tf.constant(np.broadcast_to(np.asarray(class_index), (int(logits.shape[0]),)))
    return tf.gather(logits, idx, axis=1, batch_dims=1)


def upsample(maps: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resize a batch of maps ``(n, *grid)`` to ``(n, *shape)`` by linear interpolation.

    ``grid_mode=True`` aligns voxel *areas* (feature-map cell i covers input voxels
    ``[i * f, (i + 1) * f)``), as pooling does, rather than voxel centres.
    """
    maps = np.asarray(maps, dtype=np.float32)
    shape = tuple(int(s) for s in shape)
    out = np.empty((maps.shape[0],) + shape, np.float32)
    for i, m in enumerate(maps):
        if m.shape == shape:
            out[i] = m
            continue
        z = ndimage.zoom(m, [t / s for t, s in zip(shape, m.shape)], order=1, mode="nearest", grid_mode=True)
        # zoom rounds the output size; pad/crop the last voxel if it is one off
        z = z[tuple(slice(0, t) for t in shape)]
        pad = [(0, t - s) for t, s in zip(shape, z.shape)]
        out[i] = np.pad(z, pad, mode="edge") if any(p[1] for p in pad) else z
    return out


def normalise(maps: np.ndarray, subtract_min: bool = False) -> np.ndarray:
    """Scale each map of a batch to [0, 1] by its own maximum (and minimum when asked).

    A map that is constant (e.g. all zero after the ReLU) becomes all zeros.
    """
    maps = np.asarray(maps, dtype=np.float32)
    axes = tuple(range(1, maps.ndim))
    lo = maps.min(axis=axes, keepdims=True) if subtract_min else np.zeros((len(maps),) + (1,) * (maps.ndim - 1),
                                                                          np.float32)
    hi = maps.max(axis=axes, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1), 0.0)
    return np.clip(out, 0, 1).astype(np.float32)


def _as_batch(model, inputs):
    x = np.asarray(inputs, dtype=np.float32)
    expected = len(model.inputs[0].shape)
    if x.ndim == expected - 1:  # missing channel axis
        x = x[..., None]
    if x.ndim != expected:
        raise ValueError(f"inputs of shape {np.shape(inputs)} do not match the model input {model.inputs[0].shape}")
    return x


# ----------------------------------------------------------------------------- maps
def grad_cam(model, inputs, class_index=None, layer_name: str | None = None, batch_size: int = 16,
             upsample_to_input: bool = True) -> np.ndarray:
    """Grad-CAM heatmaps of a 2-D or 3-D Functional Keras model, one per input, in [0, 1].

    Parameters
    ----------
    model : keras.Model (Functional), e.g. from :func:`helpers.models.cnn3d.build_cnn3d`.
    inputs : array ``(n, *spatial)`` or ``(n, *spatial, channels)``.
    class_index : None (each sample's predicted class), an int, or one int per sample.
        For a single sigmoid output, 1 is the positive class and 0 (or -1) the negative
        one (its score is the negated logit).
    layer_name : layer whose maps are weighted; None: the maps that feed the global pooling
        layer, i.e. the last block's output (see :func:`feature_layer`).
    upsample_to_input : resize the maps to the input grid (else keep the layer's grid).

    Returns
    -------
    float32 array ``(n, *spatial)``: ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of
    d score / d A_k, divided by its maximum (all zero where nothing is positive).
    """
    import keras
    import tensorflow as tf

    x = _as_batch(model, inputs)
    layer = feature_layer(model, layer_name)
    exposed, to_logits = _score_head(model)
    grad_model = keras.Model(model.input, [layer.output, exposed])
    cls = None if class_index is None else np.broadcast_to(np.asarray(class_index), (len(x),))
    maps = []
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size])
        with tf.GradientTape() as tape:
            features, head = grad_model(xb, training=False)
            scores = _class_scores(to_logits(head), None if cls is None else cls[start:start + batch_size])
        grads = tape.gradient(scores, features)
        spatial = tuple(range(1, len(features.shape) - 1))
        alpha = tf.reduce_mean(grads, axis=spatial, keepdims=True)
        maps.append(tf.nn.relu(tf.reduce_sum(alpha * features, axis=-1)).numpy())
    maps = np.concatenate(maps) if maps else np.zeros((0,) + x.shape[1:-1], np.float32)
    if upsample_to_input:
        maps = upsample(maps, x.shape[1:-1])
    return normalise(maps)


def _linear_after_gap(model):
    """(feature layer output, classifier Dense) for a model ending GAP -> [Dropout] -> Dense."""
    from keras import layers

    pools = (layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D, layers.GlobalAveragePooling3D)
    gap = next((lay for lay in reversed(model.layers) if isinstance(lay, pools)), None)
    if gap is None:
        raise ValueError("CAM needs a global average pooling layer; use grad_cam for this model")
    after = model.layers[model.layers.index(gap) + 1:]
    between = [lay for lay in after if not isinstance(lay, (layers.Dropout, layers.Activation))]
    if len(between) != 1 or not isinstance(between[0], layers.Dense):
        raise ValueError("CAM needs the classifier to be one Dense layer right after global average pooling "
                         "(build_cnn3d(..., dense=0)); use grad_cam for this model")
    return gap.input, between[0]


def cam(model, inputs, class_index=None, batch_size: int = 16, upsample_to_input: bool = True) -> np.ndarray:
    """The original class activation map (Zhou et al. 2016) for GAP -> Dense classifiers.

    ``M_c = sum_k w_{k,c} A_k`` with ``A_k`` the maps that enter the global average pool
    and ``w`` the classifier weights (negated for class 0 of a single sigmoid output). As in
    the paper there is no ReLU: each map is min-max scaled to [0, 1]. ``class_index`` as in
    :func:`grad_cam`.
    """
    import keras

    x = _as_batch(model, inputs)
    features_t, dense = _linear_after_gap(model)
    feat_model = keras.Model(model.input, [features_t, model.output])
    w = np.asarray(dense.kernel)  # (k, n_out)
    out = []
    for start in range(0, len(x), batch_size):
        features, probs = (np.asarray(t) for t in feat_model(x[start:start + batch_size], training=False))
        if w.shape[1] == 1:
            cls = (probs[:, 0] >= 0.5).astype(int) if class_index is None else \
                np.broadcast_to(np.asarray(class_index), (len(features),))[:]
            weights = np.where(np.asarray(cls)[:, None] > 0, w[:, 0], -w[:, 0])  # (n, k)
        else:
            cls = probs.argmax(-1) if class_index is None else \
                np.broadcast_to(np.asarray(class_index), (len(features),))
            weights = w[:, cls].T
        out.append(np.einsum("n...k,nk->n...", features, weights))
    maps = np.concatenate(out) if out else np.zeros((0,) + x.shape[1:-1], np.float32)
    if upsample_to_input:
        maps = upsample(maps, x.shape[1:-1])
    return normalise(maps, subtract_min=True)


# ----------------------------------------------------------------------------- scores
def _check(heatmap, region_mask):
    heatmap = np.asarray(heatmap, dtype=np.float64)
    region_mask = np.asarray(region_mask, dtype=bool)
    if heatmap.shape[-region_mask.ndim:] != region_mask.shape:
        raise ValueError(f"heatmap {heatmap.shape} and region mask {region_mask.shape} are not on one grid")
    return heatmap, region_mask


def pointing_game(heatmap, region_mask, tolerance: int = 0):
    """Does the heatmap's maximum fall inside the region? One bool, or one per map of a batch.

    ``tolerance`` (voxels) dilates the region first, as the original pointing game (Zhang et
    al. 2016) allows 15 pixels of slack (a cube of side 2 * tolerance + 1 around each
    region voxel); 0 means strictly inside. A constant map (no
    maximum, e.g. all zero) is a miss.
    """
    heatmap, region = _check(heatmap, region_mask)
    if tolerance:
        region = ndimage.binary_dilation(region, ndimage.generate_binary_structure(region.ndim, region.ndim),
                                         iterations=int(tolerance))
    batch = heatmap.ndim > region.ndim
    maps = heatmap.reshape((-1,) + region.shape) if batch else heatmap[None]
    flat = maps.reshape(len(maps), -1)
    hits = region.ravel()[flat.argmax(axis=1)] & (flat.max(axis=1) > flat.min(axis=1))
    return hits if batch else bool(hits[0])


def energy_inside(heatmap, region_mask):
    """Share of the heatmap's total (non-negative) energy inside the region, in [0, 1].

    One float, or one per map of a batch; NaN for an all-zero map.
    """
    heatmap, region = _check(heatmap, region_mask)
    batch = heatmap.ndim > region.ndim
    maps = np.clip(heatmap.reshape((-1,) + region.shape) if batch else heatmap[None], 0, None)
    total = maps.reshape(len(maps), -1).sum(axis=1)
    inside = maps[:, region].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)
    return share if batch else float(share[0])


def random_baseline(region_mask, n: int = 200, seed: int = 0, smooth_sigma: float = 0.0,
                    within=None) -> dict:
    """What heatmaps of pure noise score against ``region_mask``: the chance level.

    Draws ``n`` maps of independent uniform noise on the region's grid, Gaussian-smoothed by
    ``smooth_sigma`` voxels when > 0 (blobs the size of a coarse CAM cell, which makes the
    empirical rate noisier but not different in expectation), set to zero outside
    ``within`` when given (e.g. a brain mask: a stricter baseline that already "knows" where
    the brain is). Returns the empirical ``pointing_rate`` and mean ``energy_inside`` of
    those maps and their expectations: ``expected_pointing_rate`` = ``expected_energy_inside``
    = share of the allowed voxels that lie in the region.
    """
    region = np.asarray(region_mask, dtype=bool)
    allowed = np.ones_like(region) if within is None else np.asarray(within, dtype=bool)
    rng = np.random.default_rng(seed)
    hits, energy = [], []
    for _ in range(int(n)):
        m = rng.random(region.shape)
        if smooth_sigma and smooth_sigma > 0:
            m = ndimage.gaussian_filter(m, smooth_sigma)
            m = m - m.min()
        m = np.where(allowed, m, 0.0)
        hits.append(pointing_game(m, region))
        energy.append(energy_inside(m, region))
    share = float(region[allowed].mean()) if allowed.any() else 0.0
    return {"pointing_rate": float(np.mean(hits)), "energy_inside": float(np.nanmean(energy)),
            "expected_pointing_rate": share, "expected_energy_inside": share, "n": int(n),
            "smooth_sigma": float(smooth_sigma), "within": within is not None}


#: The one line a notebook prints when a dataset has nothing to score heatmaps against.
NO_GROUND_TRUTH = ("this dataset has no ground truth for {what} (only our generator writes {file}; a real "
                   "download has none): the maps are shown but not scored")


def check_against_region(maps: dict, region_mask, groups, within=None, n_random: int = 200, seed: int = 0,
                         n_boot: int = 1000) -> dict:
    """Score several kinds of heatmaps of the same images against one region, next to chance.

    ``maps`` is ``{name: (n, *grid) array}`` (e.g. Grad-CAM and CAM of the same subjects),
    ``groups`` the held-out unit of each map (subject IDs), ``within`` an optional mask for
    the stricter random baseline (:func:`random_baseline`). Returns ``scored``,
    ``skipped_reason`` (``None`` when scored), ``pointing_rate`` / ``pointing_rate_ci`` /
    ``energy_inside`` as ``{name: value}`` (the interval resamples ``groups``, see
    :func:`helpers.evaluation.bootstrap_ci`), ``random`` / ``random_brain`` (the two chance
    levels: ``pointing_rate``, ``energy_inside``), ``n_maps``, ``region_voxels`` and a
    ``table`` for printing. With ``region_mask=None`` (a dataset without ground truth,
    e.g. :func:`helpers.hcp.region_mask` on real data) nothing is scored: the same keys hold
    ``None`` and ``skipped_reason`` says why, so a notebook runs on without branching.
    """
    from .evaluation import bootstrap_ci

    names = list(maps)
    n = int(len(next(iter(maps.values())))) if maps else 0
    if region_mask is None:
        none = {name: None for name in names}
        chance = {"pointing_rate": None, "energy_inside": None}
        return {"scored": False, "pointing_rate": none, "pointing_rate_ci": dict(none), "energy_inside": dict(none),
                "random": dict(chance), "random_brain": dict(chance), "n_maps": n, "region_voxels": None,
                "table": None, "skipped_reason": NO_GROUND_TRUTH.format(what="the class-difference region",
                                                                       file="ground_truth.json")}
    region = np.asarray(region_mask, dtype=bool)
    groups = np.asarray(groups)
    rate, ci, energy = {}, {}, {}
    for name in names:
        hits = np.asarray(pointing_game(maps[name], region), dtype=float).reshape(-1)
        rate[name] = float(hits.mean()) if n else None
        ci[name] = bootstrap_ci(np.mean, groups, hits, n_boot=n_boot, seed=seed) if n else None
        energy[name] = float(np.nanmean(energy_inside(maps[name], region))) if n else None
    random = random_baseline(region, n=n_random, seed=seed)
    random_brain = random_baseline(region, n=n_random, seed=seed, within=within)
    table = pd.DataFrame({**{name: [rate[name], energy[name]] for name in names},
                          "random maps": [random["pointing_rate"], random["energy_inside"]],
                          "random maps in the brain": [random_brain["pointing_rate"], random_brain["energy_inside"]]},
                         index=["pointing rate", "energy inside"])
    return {"scored": True, "pointing_rate": rate, "pointing_rate_ci": ci, "energy_inside": energy,
            "random": random, "random_brain": random_brain, "n_maps": n, "region_voxels": int(region.sum()),
            "table": table, "skipped_reason": None}


def describe_region_check(check: dict, digits: int = 3) -> str:
    """Text of :func:`check_against_region`: the score table with the pointing rates' intervals,
    or the one line saying why nothing could be scored."""
    if not check["scored"]:
        return check["skipped_reason"]
    from .evaluation import format_ci

    lines = [check["table"].round(digits).to_string()]
    lines += [f"{name} pointing rate {format_ci(check['pointing_rate'][name], check['pointing_rate_ci'][name], digits)}"
              f" over {check['n_maps']} maps" for name in check["pointing_rate"]]
    name = next(iter(check["pointing_rate"]))
    ci, chance = check["pointing_rate_ci"][name], check["random_brain"]["pointing_rate"]
    if ci is None:
        lines.append("too few maps for an interval: no verdict against chance")
    elif ci[0] > chance:
        lines.append(f"the {name} interval lies above the in-brain chance level ({chance:.{digits}f}): "
                     "the maps point at the region more often than noise does")
    else:
        lines.append(f"the {name} interval reaches down to the in-brain chance level ({chance:.{digits}f}): "
                     "no evidence that the maps point at the region")
    return "\n".join(lines)


def describe_head_ct_check(check: dict, digits: int = 2) -> str:
    """One line for :func:`head_ct_check`: why nothing ran, why nothing was scored, or the scores."""
    if check["status"] != "ok":
        return check["status"]
    if not check["scored"]:
        return f"{check['n_images']} held-out slices with a hemorrhage: {check['skipped_reason']}"
    return (f"{check['n_images']} held-out slices with a hemorrhage box: pointing rate "
            f"{check['pointing_rate']:.{digits}f} (random {check['random_pointing_rate']:.3f}, random inside the "
            f"head {check['random_head_pointing_rate']:.3f}), energy inside {check['energy_inside']:.{digits}f}")


def box_masks(boxes, n_images: int, shape) -> np.ndarray:
    """Boolean masks ``(n_images, *shape)``: for each image the union of its boxes.

    ``boxes`` has one row per box with ``row`` (the image's position, 0 … n_images-1) and
    ``clean_row0, clean_col0, clean_row1, clean_col1`` in pixels (floats, end exclusive),
    as :func:`helpers.rsna.lesion_boxes` returns them. A pixel belongs to a box when it
    overlaps it, so even a box smaller than a pixel marks one; a box outside the image
    marks nothing.
    """
    masks = np.zeros((int(n_images),) + tuple(int(s) for s in shape), dtype=bool)
    h, w = masks.shape[1:]
    for box in boxes.itertuples(index=False):
        r0, c0 = int(np.floor(box.clean_row0)), int(np.floor(box.clean_col0))
        r1 = max(int(np.ceil(box.clean_row1)), r0 + 1)          # at least one pixel ...
        c1 = max(int(np.ceil(box.clean_col1)), c0 + 1)
        rows = slice(min(max(r0, 0), h), min(max(r1, 0), h))     # ... then clipped to the image
        cols = slice(min(max(c0, 0), w), min(max(c1, 0), w))
        masks[int(box.row), rows, cols] = True
    return masks


def head_ct_check(model_folder, name: str = "head_ct_cnn", layer_name: str | None = None,
                  batch_size: int = 32, max_images: int = 1000) -> dict:
    """Grad-CAM of notebook 04's head-CT classifier, scored against the hemorrhage boxes.

    Loads the model saved by 04 (:func:`helpers.training.save_classifier`), rebuilds its
    inputs exactly (the cleaned slices of the same data root, same size and CT windows),
    keeps the **held-out test slices** that contain a hemorrhage and have ground-truth
    boxes (synthetic data only), and computes Grad-CAM for the class "any hemorrhage".

    Returns ``status``: "ok", or why nothing was computed (no saved model; a model that
    cannot be loaded or does not match its record; a data root that cannot be read; no
    held-out bleed with a box). This part is optional, so none of these raises. When ok,
    also: ``images`` (HU), ``maps``, ``prob`` (the model's P(hemorrhage)), ``image_ids``,
    ``n_images``, ``scored`` and ``skipped_reason``. Without ground-truth boxes (real data:
    ``ground_truth_lesions.csv`` is generator-only) the maps of the held-out bleeds are
    still computed (at most ``max_images`` slices, evenly spaced, so that memory stays
    bounded on the real set), ``scored`` is False, ``skipped_reason`` says why and the scores below are
    ``None``. When scored: ``masks`` (the boxes), per-image ``pointing``
    and ``energy``, their means ``pointing_rate`` / ``energy_inside``,
    ``data_root``, and two chance levels: ``random_pointing_rate`` (uniform noise over the
    image: the boxes' mean share of it) and ``random_head_pointing_rate`` (noise only
    inside the head, > -500 HU: the stricter one).
    """
    from . import ct, rsna, training

    folder = Path(model_folder)
    try:
        loaded = training.load_classifier(folder, name)
    except Exception as err:  # noqa: BLE001 - an optional part: report, do not stop the notebook
        return {"status": f"cannot use the saved head-CT model in {folder}: {type(err).__name__}: {err}"}
    if loaded is None:
        return {"status": f"no saved head-CT model in {folder} (run notebook 04 first)"}
    model, info = loaded
    root, size = Path(info["data_root"]), int(info["image_size"])
    try:
        hu, clean = rsna.load_clean(root, image_size=size, dtype=np.int16)
    except Exception as err:  # noqa: BLE001
        return {"status": f"cannot read the head-CT data {root} that 04 used: {type(err).__name__}: {err}"}
    rows = np.flatnonzero(clean["image_id"].isin(set(info["test_image_ids"])).to_numpy()
                          & (clean["any"].to_numpy() == 1))
    try:
        boxes = rsna.lesion_boxes(root, clean.iloc[rows].reset_index(drop=True), size)
    except FileNotFoundError:
        boxes = None                                   # real data: maps yes, scores no
    if boxes is not None:
        with_box = np.unique(boxes["row"].to_numpy()).astype(int)
        if len(with_box) == 0:
            return {"status": "no held-out hemorrhage slice has a ground-truth box"}
        boxes = boxes.assign(row=np.searchsorted(with_box, boxes["row"].to_numpy()))
        rows = rows[with_box]
    elif len(rows) == 0:
        return {"status": "no held-out slice with a hemorrhage to explain"}
    if len(rows) > max_images:       # the real set holds ~16,000 such slices: an evenly spaced sample
        keep = np.unique(np.linspace(0, len(rows) - 1, max_images).astype(int))
        if boxes is not None:
            boxes = boxes[np.isin(boxes["row"].to_numpy(), keep)]
            boxes = boxes.assign(row=np.searchsorted(keep, boxes["row"].to_numpy()))
        rows = rows[keep]
    images = hu[rows].astype(np.float32)
    x = ct.window_stack_uint8(images, info["windows"]).astype(np.float32) / 255   # 04's input, scaled as make_dataset does
    maps = grad_cam(model, x, class_index=1, layer_name=layer_name, batch_size=batch_size)
    prob = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))[:, 0]
    common = {"status": "ok", "images": images, "maps": maps, "prob": prob,
              "image_ids": clean["image_id"].iloc[rows].tolist(), "n_images": int(len(rows)), "data_root": str(root)}
    if boxes is None:
        return {**common, "scored": False, "masks": None, "pointing": None, "energy": None, "pointing_rate": None,
                "energy_inside": None, "random_pointing_rate": None, "random_head_pointing_rate": None,
                "skipped_reason": NO_GROUND_TRUTH.format(what="the hemorrhage boxes",
                                                         file="ground_truth_lesions.csv")}
    masks = box_masks(boxes, len(rows), images.shape[1:])
    head = images > -500
    pointing = np.array([pointing_game(m, k) for m, k in zip(maps, masks)])
    energy = np.array([energy_inside(m, k) for m, k in zip(maps, masks)], dtype=float)
    return {**common, "scored": True, "skipped_reason": None, "masks": masks, "pointing": pointing, "energy": energy,
            "pointing_rate": float(pointing.mean()), "energy_inside": float(np.nanmean(energy)),
            "random_pointing_rate": float(masks.mean()),
            "random_head_pointing_rate": float(np.mean([(k & h).sum() / max(h.sum(), 1)
                                                        for k, h in zip(masks, head)]))}


def plot_head_ct_check(check: dict, n: int = 6, size: float = 2.2, axes=None, ax=None):
    """Head-CT slices (brain window) with their Grad-CAM, its peak (+) and the boxes (green, when known).

    The first ``n`` slices of :func:`head_ct_check`'s result, in one row of new axes, or in
    ``axes`` (a sequence of at least ``n`` matplotlib axes). Returns the figure.
    """
    axes = ax if ax is not None else axes   # ax=: the package's one name
    import matplotlib.pyplot as plt

    from . import ct, plotting

    k = min(int(n), check["n_images"])
    if axes is None:
        fig, grid = plt.subplots(1, k, figsize=(size * k, size * 1.15), squeeze=False)
        axes = grid[0]
    else:
        axes = list(np.ravel(axes))
        fig = axes[0].figure
    for ax, i in zip(axes, range(k)):
        peak = np.unravel_index(int(np.argmax(check["maps"][i])), check["maps"][i].shape)
        scored = check.get("masks") is not None
        verdict = ("hit" if check["pointing"][i] else "miss") if scored else "not scored"
        plotting.overlay(ct.named_window(check["images"][i], "brain"), mask=check["masks"][i] if scored else None,
                         heatmap=check["maps"][i], points=np.array(peak), ax=ax, mask_color="lime", alpha=0.35,
                         title=f"p={check['prob'][i]:.2f} {verdict}")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- plots
def _nifti(array, affine):
    import nibabel as nib

    return nib.Nifti1Image(np.asarray(array, dtype=np.float32), np.asarray(affine, dtype=float))


def peak_world(heatmap, affine) -> np.ndarray:
    """World coordinates (mm) of a 3-D heatmap's maximum."""
    idx = np.unravel_index(int(np.argmax(heatmap)), np.shape(heatmap))
    return (np.asarray(affine) @ np.r_[idx, 1.0])[:3]


def plot_cam_orthoslices(volume, heatmap, affine, region_mask=None, axes=None, title: str | None = None,
                         cut_coords=None, threshold: float = 0.2, display_mode: str = "ortho",
                         colorbar: bool = True, cmap: str = "hot", figsize=(7, 2.6), ax=None):
    """Overlay a 3-D heatmap on its volume: three orthogonal slices in world coordinates (nilearn).

    ``volume`` and ``heatmap`` are ``(x, y, z)`` arrays on the grid ``affine`` maps to world
    RAS millimetres; ``region_mask`` (same grid) is drawn as a green contour. The cut goes
    through the heatmap maximum unless ``cut_coords`` (mm) is given; heat below
    ``threshold`` is transparent. Returns the matplotlib figure.
    """
    axes = ax if ax is not None else axes   # ax=: the package's one name
    import matplotlib.pyplot as plt
    from nilearn import plotting

    if axes is None:
        fig, axes = plt.subplots(figsize=figsize)
    fig = axes.figure
    if cut_coords is None and display_mode == "ortho":
        cut_coords = peak_world(heatmap, affine)
    display = plotting.plot_stat_map(
        _nifti(heatmap, affine), bg_img=_nifti(volume, affine), axes=axes, cut_coords=cut_coords,
        display_mode=display_mode, threshold=threshold, vmax=1.0, cmap=cmap, colorbar=colorbar,
        title=title, annotate=True, draw_cross=False, black_bg=True, resampling_interpolation="continuous")
    if region_mask is not None and np.any(region_mask):
        display.add_contours(_nifti(np.asarray(region_mask, float), affine), levels=[0.5], colors="lime",
                             linewidths=1.0)
    return fig


def plot_cam_montage(volumes, heatmaps, affine, titles: Sequence[str] | None = None, region_mask=None,
                     ncols: int = 4, display_mode: str = "z", cut_coord: float | None = None,
                     threshold: float = 0.2, size: float = 2.4, axes=None, ax=None):
    """A grid of subjects, one slice each (``display_mode`` "x", "y" or "z"), heat on anatomy.

    All panels cut at the same world coordinate ``cut_coord`` (mm; default: through the
    centre of ``region_mask`` if given, else the grid centre), so subjects are comparable.
    Returns the figure.
    """
    axes = ax if ax is not None else axes   # ax=: the package's one name
    import matplotlib.pyplot as plt
    from nilearn import plotting

    n = len(volumes)
    if axes is None:
        nrows = int(np.ceil(n / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    axes = np.ravel(axes)
    fig = axes[0].figure
    axis = "xyz".index(display_mode)
    if cut_coord is None:
        grid = np.asarray(np.shape(volumes[0]), float)
        centre = (np.argwhere(np.asarray(region_mask, bool)).mean(axis=0)
                  if region_mask is not None and np.any(region_mask) else (grid - 1) / 2)
        cut_coord = float((np.asarray(affine) @ np.r_[centre, 1.0])[axis])
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        display = plotting.plot_stat_map(
            _nifti(heatmaps[i], affine), bg_img=_nifti(volumes[i], affine), axes=ax, display_mode=display_mode,
            cut_coords=[cut_coord], threshold=threshold, vmax=1.0, cmap="hot", colorbar=False,
            annotate=False, black_bg=True, title=None)
        if region_mask is not None and np.any(region_mask):
            display.add_contours(_nifti(np.asarray(region_mask, float), affine), levels=[0.5], colors="lime",
                                 linewidths=0.8)
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize=8)
    return fig
