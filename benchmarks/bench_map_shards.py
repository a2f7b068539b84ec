"""Sharded maps: one run against its shards and their merge.

Writes the maps of ``--images`` random images (``--size``², the demo's
``small_attention``, untrained, attention maps and Grad-CAM) once as one
run, then as ``--shards`` shards and `merge_maps`, in one process (the
model is loaded once, so shard times are the pass alone). Prints one JSON
object: the times, the merge's share, and whether every file of the merged
folder equals the single run's (the manifest without its ``shards``).

Run: ``python -m benchmarks.bench_map_shards [--images N] [--size S]
[--shards K]``.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _same(single, merged):
    for path in single.iterdir():
        other = merged / path.name
        if path.suffix == ".npy" and path.read_bytes() != other.read_bytes():
            return False
    manifest = json.loads((merged / "manifest.json").read_text("utf-8"))
    manifest.pop("shards")
    expected = json.loads((single / "manifest.json").read_text("utf-8"))
    return manifest == expected


def measure(images, size, shards, batch_size=64):
    import keras

    from explain_attn import build_model
    from explain_attn.data import Dataset
    from explain_attn.explanations.export import export_maps
    from explain_attn.explanations.map_parts import merge_maps
    from explain_attn.sharding import ShardJob

    keras.utils.set_random_seed(0)
    model = build_model(
        "small_attention", input_shape=(size, size, 3), num_classes=2
    )
    rng = np.random.default_rng(0)
    data = Dataset(
        rng.random((images, size, size, 3), dtype=np.float32),
        np.arange(images) % 2,
        None,
        ("a", "b"),
    )
    options = {"methods": ["grad_cam"], "batch_size": batch_size}
    folder = Path(tempfile.mkdtemp(prefix="bench_map_shards."))
    export_maps(model, data.take(range(batch_size)), folder / "warm", **options)
    started = time.perf_counter()
    export_maps(model, data, folder / "single", **options)
    single = time.perf_counter() - started
    started = time.perf_counter()
    for index in range(shards):
        job = ShardJob(shards, index, folder / "parts")
        export_maps(model, data, None, shard=job, **options)
    sharded = time.perf_counter() - started
    started = time.perf_counter()
    merge_maps(folder / "parts", folder / "merged")
    merged = time.perf_counter() - started
    size_bytes = sum(p.stat().st_size for p in (folder / "single").iterdir())
    identical = _same(folder / "single", folder / "merged")
    shutil.rmtree(folder)
    return {
        "images": images,
        "size": size,
        "shards": shards,
        "single_s": round(single, 2),
        "shards_s": round(sharded, 2),
        "merge_s": round(merged, 2),
        "maps_mib": round(size_bytes / 2**20, 1),
        "identical": identical,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--shards", type=int, default=8)
    arguments = parser.parse_args()
    print(
        json.dumps(measure(arguments.images, arguments.size, arguments.shards))
    )


if __name__ == "__main__":
    main()
