"""A small keypoint-regression CNN, in the spirit of the facial-keypoints tutorial.

Three convolution blocks (convolution, max-pooling, dropout that grows block by block), then
dense layers with dropout 0.5 and a linear output of ``2 × n_keypoints`` numbers: the
``(row, col)`` of each keypoint scaled to ``[-1, 1]`` (see :mod:`helpers.keypoints`).
Trained with the mean squared error.
"""
from __future__ import annotations

import helpers  # noqa: F401  (TF environment variables before keras)


def build_keypoint_cnn(input_shape=(96, 96, 2), n_keypoints: int = 1, filters=(16, 32, 64),
                       dropouts=(0.1, 0.2, 0.3), dense_units=(256, 128), dense_dropout: float = 0.5,
                       learning_rate: float = 1e-3, name: str = "keypoint_cnn"):
    """Build and compile the keypoint CNN.

    Parameters
    ----------
    input_shape : ``(S, S, C)``
        Network input: ``C`` channels (frame and motion, or the frame alone).
    n_keypoints : int
        Output size is ``2 * n_keypoints`` (``row, col`` pairs in ``[-1, 1]``).
    filters, dropouts : sequences of the same length
        One block per entry: ``Conv2D(f, 3, relu)`` → ``MaxPooling2D(2)`` → ``Dropout(d)``.
    dense_units, dense_dropout
        Hidden dense layers, each followed by ``Dropout(dense_dropout)``.
    learning_rate : float
        Adam step size; loss is MSE, metric the mean absolute error (in target units).
    """
    import keras
    from keras import layers

    if len(filters) != len(dropouts):
        raise ValueError("filters and dropouts need one entry per block")
    inputs = keras.Input(shape=tuple(input_shape), name="frames")
    x = inputs
    for i, (f, d) in enumerate(zip(filters, dropouts)):
        x = layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
        x = layers.Dropout(d, name=f"dropout{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense_units):
        x = layers.Dense(units, activation="relu", name=f"dense{i + 1}")(x)
        x = layers.Dropout(dense_dropout, name=f"dense_dropout{i + 1}")(x)
    outputs = layers.Dense(2 * n_keypoints, name="keypoints")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse", metrics=["mae"])
    return model
