"""Peak memory of training on a PNG folder: streamed against in memory.

Generates N PNGs of ``--size`` squared (two classes, blocky random colours)
and trains a small ConvNet (input standardisation, one epoch, batch-norm
recalibration and the training check: every pass `train` makes) on them in
a child process, once on the folder streamed (``open_source``: images are
decoded batch by batch by `explain_attn.data.pipeline.fit_pipeline`) and
once loaded into memory (``load_dataset``). The figure is the child's
absolute peak resident set size (``VmHWM``), never a
difference from a baseline.

Usage::

    python -m benchmarks.bench_train_stream --counts 500 2000 --size 64
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_folder(root, count, size, seed=0):
    """``count`` PNGs in ``root/images/{a,b}/``; returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    block = max(1, size // 8)
    for index in range(count):
        folder = root / "images" / "ab"[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (size // block, size // block, 3))
        image = np.kron(small.astype(np.uint8), np.ones((block, block, 1)))
        Image.fromarray(image.astype(np.uint8)).save(
            folder / f"{index:06d}.png"
        )
    return root


def child(data, mode, size):
    """Trains once; prints seconds and peak RSS (MiB) as JSON."""
    import keras

    from explain_attn.data import load_dataset, open_source
    from explain_attn.models.training import standardize_inputs, train

    start = time.perf_counter()
    source = open_source(data) if mode == "stream" else load_dataset(data)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, "softmax")(x))
    model = standardize_inputs(model, source)
    train(model, source, epochs=1, batch_size=32, verbose=0, check=True)
    peak = peak_rss_mib()
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_rss_mib": peak, "seconds": seconds}))


def peak_rss_mib():
    """This process's peak RSS (``VmHWM``: unlike ``ru_maxrss``, it starts
    afresh at ``execve``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(data, mode, size):
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_train_stream",
            "--child",
            str(data),
            "--mode",
            mode,
            "--size",
            str(size),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--child")
    parser.add_argument("--mode", default="stream")
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments.mode, arguments.size)
        return
    for count in arguments.counts:
        with tempfile.TemporaryDirectory() as directory:
            data = make_folder(Path(directory), count, arguments.size)
            for mode in ("stream", "memory"):
                result = run(data, mode, arguments.size)
                print(
                    f"N={count} {arguments.size}x{arguments.size} {mode}: "
                    f"peak RSS {result['peak_rss_mib']:.0f} MiB, "
                    f"{result['seconds']:.1f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
