"""Helpers for the medical-imaging deep-learning series.

The notebooks import from here (``from helpers import dicom, repro``); every function that
is more than a few lines lives in one of these modules, with unit tests under ``tests/``.

Importing the package sets the TensorFlow logging variables *before* TensorFlow can be
imported, so C++ log lines never end up in notebook outputs.
"""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # 3: also the spurious E0000 lines of tf.data
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
