"""Peak memory and wall time of ``explain-attn maps`` on a PNG folder.

Generates N PNG images of 224 x 224 (two classes, blocky random colours
that compress well, so the folder stays small) into a temporary folder,
saves an untrained ``small_attention`` model for that size, and runs
``explain-attn maps`` in a subprocess under ``/usr/bin/time -v``: the
figure is the process's absolute peak resident set size ("Maximum resident
set size"), never a difference from a baseline. One N at a time (the run is
CPU-heavy).

Usage::

    python -m benchmarks.bench_stream --count 1000 --output folder
    python -m benchmarks.bench_stream --count 1000 --output npz \\
        --code /path/to/an/older/checkout   # "before": that explain_attn

``--output folder`` writes a maps folder (one ``.npy`` per map, written as
made); ``npz`` writes one ``.npz`` built in memory (the only format of
older versions).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SIZE = 224
BLOCK = 28  # Random colours on a 8 x 8 grid of 28-pixel blocks.


def make_folder(root, count, seed=0):
    """``count`` PNGs in ``root/images/{a,b}/``; returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    cells = SIZE // BLOCK
    for index in range(count):
        folder = root / "images" / "ab"[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        image = np.kron(small, np.ones((BLOCK, BLOCK, 1), np.uint8))
        Image.fromarray(image).save(folder / f"{index:06d}.png")
    return root


def make_model(path):
    import keras

    from explain_attn import build_model, save_model

    keras.utils.set_random_seed(0)
    model = build_model(
        "small_attention", input_shape=(SIZE, SIZE, 3), num_classes=2
    )
    save_model(model, path)
    return path


def measure(model, data, output, code, batch_size):
    """``(peak RSS MiB, wall seconds)`` of one ``maps`` run."""
    environment = dict(os.environ, PYTHONPATH=str(code))
    command = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "explain_attn",
        "maps",
        str(model),
        "--data",
        str(data),
        "--batch-size",
        str(batch_size),
        "--output",
        str(output),
    ]
    result = subprocess.run(  # In `code`: `-m` puts the cwd first.
        command,
        capture_output=True,
        text=True,
        env=environment,
        cwd=code,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    peak = re.search(
        r"Maximum resident set size \(kbytes\): (\d+)", result.stderr
    )
    wall = re.search(
        r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)",
        result.stderr,
    )
    hours, minutes, seconds = wall.groups()
    elapsed = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    return int(peak.group(1)) / 1024, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--output", choices=["folder", "npz"], default="folder")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--code",
        default=str(Path(__file__).resolve().parents[1]),
        help="The checkout whose explain_attn runs (PYTHONPATH).",
    )
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_stream_") as folder:
        root = Path(folder)
        model = make_model(root / "model.keras")
        data = make_folder(root / "data", arguments.count)
        output = root / ("maps" if arguments.output == "folder" else "maps.npz")
        peak, wall = measure(
            model, data, output, arguments.code, arguments.batch_size
        )
    print(
        f"| {arguments.count:,} | {SIZE}x{SIZE} | {arguments.output} | "
        f"{arguments.batch_size} | {peak:,.0f} MiB | {wall:.1f} s | "
        f"{arguments.code} |"
    )


if __name__ == "__main__":
    main()
