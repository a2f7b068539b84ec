"""Sharded reports: Dask throughput, merge cost, worker memory, projection.

- ``throughput``: one process (`report_from_sources`) against `dask_report`
  on a `LocalCluster` of 2 worker processes (one thread each), the same
  images, models and options (faithfulness off), wall time of the whole
  command (models loaded, pass, merge, report).
- ``merge``: the merge's own cost (`read_parts`: read, check and combine)
  for one run's contributions cut into 1 to 64 parts (without interval
  sums; ``bench_bootstrap --merge`` measures those).
- ``memory``: the absolute peak RSS of a child process that loads the
  models and runs one shard at 224 x 224 (what one Dask worker holds).

Run: ``python -m benchmarks.bench_shards [throughput|merge|memory]``;
prints one JSON object per measurement.
"""

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import run_child


def _inputs(folder, size, count):
    """Two untrained models of the demo's kind and ``count`` images."""
    import keras

    from explain_attn import build_model, save_model

    keras.utils.set_random_seed(0)
    paths = {}
    for role, architecture in (
        ("attention", "small_attention"),
        ("baseline", "small_convnet"),
    ):
        model = build_model(
            architecture, input_shape=(size, size, 3), num_classes=2
        )
        paths[role] = str(Path(folder) / f"{role}.keras")
        save_model(model, paths[role])
    rng = np.random.default_rng(0)
    images = rng.random((count, size, size, 3), dtype=np.float32)
    masks = rng.random((count, size, size)) > 0.7
    paths["data"] = str(Path(folder) / "data.npz")
    np.savez(
        paths["data"], images=images, labels=np.arange(count) % 2, masks=masks
    )
    return paths


def _options(paths, chunk_size):
    return {
        "attention_models": [paths["attention"]],
        "baseline_model": paths["baseline"],
        "num_examples": 2, "seed": 0, "verbose": 0, "faithfulness": "off",
        "chunk_size": chunk_size,
    }  # fmt: skip


def throughput(count=512, size=64, chunk_size=32, num_shards=16):
    from explain_attn.report import report_from_sources
    from explain_attn.report.distributed import dask_report

    folder = tempfile.mkdtemp()
    paths = _inputs(folder, size, count)
    options = _options(paths, chunk_size)
    report_from_sources(paths["data"], **options)  # warm-up
    started = time.perf_counter()
    report_from_sources(paths["data"], **options)
    single = time.perf_counter() - started
    started = time.perf_counter()
    dask_report(
        paths["data"], address="local:2", num_shards=num_shards,
        parts=Path(folder) / "parts", **options,
    )  # fmt: skip
    sharded = time.perf_counter() - started
    shutil.rmtree(folder)
    return {
        "measure": "throughput", "images": count, "size": size,
        "shards": num_shards, "one_process_s": single, "dask_2_workers_s":
        sharded, "ratio": single / sharded,
    }  # fmt: skip


def merge(count=4096, total_parts=(1, 2, 4, 8, 16, 32, 64)):
    """`read_parts` of one run's contributions cut into ``n`` parts."""
    from explain_attn.report import report_from_sources
    from explain_attn.report.shards import (
        ShardJob,
        read_part,
        read_parts,
        write_part,
    )

    folder = Path(tempfile.mkdtemp())
    paths = _inputs(folder, 32, count)
    options = _options(paths, 64)
    job = ShardJob(1, 0, folder / "one")
    path = report_from_sources(paths["data"], **options, shard=job)
    whole, meta = read_part(path)
    meta.pop("interval_sums")  # Not sliced: these parts carry no sums.
    rows = []
    for parts in total_parts:
        target = folder / f"n{parts}"
        chunks = -(-count // 64)
        for index in range(parts):
            first, last = index * chunks // parts, (index + 1) * chunks // parts
            start, stop = first * 64, min(last * 64, count)
            part = _slice(whole, start, stop, first, last)
            record = {**meta, "num_shards": parts, "index": index}
            write_part(
                target / f"shard-{index:05d}-of-{parts:05d}.npz", part, record
            )
        started = time.perf_counter()
        read_parts(target)
        rows.append((parts, time.perf_counter() - started))
    shutil.rmtree(folder)
    return {"measure": "merge", "images": count, "seconds_by_parts": rows}


def _slice(whole, start, stop, first, last):
    from explain_attn.report.contributions import Part

    return Part(
        start,
        stop,
        {k: v[start:stop] for k, v in whole.rows.items()},
        {k: v[first:last] for k, v in whole.blocks.items()},
    )


def memory_child(count, size):
    from explain_attn.report import report_from_sources
    from explain_attn.report.shards import ShardJob

    folder = Path(tempfile.mkdtemp())
    paths = _inputs(folder, size, count)
    started = time.perf_counter()
    report_from_sources(
        paths["data"], **_options(paths, None),
        shard=ShardJob(1, 0, folder / "parts"),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shutil.rmtree(folder)
    print(json.dumps({
        "measure": "memory", "images": count, "size": size,
        "peak_rss_mib": peak, "shard_seconds": seconds,
        "seconds_per_image": seconds / count,
    }))  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="*", default=["merge", "memory"])
    parser.add_argument("--child", nargs=2, type=int, default=None)
    options = parser.parse_args()
    if options.child:
        memory_child(*options.child)
        return
    for what in options.what:
        if what == "memory":
            for count in (41, 164):
                command = [sys.executable, "-m", "benchmarks.bench_shards"]
                found = run_child(
                    [*command, "--child", str(count), "224"],
                    OPENBLAS_NUM_THREADS="1",
                )
                print(json.dumps(found), flush=True)
        else:
            print(json.dumps(globals()[what]()), flush=True)


if __name__ == "__main__":
    main()
