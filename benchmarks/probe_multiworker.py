"""Does Keras 3 `fit` train under MultiWorkerMirroredStrategy? (README).

Starts two worker processes on localhost (``TF_CONFIG`` on ports 23456 and
23457) that train ``small_attention`` for two epochs on 64 random images,
and one process with a one-device ``MirroredStrategy`` for comparison;
prints each process's outcome (losses, or the last line of its error).
Bounded: each process is killed after ``--timeout`` seconds.

Run: ``python -m benchmarks.probe_multiworker``.
"""

import argparse
import os
import subprocess
import sys

WORKER = r"""
import json, os, sys
index, workers = int(sys.argv[1]), int(sys.argv[2])
if workers > 1:
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [
        "localhost:23456", "localhost:23457"]}, "task": {"type": "worker",
        "index": index}})
import numpy as np, tensorflow as tf, keras
from explain_attn import build_model
strategy = (tf.distribute.MultiWorkerMirroredStrategy() if workers > 1
            else tf.distribute.MirroredStrategy(["/cpu:0"]))
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.random((64, 32, 32, 3), dtype=np.float32)
y = (x[..., 0].mean(axis=(1, 2)) > 0.5).astype("int64")
with strategy.scope():
    model = build_model("small_attention", input_shape=(32, 32, 3),
                        num_classes=2)
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss="sparse_categorical_crossentropy")
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
history = model.fit(data, epochs=2, verbose=0)
print(json.dumps({"loss": history.history["loss"]}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=300)
    timeout = parser.parse_args().timeout
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = {
        "multi-worker 0": ["0", "2"],
        "multi-worker 1": ["1", "2"],
        "one worker": ["0", "1"],
    }
    started = {
        name: subprocess.Popen(
            [sys.executable, "-c", WORKER, *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for name, arguments in runs.items()
    }
    for name, process in started.items():
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            print(f"{name}: no result within {timeout} s")
            continue
        lines = (out if process.returncode == 0 else err).strip().splitlines()
        print(f"{name}: {lines[-1][:300] if lines else process.returncode}")


if __name__ == "__main__":
    main()
