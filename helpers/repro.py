"""Reproducibility: one call at the top of every notebook.

``setup(seed)`` seeds Python, NumPy and (when asked) Keras/TensorFlow, turns on
TensorFlow's op determinism and returns a short environment summary, which the notebook
prints, so every executed copy records the versions and hardware it ran on.
"""
from __future__ import annotations

import os
import platform
import random
import sys
from importlib import metadata

import numpy as np

import helpers  # noqa: F401  (sets the TF logging variables before any TF import)

STACK = ["numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "pydicom", "nibabel",
         "SimpleITK", "nilearn", "tensorflow-cpu", "tensorflow", "keras"]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def setup(seed: int = 0, keras: bool = True) -> str:
    """Seed everything and return an environment summary (print it in the notebook).

    Parameters
    ----------
    seed : int
        Seeds Python's ``random``, NumPy's global generator and, with ``keras=True``,
        Keras (``keras.utils.set_random_seed``, which also seeds TensorFlow).
    keras : bool
        Import Keras, seed it and enable ``tf.config.experimental.enable_op_determinism``.
        Notebooks that train no network pass ``False`` and skip the ~5 s import.
    """
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    lines = [f"seed            {seed}",
             f"python          {platform.python_version()} ({sys.executable})",
             f"platform        {platform.platform()}"]
    versions = {d: _version(d) for d in STACK}
    lines.append("packages        " + ", ".join(f"{d} {v}" for d, v in versions.items() if v))
    lines.append(f"cpu cores       {os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})")
    if keras:
        import keras as _keras
        import tensorflow as tf

        _keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        gpus = tf.config.list_physical_devices("GPU")
        lines.append(f"keras backend   {_keras.backend.backend()}; op determinism on")
        lines.append(f"tf threads      intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}, "
                     f"inter-op {tf.config.threading.get_inter_op_parallelism_threads() or 'auto'}")
        lines.append(f"gpus            {[g.name for g in gpus] or 'none (CPU)'}")
    return "\n".join(lines)


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux ``ru_maxrss``)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
