"""Benchmark: training throughput of the notebook-04 ResNet and the cost of its tf.data input.

Compares training steps fed by the notebook's ``tf.data`` pipeline (shuffled row numbers →
batches read from the on-disk shards → uint8 window stack → augmentation → batch →
prefetch; ``--in-memory``: the same from arrays in RAM, with a cache) with steps on one
batch already held in memory as a tensor (the model's own step time). The acceptance bar: the pipeline adds less
than 10 % on top of the model's step time at 128 px.

    .venv/bin/python bench/bench_input_pipeline.py                  # 128 px, batch 32
    .venv/bin/python bench/bench_input_pipeline.py --no-augment --steps 30 --json out.json

Data: the cleaned synthetic RSNA slices (smoke size, generated when missing) or, with
``--data-dir``, a folder in the RSNA layout. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from helpers import augment, ct, datasets, repro, rsna, training  # noqa: E402
from helpers.io import write_json  # noqa: E402
from helpers.models.resnet import build_resnet  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (graph tracing)")
    parser.add_argument("--repeats", type=int, default=2, help="alternate measurements, keep the fastest")
    parser.add_argument("--no-augment", action="store_true", help="pipeline without augmentation")
    parser.add_argument("--data-dir", default=None, help="RSNA-layout folder (default: synthetic smoke)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--in-memory", action="store_true",
                        help="feed the pipeline from arrays in RAM (+ cache) instead of the on-disk shards, as 04 does")
    args = parser.parse_args(argv)

    print(repro.setup(args.seed), file=sys.stderr)
    import keras

    root = datasets.resolve("rsna", args.data_dir, "smoke", args.seed)
    hu, table = rsna.load_clean(root, image_size=args.image_size)
    x = hu.map(ct.window_stack_uint8)               # what 04 trains from: read from the shards batch by batch
    if args.in_memory:
        x = np.asarray(x)
    y = table["any"].to_numpy()
    config = augment.AugmentConfig(flip_lr=0.5, rotation_deg=10.0, zoom=(0.9, 1.1), translate=0.05)
    aug = None if args.no_augment else (lambda ds: augment.augment_dataset(ds, config, args.seed, target="none"))
    ds = training.make_dataset(x, y, args.batch_size, training=True, seed=args.seed, augment=aug)
    for _ in ds:   # one pass fills the cache (in memory) or the page cache (on disk), as after epoch 1
        pass
    model = build_resnet(x.shape[1:])
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    start = time.perf_counter()
    result = training.input_pipeline_overhead(model, ds, args.steps, args.warmup, args.repeats)
    result.update(image_size=args.image_size, augment=not args.no_augment, n_images=int(len(x)),
                  source="in memory" if args.in_memory else "on-disk shards",
                  params=int(model.count_params()), cpu_cores=len(os.sched_getaffinity(0)),
                  bench_seconds=round(time.perf_counter() - start, 1))
    result = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}
    print(json.dumps(result, indent=2))
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
