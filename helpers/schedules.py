"""Learning-rate schedules.

The "poly" schedule of the segmentation literature (DeepLab, and the seed study):
``lr(iter) = lr0 · (1 - iter / max_iter) ** power`` with ``power = 0.9``, falling smoothly
to ``end_lr`` at ``max_iter`` and staying there.
"""
from __future__ import annotations

import helpers  # noqa: F401  (TF logging variables before keras is imported)

# isort: split
import keras
import numpy as np


def poly_lr(step, initial_lr: float, max_steps: int, power: float = 0.9, end_lr: float = 0.0):
    """The poly schedule as plain NumPy (scalars or arrays of steps)."""
    frac = np.clip(np.asarray(step, float) / float(max_steps), 0.0, 1.0)
    return (initial_lr - end_lr) * (1.0 - frac) ** power + end_lr


@keras.saving.register_keras_serializable(package="helpers")
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Keras schedule ``lr0 · (1 - step / max_steps) ** power`` (+ ``end_lr``); pass it as an
    optimizer's ``learning_rate``. ``max_steps`` counts optimizer steps (batches), i.e.
    ``epochs * steps_per_epoch``."""

    def __init__(self, initial_lr: float, max_steps: int, power: float = 0.9, end_lr: float = 0.0):
        self.initial_lr, self.max_steps, self.power, self.end_lr = float(initial_lr), int(max_steps), float(power), float(end_lr)

    def __call__(self, step):
        frac = keras.ops.clip(keras.ops.cast(step, "float32") / float(self.max_steps), 0.0, 1.0)
        return (self.initial_lr - self.end_lr) * keras.ops.power(1.0 - frac, self.power) + self.end_lr

    def get_config(self):
        return {"initial_lr": self.initial_lr, "max_steps": self.max_steps, "power": self.power,
                "end_lr": self.end_lr}
