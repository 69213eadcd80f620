"""U-Net (Ronneberger et al., 2015) as a plain Keras Functional model, with Dice losses.

``build_unet((96, 96, 1), depth=4, base_filters=16)``: an encoder of ``depth`` blocks
(two 3×3 convolutions, optional batch norm, ReLU; 2×2 max-pooling; filters doubling), a
bottleneck, and a decoder that up-samples (transposed convolution or bilinear resize +
convolution), concatenates the encoder's skip connection and convolves again. The head is
a 1×1 convolution with a sigmoid (``n_classes=1``, binary) or softmax (``n_classes>1``).
Input sides must be divisible by ``2 ** depth``.
"""
from __future__ import annotations

import helpers  # noqa: F401  (TF logging variables before keras is imported)

# isort: split

import keras
from keras import layers, ops


def _conv_block(x, filters: int, batch_norm: bool, dropout: float, name: str, momentum: float = 0.9):
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return x


def build_unet(input_shape=(96, 96, 1), depth: int = 4, base_filters: int = 16, upsampling: str = "transpose",
               batch_norm: bool = True, dropout: float = 0.0, n_classes: int = 1, bn_momentum: float = 0.9,
               name: str = "unet") -> keras.Model:
    """Build a U-Net.

    Parameters
    ----------
    input_shape : (H, W, C); H and W divisible by ``2 ** depth``.
    depth : number of down-sampling steps.
    base_filters : filters of the first block (doubling at each level).
    upsampling : ``"transpose"`` (learned 2×2 transposed convolution) or ``"bilinear"``
        (fixed bilinear up-sampling followed by a 3×3 convolution).
    batch_norm, dropout : regularisation in every block (dropout only in the bottleneck
        and decoder, where the feature maps are widest).
    n_classes : 1 → one sigmoid channel (binary); >1 → softmax over classes.
    bn_momentum : momentum of the batch-norm moving statistics. 0.9 rather than Keras'
        0.99: with a few hundred training steps the 0.99 averages still remember their
        initial values, and validation/inference (which use them) lag far behind training.
    """
    if upsampling not in ("transpose", "bilinear"):
        raise ValueError("upsampling must be 'transpose' or 'bilinear'")
    h, w = input_shape[:2]
    if h % 2**depth or w % 2**depth:
        raise ValueError(f"input {h}×{w} is not divisible by 2**depth = {2**depth}")
    inputs = keras.Input(shape=input_shape, name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = _conv_block(x, base_filters * 2**level, batch_norm, 0.0, f"enc{level}", bn_momentum)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _conv_block(x, base_filters * 2**depth, batch_norm, dropout, "bottleneck", bn_momentum)
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        if upsampling == "transpose":
            x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level}")(x)
        else:
            x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}")(x)
            x = layers.Conv2D(filters, 3, padding="same", name=f"up{level}_conv")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, filters, batch_norm, dropout if level > 0 else 0.0, f"dec{level}", bn_momentum)
    activation = "sigmoid" if n_classes == 1 else "softmax"
    outputs = layers.Conv2D(n_classes, 1, activation=activation, name="mask")(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="helpers")
def dice_coefficient(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice over the whole batch, ``(2·Σ t·p + smooth) / (Σ t + Σ p + smooth)``."""
    t = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    p = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    return (2.0 * ops.sum(t * p) + smooth) / (ops.sum(t) + ops.sum(p) + smooth)


@keras.saving.register_keras_serializable(package="helpers")
def dice_loss(y_true, y_pred):
    """``1 - Dice`` with smoothing 1 (the smoothing keeps empty slices from dividing by zero)."""
    return 1.0 - dice_coefficient(y_true, y_pred, smooth=1.0)


@keras.saving.register_keras_serializable(package="helpers")
def bce_dice_loss(y_true, y_pred):
    """Binary cross-entropy + Dice loss: BCE gives every pixel a gradient early in training,
    Dice keeps a tiny foreground from being swamped by the background."""
    bce = ops.mean(keras.losses.binary_crossentropy(ops.cast(y_true, "float32"), y_pred))
    return bce + dice_loss(y_true, y_pred)


LOSSES = {"dice": dice_loss, "bce_dice": bce_dice_loss}


def training_callbacks(checkpoint_path, patience: int = 5, monitor: str = "val_loss") -> list:
    """ModelCheckpoint (best ``monitor``, whole model as ``.keras``) and EarlyStopping
    (restores the best weights) — the two callbacks every training run here uses."""
    return [keras.callbacks.ModelCheckpoint(str(checkpoint_path), monitor=monitor, save_best_only=True),
            keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True)]


def predict_proba(model: keras.Model, images, batch_size: int = 32):
    """Foreground probabilities (N, H, W) float32 from ``images`` (N, H, W[, C]), in batches.

    ``images`` may be an on-disk array (:class:`helpers.shards.ShardedArray`): it is read one
    batch at a time.

    Calls the model directly (``training=False``) rather than ``model.predict``, which
    builds a ``tf.data`` pipeline for a few dozen images.
    """
    import numpy as np

    if isinstance(images, np.ndarray) or not hasattr(images, "take"):
        images = np.asarray(images, "float32")
    out = []
    for i in range(0, len(images), batch_size):      # an on-disk array is read one batch at a time
        batch = np.asarray(images[i:i + batch_size], "float32")
        out.append(ops.convert_to_numpy(model(batch[..., None] if batch.ndim == 3 else batch, training=False)))
    probs = np.concatenate(out) if out else np.zeros(tuple(images.shape[:3]) + (1,), "float32")
    return probs[..., 0].astype("float32")


def predict_masks(model: keras.Model, images, batch_size: int = 32, threshold: float = 0.5):
    """Binary masks (N, H, W) bool: :func:`predict_proba` above ``threshold``."""
    return predict_proba(model, images, batch_size) > threshold
