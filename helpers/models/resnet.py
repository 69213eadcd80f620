"""A small ResNet-style classifier, small enough to train from scratch on a laptop CPU.

``build_resnet((128, 128, 3))`` returns a Keras model: a strided 3×3 stem, then stages of
*basic residual blocks* (two 3×3 convolutions with batch normalisation, added to a shortcut
that is the identity, or a strided 1×1 convolution when the shape changes; He et al. 2016),
global average pooling and a dense head. Each stage after the first halves the resolution
and its ``widths`` entry sets the channels.

With the defaults (``widths=(16, 32, 64)``, two blocks per stage) the model has ≈ 0.18 M
parameters; the head is a sigmoid for ``n_outputs`` independent binary labels (e.g. ``any``
or the six hemorrhage labels), trained with binary cross-entropy.
"""
from __future__ import annotations

import helpers  # noqa: F401  (TF logging variables before Keras is imported)


def _conv_bn(x, filters: int, kernel: int, strides: int, name: str, relu: bool = True,
             weight_decay: float = 0.0, bn_momentum: float = 0.9):
    import keras
    from keras import layers

    reg = keras.regularizers.L2(weight_decay) if weight_decay else None
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      kernel_initializer="he_normal", kernel_regularizer=reg, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def residual_block(x, filters: int, strides: int = 1, name: str = "block", weight_decay: float = 0.0,
                   bn_momentum: float = 0.9):
    """One basic residual block: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    The shortcut is ``x`` itself when ``strides == 1`` and the channels match, otherwise a
    strided 1×1 convolution with batch normalisation (a "projection" shortcut).
    """
    from keras import layers

    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, f"{name}_proj", False, weight_decay, bn_momentum)
    y = _conv_bn(x, filters, 3, strides, f"{name}_a", True, weight_decay, bn_momentum)
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", False, weight_decay, bn_momentum)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def build_resnet(input_shape=(128, 128, 3), widths=(16, 32, 64), blocks_per_stage=2, n_outputs: int = 1,
                 stem_strides: int = 2, dropout: float = 0.0, weight_decay: float = 0.0,
                 bn_momentum: float = 0.9, output_activation: str = "sigmoid", name: str = "small_resnet"):
    """Build a small ResNet-style classifier (not compiled).

    Parameters
    ----------
    input_shape : tuple
        ``(height, width, channels)`` of the input, e.g. ``(128, 128, 3)`` for three CT
        windows stacked as channels. Height and width may be ``None`` (any size).
    widths : sequence of int
        Channels of each stage; stage ``i > 0`` halves the resolution.
    blocks_per_stage : int or sequence of int
        Residual blocks per stage (one int for all stages).
    n_outputs : int
        Units of the head (one per binary label).
    stem_strides : int
        Stride of the 3×3 stem convolution (2 halves the input resolution once more, which
        keeps a 128-px input affordable on a CPU).
    dropout : float
        Dropout rate before the head (0 disables).
    weight_decay : float
        L2 penalty on the convolution kernels (0 disables).
    bn_momentum : float
        Momentum of the batch-norm moving statistics. Keras' default 0.99 averages over
        ~100 steps; a small dataset trains for few steps per epoch, so 0.9 lets the
        statistics used at evaluation catch up with the weights.
    output_activation : str
        ``"sigmoid"`` (probabilities, the default) or ``None`` for logits.

    Returns
    -------
    keras.Model
        Input ``input_shape``, output ``(batch, n_outputs)``.
    """
    import keras
    from keras import layers

    widths = tuple(int(w) for w in widths)
    if isinstance(blocks_per_stage, int):
        blocks_per_stage = (blocks_per_stage,) * len(widths)
    if len(blocks_per_stage) != len(widths):
        raise ValueError("blocks_per_stage needs one entry per width")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _conv_bn(inputs, widths[0], 3, stem_strides, "stem", True, weight_decay, bn_momentum)
    for s, (width, blocks) in enumerate(zip(widths, blocks_per_stage)):
        for b in range(blocks):
            strides = 2 if (s > 0 and b == 0) else 1
            x = residual_block(x, width, strides, f"stage{s + 1}_block{b + 1}", weight_decay, bn_momentum)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_outputs, activation=output_activation, name="head")(x)
    return keras.Model(inputs, outputs, name=name)
