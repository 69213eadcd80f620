"""Training utilities: learning-rate range test, one-cycle schedule, tf.data input, throughput.

* :class:`LRFinder` — Leslie Smith's learning-rate range test (Smith 2017, "Cyclical
  learning rates"; popularised by fastai's ``lr_find``) as a Keras callback: the learning
  rate grows exponentially from ``min_lr`` to ``max_lr`` over ``steps`` batches while the
  batch loss is recorded; training stops early when the loss diverges, and the model's
  weights and the optimizer's state are restored afterwards, so the test leaves the model
  untouched. :func:`suggest_lr` picks the rate at the steepest descent of the smoothed loss
  curve; :func:`lr_range_test` runs the whole test in one call; :func:`plot_lr_finder` draws it.
* :class:`OneCycle` — the one-cycle policy (Smith & Topin 2018) as a callback: the learning
  rate warms up from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
  the steps, then anneals (cosine) to ``max_lr / (div_factor * final_div_factor)``.
  :func:`one_cycle_lr` is the same curve as a plain function. Momentum is *not* cycled:
  Keras 3 optimizers compile ``beta_1``/``momentum`` into the training step as constants,
  only the learning rate is a variable that a callback may change.
* :func:`make_dataset` — a ``tf.data`` pipeline from in-memory arrays or streamed from on-disk
  shards: preprocess, shuffle (seeded, reshuffled each epoch), optional augmentation
  (training data only), batch, prefetch, so that the next batch is ready while the model
  computes the current one.
* :func:`training_throughput` and :func:`input_pipeline_overhead` — images per second, and
  how much the pipeline adds on top of the model's own step time.
"""
from __future__ import annotations

import helpers  # noqa: F401  (TF logging variables before Keras is imported)

# isort: split

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from . import shards


# ----------------------------------------------------------------------------- LR finder
def exponential_lrs(min_lr: float, max_lr: float, steps: int) -> np.ndarray:
    """``steps`` learning rates growing geometrically from ``min_lr`` to ``max_lr`` (inclusive)."""
    if not 0 < min_lr < max_lr:
        raise ValueError("need 0 < min_lr < max_lr")
    if steps < 2:
        raise ValueError("need at least 2 steps")
    return min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))


def smooth(values: Sequence[float], beta: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (as in fastai's ``lr_find``)."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * float(v)
        out.append(avg / (1 - beta ** i))
    return np.asarray(out)


def suggest_lr(lrs: Sequence[float], losses: Sequence[float], beta: float = 0.9, skip_start: int = 5,
               skip_end: int = 1) -> float:
    """The learning rate at the steepest descent of the smoothed loss vs ``log10(lr)``.

    Only the part of the curve before the smoothed loss's minimum is searched (past the
    minimum the loss is rising or diverging). ``skip_start`` first points are ignored
    (the smoothing has not settled there). Returns ``nan`` with too few points.
    """
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    keep = np.isfinite(losses)
    lrs, losses = lrs[keep], losses[keep]
    if len(lrs) < skip_start + skip_end + 3:
        return float("nan")
    smoothed = smooth(losses, beta)
    lrs, smoothed = lrs[skip_start:len(lrs) - skip_end], smoothed[skip_start:len(smoothed) - skip_end]
    stop = int(np.argmin(smoothed)) + 1
    if stop < 3:
        return float(lrs[max(stop - 1, 0)])
    slope = np.gradient(smoothed[:stop], np.log10(lrs[:stop]))
    return float(lrs[int(np.argmin(slope))])


class LRFinder(keras.callbacks.Callback):
    """Learning-rate range test as a Keras callback (use with ``model.fit``).

    The learning rate of batch ``i`` is ``min_lr * (max_lr / min_lr) ** (i / (steps - 1))``.
    After each batch the *batch* loss is recorded (recovered exactly from Keras' running
    mean). Training stops after ``steps`` batches, or as soon as the loss exceeds
    ``stop_factor`` × the best smoothed loss (divergence). At the end of training the model's
    weights (including batch-norm statistics), the optimizer's state and its learning rate
    are restored, so the model can be trained normally afterwards.

    Attributes after the run: ``lrs``, ``losses`` (lists), ``suggestion`` (float, see
    :func:`suggest_lr`).
    """

    def __init__(self, min_lr: float = 1e-6, max_lr: float = 1.0, steps: int = 200, stop_factor: float = 4.0,
                 beta: float = 0.9, restore: bool = True):
        super().__init__()
        self.schedule = exponential_lrs(min_lr, max_lr, steps)
        self.steps, self.stop_factor, self.beta, self.restore = steps, stop_factor, beta, restore
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.suggestion = float("nan")

    # Keras reports the running mean of the loss over the epoch; the loss tracker's total and
    # count give each batch's own loss exactly, whatever the batch sizes.
    def _tracker(self):
        for metric in self.model.metrics:
            if metric.name == "loss" and hasattr(metric, "total") and hasattr(metric, "count"):
                return metric
        return None

    def _batch_loss(self, logs) -> float:
        tracker = self._tracker()
        if tracker is not None:
            total, count = float(tracker.total.numpy()), float(tracker.count.numpy())
            d_total, d_count = total - self._prev[0], count - self._prev[1]
            self._prev = (total, count)
            if d_count > 0:
                return d_total / d_count
        mean, i = float(logs["loss"]), self._batch_in_epoch  # fallback: equal batch sizes
        loss = (i + 1) * mean - i * self._prev_mean
        self._prev_mean = mean
        return loss

    def on_train_begin(self, logs=None):
        self.lrs, self.losses, self.suggestion = [], [], float("nan")
        self._best, self._avg = math.inf, 0.0
        self._weights = self.model.get_weights()
        opt = self.model.optimizer
        self._initial_lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
        self._opt_state = {id(v): v.numpy() for v in opt.variables}

    def on_epoch_begin(self, epoch, logs=None):
        self._prev, self._prev_mean, self._batch_in_epoch = (0.0, 0.0), 0.0, 0

    def on_train_batch_begin(self, batch, logs=None):
        step = len(self.lrs)
        self.model.optimizer.learning_rate = float(self.schedule[min(step, self.steps - 1)])

    def on_train_batch_end(self, batch, logs=None):
        loss = self._batch_loss(logs or {})
        self._batch_in_epoch += 1
        self.lrs.append(float(self.schedule[min(len(self.lrs), self.steps - 1)]))
        self.losses.append(loss)
        n = len(self.losses)
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smoothed = self._avg / (1 - self.beta ** n)
        if not math.isfinite(loss) or (n > 5 and smoothed > self.stop_factor * self._best):
            self.model.stop_training = True
        self._best = min(self._best, smoothed)
        if n >= self.steps:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.suggestion = suggest_lr(self.lrs, self.losses, self.beta)
        if not self.restore:
            return
        self.model.set_weights(self._weights)
        opt = self.model.optimizer
        for v in opt.variables:  # slots created during the test go back to their initial zeros
            v.assign(self._opt_state.get(id(v), np.zeros(v.shape, v.dtype)))
        opt.learning_rate = self._initial_lr


def lr_range_test(model, dataset, min_lr: float = 1e-6, max_lr: float = 1.0, steps: int = 200,
                  **kwargs) -> LRFinder:
    """Run the range test on a compiled ``model`` over ``steps`` batches of ``dataset``.

    ``dataset`` is a batched ``tf.data.Dataset`` (repeated as needed). The model is left as
    it was. Returns the :class:`LRFinder` (``lrs``, ``losses``, ``suggestion``).
    """
    finder = LRFinder(min_lr, max_lr, steps, **kwargs)
    model.fit(dataset.repeat(), steps_per_epoch=steps, epochs=1, callbacks=[finder], verbose=0, shuffle=False)
    return finder


def plot_lr_finder(finder: LRFinder | None = None, lrs=None, losses=None, suggestion: float | None = None,
                   beta: float = 0.9, ax=None):
    """Loss vs learning rate (log scale), raw and smoothed, with the suggestion marked."""
    import matplotlib.pyplot as plt

    if finder is not None:
        lrs, losses, suggestion = finder.lrs, finder.losses, finder.suggestion
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    smoothed = smooth(losses, beta)
    ax.plot(lrs, losses, color="0.75", lw=1, label="batch loss")
    ax.plot(lrs, smoothed, color="tab:blue", lw=2, label="smoothed")
    if suggestion is not None and np.isfinite(suggestion):
        ax.axvline(suggestion, color="tab:red", ls="--", label=f"steepest descent: {suggestion:.2g}")
    ax.set_xscale("log")
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size:  # keep the interesting range in view when the loss explodes at the end
        lo, hi = finite.min(), min(finite.max(), finite[0] * 1.5 if finite[0] > 0 else finite.max())
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("Learning-rate range test")
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


# ----------------------------------------------------------------------------- one-cycle
def one_cycle_lr(step, total_steps: int, max_lr: float, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4):
    """The one-cycle learning rate at ``step`` (int or array), ``0 <= step < total_steps``.

    Cosine warm-up from ``max_lr / div_factor`` to ``max_lr`` during the first
    ``pct_start × total_steps`` steps, then cosine annealing down to
    ``max_lr / (div_factor × final_div_factor)`` at the last step.
    """
    step = np.asarray(step, float)
    start, end = max_lr / div_factor, max_lr / (div_factor * final_div_factor)
    warm = max(1.0, round(pct_start * total_steps))
    anneal = max(1.0, total_steps - 1 - warm)

    def cos(a, b, frac):
        return b + (a - b) * (1 + np.cos(np.pi * np.clip(frac, 0, 1))) / 2

    out = np.where(step < warm, cos(start, max_lr, step / warm), cos(max_lr, end, (step - warm) / anneal))
    return float(out) if out.ndim == 0 else out


class OneCycle(keras.callbacks.Callback):
    """Set the optimizer's learning rate to :func:`one_cycle_lr` before every batch.

    ``total_steps`` is ``epochs × steps_per_epoch`` of the ``fit`` call. The rates used are
    kept in ``lrs`` (one per batch). Past ``total_steps`` the last (smallest) rate is kept.
    """

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4):
        super().__init__()
        self.max_lr, self.total_steps = float(max_lr), int(total_steps)
        self.kwargs = dict(pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor)
        self.lrs: list[float] = []

    def on_train_begin(self, logs=None):
        self.lrs = []

    def on_train_batch_begin(self, batch, logs=None):
        step = min(len(self.lrs), self.total_steps - 1)
        lr = one_cycle_lr(step, self.total_steps, self.max_lr, **self.kwargs)
        self.model.optimizer.learning_rate = lr
        self.lrs.append(lr)


def plot_history(history, keys=("loss", "val_loss"), ax=None, title: str = "Training curves", logy: bool = True):
    """Plot per-epoch values from ``model.fit``'s History (or its ``.history`` dict); returns the figure.

    ``logy`` uses a log scale when every value is positive (a single validation spike at a
    high learning rate otherwise flattens the rest of the curve).
    """
    import matplotlib.pyplot as plt

    hist = getattr(history, "history", history)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for key in keys:
        if key in hist:
            ax.plot(np.arange(1, len(hist[key]) + 1), hist[key], marker="o", ms=3, label=key)
    values = np.concatenate([np.asarray(hist[k], float) for k in keys if k in hist] or [np.ones(1)])
    if logy and np.all(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax.figure


def plot_schedule(lrs, ax=None, title: str = "One-cycle learning rate"):
    """Learning rate per training step (e.g. :attr:`OneCycle.lrs`); returns the figure."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(len(lrs)), lrs, color="tab:purple")
    ax.set_xlabel("training step (batch)")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    return ax.figure


class EpochTimer(keras.callbacks.Callback):
    """Record each epoch's wall time in ``seconds`` (for images/s = training images / seconds)."""

    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


# ----------------------------------------------------------------------------- tf.data input
def make_dataset(images, labels, batch_size: int = 32, training: bool = False, seed: int = 0,
                 preprocess: Callable | None = None, augment: Callable | None = None, cache: bool | None = None,
                 shuffle_buffer: int | None = None, drop_remainder: bool = False):
    """A ``tf.data.Dataset`` of ``(image, label)`` batches from in-memory or on-disk arrays.

    Parameters
    ----------
    images : array ``(n, H, W)`` or ``(n, H, W, C)``, in memory or on disk
        ``uint8`` images are scaled to ``[0, 1]`` float32; float images are used as they
        are. A channel axis is added to 2-D images. An on-disk array
        (:class:`helpers.shards.ShardedArray`, or anything with ``take`` that reads rows
        when indexed) is *streamed*: the pipeline shuffles row numbers, reads each batch of
        rows from disk and prefetches the next, so memory does not grow with ``n``.
    labels : array ``(n,)`` or ``(n, k)``, or on disk
        Targets, cast to float32. With on-disk images the targets may be on disk too (e.g.
        segmentation masks ``(n, H, W)``, read with the images and given a channel axis).
    training : bool
        Shuffle (seeded, a new order each epoch) and augment. Validation and test data use
        ``training=False``: same order every time, never augmented.
    preprocess : callable ``(image, label) -> (image, label)``, optional
        A deterministic TensorFlow map applied before the cache (e.g. CT windowing).
    augment : callable ``(dataset) -> dataset``, optional
        Applied to unbatched training data after the shuffle, e.g.
        ``lambda ds: helpers.augment.augment_dataset(ds, config, seed, target="none")``.
    cache : bool, optional
        Keep the preprocessed examples in memory after the first epoch. Default: yes for
        in-memory arrays, no for on-disk ones (a cache would hold the whole dataset in RAM).

    In memory: slices → preprocess → cache → shuffle → augment → batch → prefetch(AUTOTUNE).
    On disk: row numbers → shuffle (the buffer holds row numbers only: 8 bytes a row) →
    read ``batch_size`` rows → unbatch → preprocess → augment → batch → prefetch.
    The maps run sequentially: TensorFlow's op determinism logs a spurious error for a
    parallel map followed by a ``tf.numpy_function`` augmentation; prefetching overlaps
    them with training.
    """
    import tensorflow as tf

    if shards.is_on_disk(images):
        return _stream_dataset(images, labels, batch_size, training, seed, preprocess, augment,
                               bool(cache), shuffle_buffer, drop_remainder)
    cache = True if cache is None else cache
    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.float32)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if images.ndim == 3:
        images = images[..., None]
    scale = 1.0 / 255.0 if images.dtype == np.uint8 else None

    @tf.autograph.experimental.do_not_convert  # plain TF ops; AutoGraph cannot parse a closure here
    def _to_float(image, label):
        image = tf.cast(image, tf.float32)
        return (image * scale if scale else image), label

    autotune = tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).map(_to_float)
    if preprocess is not None:
        ds = ds.map(preprocess)
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer or len(images), seed=seed, reshuffle_each_iteration=True)
        if augment is not None:
            ds = augment(ds)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(autotune)


def stream_rows(images, targets, shuffle: bool = False, seed: int = 0, shuffle_buffer: int | None = None,
                read_size: int = 32):
    """An unbatched ``tf.data.Dataset`` of ``(image, target)`` read from an on-disk array.

    Row numbers are shuffled (``shuffle``: seeded, reshuffled every epoch; the buffer holds
    row numbers, 8 bytes a row, so a full shuffle costs nothing), read ``read_size`` rows at
    a time through ``tf.numpy_function``, and unbatched. ``uint8`` images are scaled to
    ``[0, 1]``, others cast to float32; 2-D rows get a channel axis. ``targets`` may be in
    memory or on disk (on-disk masks ``(n, H, W)`` get a channel axis too). With the same
    ``seed`` the order is the one ``Dataset.from_tensor_slices(...).shuffle(n, seed)`` gives
    over the same rows in memory.
    """
    import tensorflow as tf

    on_disk_targets = shards.is_on_disk(targets)
    if not on_disk_targets:
        targets = np.asarray(targets, dtype=np.float32)
    n = len(images)
    if n != len(targets):
        raise ValueError(f"{n} images but {len(targets)} labels")
    row_shape, dtype = tuple(images.shape[1:]), np.dtype(images.dtype)
    channels = row_shape if len(row_shape) == 3 else (*row_shape, 1)
    target_shape = tuple(targets.shape[1:])
    if on_disk_targets and len(target_shape) == 2:
        target_shape = (*target_shape, 1)
    scale = 1.0 / 255.0 if dtype == np.uint8 else None

    def read(rows):
        batch = np.asarray(images[rows])
        values = np.asarray(targets[rows], dtype=np.float32)
        return batch.reshape((len(rows), *channels)), values.reshape((len(rows), *target_shape))

    @tf.autograph.experimental.do_not_convert
    def _read(rows):
        x, y = tf.numpy_function(read, [rows], (tf.as_dtype(dtype), tf.float32), stateful=False)
        x.set_shape((None, *channels))
        y.set_shape((None, *target_shape))
        x = tf.cast(x, tf.float32)
        return (x * scale if scale else x), y

    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer or n, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(read_size).map(_read).unbatch()


def _stream_dataset(images, labels, batch_size, training, seed, preprocess, augment, cache, shuffle_buffer,
                    drop_remainder):
    """:func:`make_dataset` over an on-disk array: shuffled row numbers, rows read a batch at a time."""
    import tensorflow as tf

    ds = stream_rows(images, labels, training, seed, shuffle_buffer, read_size=batch_size)
    if preprocess is not None:
        ds = ds.map(preprocess)
    if cache:
        ds = ds.cache()
    if training and augment is not None:
        ds = augment(ds)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def predict_dataset(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` over a (not shuffled) batched dataset, as NumPy arrays."""
    ys, ps = [], []
    for x, y in dataset:
        ys.append(np.asarray(y))
        ps.append(np.asarray(model(x, training=False)))
    return np.concatenate(ys), np.concatenate(ps)


# ----------------------------------------------------------------------------- throughput
def _timed_fit(model, dataset, steps: int) -> float:
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def training_throughput(model, dataset, steps: int = 20, warmup_steps: int = 3, batch_size: int | None = None) -> dict:
    """Train ``model`` (compiled; its weights change) for ``steps`` batches and time it.

    A first ``fit`` of ``warmup_steps`` builds the training function (tracing is not
    counted). Returns ``seconds_per_step`` and ``images_per_s`` (``batch_size`` read from
    the first batch when not given).
    """
    ds = dataset.repeat()
    if batch_size is None:
        batch_size = int(next(iter(dataset))[0].shape[0])
    _timed_fit(model, ds, warmup_steps)
    seconds = _timed_fit(model, ds, steps)
    return {"steps": steps, "batch_size": batch_size, "seconds_per_step": seconds / steps,
            "images_per_s": batch_size * steps / seconds}


def input_pipeline_overhead(model, dataset, steps: int = 20, warmup_steps: int = 3, repeats: int = 1) -> dict:
    """Compare training steps fed by ``dataset`` with steps on one pre-materialised batch.

    The in-memory reference repeats a single batch already held as a tensor, so its step
    time is the model's own cost; the difference is what the input pipeline adds while the
    model trains (ideally ≈ 0: prefetching overlaps input with compute). ``model``'s weights
    change (use a throw-away copy). With ``repeats > 1`` the two are measured alternately and
    the fastest of each kept (less noise on a shared machine).

    Returns ``memory_step_s``, ``pipeline_step_s``, ``overhead_pct`` (pipeline / memory − 1,
    in %), ``images_per_s`` (through the pipeline) and ``batch_size``.
    """
    import tensorflow as tf

    x, y = next(iter(dataset))
    batch_size = int(x.shape[0])
    in_memory = tf.data.Dataset.from_tensors((tf.constant(x), tf.constant(y))).repeat()
    piped = dataset.repeat()
    _timed_fit(model, in_memory, warmup_steps)
    _timed_fit(model, piped, warmup_steps)
    mem, pipe = math.inf, math.inf
    for _ in range(repeats):
        mem = min(mem, _timed_fit(model, in_memory, steps) / steps)
        pipe = min(pipe, _timed_fit(model, piped, steps) / steps)
    return {"batch_size": batch_size, "steps": steps, "memory_step_s": mem, "pipeline_step_s": pipe,
            "overhead_pct": 100.0 * (pipe / mem - 1.0), "images_per_s": batch_size / pipe,
            "images_per_s_memory": batch_size / mem}


# ----------------------------------------------------------------------------- a model for later notebooks
def save_classifier(model, folder, name: str, **info) -> Path:
    """Save a trained model as ``folder/<name>.keras`` plus ``folder/<name>.json`` (``info``).

    ``info`` says how to rebuild the model's inputs and which rows were held out (e.g. the
    data root, image size, CT windows and the test image ids), so a later notebook can reuse
    the model on exactly the images it never trained on. Both files are written atomically,
    and the JSON records the SHA-256 of the model file, so a model can never be paired with
    another run's held-out ids (:func:`load_classifier` checks it).
    """
    import hashlib

    from .io import atomic_path, write_json

    folder = Path(folder)
    with atomic_path(folder / f"{name}.keras", suffix=".keras") as tmp:
        model.save(tmp)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    write_json(folder / f"{name}.json", {**info, "model_sha256": digest})
    return folder / f"{name}.keras"


def load_classifier(folder, name: str):
    """``(model, info)`` saved by :func:`save_classifier`, or ``None`` when it is not there.

    Raises ``ValueError`` when the model file is not the one the JSON describes (an
    interrupted or mixed-up save), rather than pairing a model with the wrong held-out ids.
    """
    import hashlib
    import json

    folder = Path(folder)
    model_path, info_path = folder / f"{name}.keras", folder / f"{name}.json"
    if not (model_path.is_file() and info_path.is_file()):
        return None
    info = json.loads(info_path.read_text())
    if info.pop("model_sha256", None) != hashlib.sha256(model_path.read_bytes()).hexdigest():
        raise ValueError(f"{model_path} does not match {info_path.name} (saved by another run?); run the "
                         "notebook that saves it again")
    return keras.saving.load_model(model_path, compile=False), info
