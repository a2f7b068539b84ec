"""Item 4: `build_report` scaling with given models, time and peak memory.

Setup, in a temporary folder: the demo pair (``small_attention`` and
``small_convnet``, untrained, 4 classes) saved as ``.keras`` files, and one
``.npz`` per size holding ``images``, ``labels``, ``masks`` and
``class_names`` from `explain_attn.data.synthetic.generate` (the test stream).

- **Time**: `build_report` on every size, interleaved round by round in
  this process; the figure is the per-round ratio of the time at ``2N`` to
  the time at ``N`` (linear scaling gives 2.0).
- **Peak memory**: for each size, a fresh process imports TensorFlow and
  the package and calls `build_report` (which loads the data itself); the
  figure is its absolute peak RSS (``VmHWM``). A second process that only
  imports the same and loads the data is noted beside it, never subtracted.
- **10,000 images**: the wall time of `build_report` in the report
  process of that size (one run).

**Scale** (``python -m benchmarks.bench_report --scale``, not part of
``run.py``): at 224 x 224 (``--image-size``), for each ``--sizes`` N, two
fresh processes on data generated on the fly:

- *report*: N generated images written chunk by chunk to an uncompressed
  ``.npz`` (`write_scale_data`: uint8 images, masks), then in a fresh
  process `report_from_sources` on it with the saved models, as
  ``explain-attn report --data FILE.npz`` runs (the test split streamed,
  faithfulness ``--faithfulness``, default off); then, in the same process,
  the model passes the report needs (both models' forward passes, every
  explanation's maps, Grad-CAM forward and backward) over the same images,
  read again chunk by chunk and timed alone. Figures: the absolute peak
  RSS of the process at the end of the report (``VmHWM``), wall and CPU
  times and the ratios report / passes.
- *stream*: `explain_attn.report.evaluate.evaluate_chunks` on chunks
  generated one at a time (no dataset in memory), the model passes timed on
  each chunk in the same process, both after a warm-up on 8 images.
  Figures: absolute peak RSS, evaluation seconds, ratio evaluation /
  passes.

The per-image cost is the least-squares slope of seconds over N; the
extrapolations to 50,000 and 1,000,000 images are intercept + slope x N.

``--devices N`` runs both children under ``MirroredStrategy`` over N
devices (`explain_attn.devices.make_strategy`): models loaded in its
scope, every pass of the report (and of the timed passes) split across
them. On a machine without GPUs the CPU is first split into N logical
devices, which share the same cores: the figure is then the overhead of
the strategy, not a speed-up.

Run a child by hand with ``python -m benchmarks.bench_report --child report
DATA ATTENTION BASELINE``.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Row, interleaved, run_child, spread

__all__ = ["SIZES", "run"]

SIZES = (1000, 2000, 4000, 8000)
"""Test-set sizes of the scaling measurement."""

GOAL_SIZE = 10_000
"""The size of the absolute goal (at most 30 s)."""


def write_inputs(directory, sizes, *, seed=0):
    """Writes the models and one ``.npz`` per size into ``directory``.

    Returns:
        ``(data, attention, baseline)``: a dict from size to ``.npz`` path
        and the two model paths.
    """
    import keras
    import numpy as np

    from explain_attn import build_model
    from explain_attn.data import synthetic
    from explain_attn.models.saving import save_model

    directory = Path(directory)
    images, labels, masks = synthetic.generate(
        max(sizes), split="test", seed=seed
    )
    data = {}
    for size in sizes:
        data[size] = directory / f"test_{size}.npz"
        np.savez(
            data[size],
            images=images[:size],
            labels=labels[:size],
            masks=masks[:size],
            class_names=np.array(synthetic.CLASS_NAMES),
        )
    num_classes = len(synthetic.CLASS_NAMES)
    paths = []
    for architecture in ("small_attention", "small_convnet"):
        keras.utils.set_random_seed(seed)
        path = directory / f"{architecture}.keras"
        save_model(build_model(architecture, num_classes=num_classes), path)
        paths.append(path)
    return data, paths[0], paths[1]


def _report(data, attention, baseline):
    from explain_attn.report import report_from_sources

    return report_from_sources(
        str(data),
        attention_models=[str(attention)],
        baseline_model=str(baseline),
        verbose=0,
    )


def _child(kind, data, attention, baseline):
    """Body of a measuring process: prints its seconds and peak RSS."""
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    from explain_attn import data as data_module
    from explain_attn import report  # noqa: F401

    start = time.perf_counter()
    if kind == "baseline":
        data_module.load_dataset(str(data))
    else:
        _report(data, attention, baseline)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib():
    """This process's peak resident set size, in MiB.

    Linux keeps ``ru_maxrss`` across ``execve``, so a process started by a
    large parent inherits the parent's peak; ``VmHWM`` in
    ``/proc/self/status`` starts afresh with the new program. ``ru_maxrss``
    is the fallback elsewhere.
    """
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure_child(kind, data, attention, baseline):
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_report",
        "--child",
        kind,
        str(data),
        str(attention),
        str(baseline),
    ]
    return run_child(command)


def run(*, sizes=SIZES, goal_size=GOAL_SIZE, rounds, memory=True, seed=0):
    """Runs item 4 and returns its table rows.

    Args:
        sizes: Increasing test-set sizes, each twice the previous one.
        goal_size: Size of the absolute goal's single run (``None`` to skip).
        rounds: Timed rounds after a warm-up call on the smallest size.
        memory: Whether to measure peak memory (two processes per size).
        seed: Seed of the data and the weights.

    Returns:
        A list of `benchmarks.common.Row`.
    """
    sizes = tuple(sizes)
    every_size = sizes + ((goal_size,) if goal_size else ())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_report_") as directory:
        data, attention, baseline = write_inputs(
            directory, every_size, seed=seed
        )
        _report(data[sizes[0]], attention, baseline)
        sides = {
            size: (lambda size=size: _report(data[size], attention, baseline))
            for size in sizes
        }
        result = interleaved(sides, rounds=rounds, warmup=0)
        for size in sizes:
            median, low, high = spread(result.seconds[size])
            rows.append(
                Row(
                    item="4 report",
                    subject=f"N={size}",
                    measure="build_report seconds",
                    median=median,
                    low=low,
                    high=high,
                    unit="s",
                )
            )
        for small, large in zip(sizes, sizes[1:], strict=False):
            median, low, high = spread(result.ratio(large, small))
            rows.append(
                Row(
                    item="4 report",
                    subject=f"N={small} -> {large}",
                    measure="time per doubling",
                    median=median,
                    low=low,
                    high=high,
                    unit="x",
                    goal="<= 2.2x",
                    met=median <= 2.2,
                )
            )
        if not memory:
            return rows
        peaks = []
        for size in every_size:
            base = _measure_child("baseline", data[size], attention, baseline)
            full = _measure_child("report", data[size], attention, baseline)
            peaks.append(full["peak_rss_mib"])
            rows.append(
                Row(
                    item="4 report",
                    subject=f"N={size}",
                    measure="peak RSS of the report process",
                    median=full["peak_rss_mib"],
                    low=full["peak_rss_mib"],
                    high=full["peak_rss_mib"],
                    unit="MiB",
                    note=(
                        "absolute; a process that only imports TensorFlow "
                        "and loads the data peaks at "
                        f"{base['peak_rss_mib']:.0f} MiB; one run each"
                    ),
                )
            )
            if size == goal_size:
                rows.append(
                    Row(
                        item="4 report",
                        subject=f"N={size}",
                        measure="build_report seconds (one run)",
                        median=full["seconds"],
                        low=full["seconds"],
                        high=full["seconds"],
                        unit="s",
                        goal="<= 30 s",
                        met=full["seconds"] <= 30,
                        note="in the report process of the memory run",
                    )
                )
        growth = peaks[-1] - peaks[0]
        rows.append(
            Row(
                item="4 report",
                subject=f"N={every_size[0]} -> {every_size[-1]}",
                measure="growth of the report's peak RSS",
                median=growth,
                low=growth,
                high=growth,
                unit="MiB",
                note=(
                    "peak at the largest size minus at the smallest; it "
                    "includes the in-memory dataset (float32 images)"
                ),
            )
        )
    return rows


SCALE_SIZES = (1000, 4000)
"""Test-set sizes of the scale measurement (``--scale``)."""

SCALE_IMAGE_SIZE = 224
"""Image side of the scale measurement."""

EXTRAPOLATED = (50_000, 1_000_000)
"""Sizes the fitted per-image cost is extrapolated to."""


def _scale_models(directory, image_size, seed=0):
    """Saves the untrained demo pair at ``image_size``; returns the paths."""
    import keras

    from explain_attn import build_model
    from explain_attn.data import synthetic
    from explain_attn.models.saving import save_model

    paths = []
    for architecture in ("small_attention", "small_convnet"):
        keras.utils.set_random_seed(seed)
        path = Path(directory) / f"{architecture}_{image_size}.keras"
        model = build_model(
            architecture,
            input_shape=(image_size, image_size, 3),
            num_classes=len(synthetic.CLASS_NAMES),
        )
        save_model(model, path)
        paths.append(path)
    return paths


def _generated(start, count, image_size):
    """``(images float32, labels, masks)`` of test images start..start+count.

    Image ``i`` of the generator depends on the seed and ``i`` only, so a
    chunk is generated alone with its own seed."""
    from explain_attn.data import synthetic

    images, labels, masks = synthetic.generate(
        count, split="test", seed=1000 + start, image_size=image_size
    )
    return images.astype("float32") / 255.0, labels, masks


def _passes(models, explanations, images, batch_size, strategy=None):
    """Seconds of the model passes the report needs on ``images``.

    With the batch size the evaluation uses (`batch_size_for`), split
    across the replicas of ``strategy``."""
    from explain_attn.explanations.explanation import Explainer
    from explain_attn.explanations.predict import Predictor
    from explain_attn.report.evaluate import batch_size_for

    batch_size = batch_size_for(images.shape[1:], batch_size)
    start, cpu = time.perf_counter(), time.process_time()
    for entry in models:
        predictor = Predictor(entry.model, strategy=strategy)
        for index in range(0, len(images), batch_size):
            predictor(images[index : index + batch_size])
    Explainer(explanations, strategy=strategy)(images, batch_size=batch_size)
    _CPU["passes"] += time.process_time() - cpu
    return time.perf_counter() - start


_CPU = {"passes": 0.0}
"""CPU seconds (every thread of the process) spent in `_passes`."""


def _passes_once(models, explanations, chunks, batch_size):
    """``(wall, CPU)`` seconds of the model passes over ``chunks`` with
    the predictors and the explainer built once, as the report builds
    them: their functions are traced once, not once per chunk as in
    `_passes` (reading the chunks is not timed)."""
    from explain_attn.explanations.explanation import Explainer
    from explain_attn.explanations.predict import Predictor
    from explain_attn.report.evaluate import batch_size_for

    wall = cpu = 0.0
    predictors = explainer = None
    for images in chunks:
        batch = batch_size_for(images.shape[1:], batch_size)
        start, began = time.perf_counter(), time.process_time()
        if explainer is None:
            predictors = [Predictor(entry.model) for entry in models]
            explainer = Explainer(explanations)
        for predictor in predictors:
            for index in range(0, len(images), batch):
                predictor(images[index : index + batch])
        explainer(images, batch_size=batch)
        wall += time.perf_counter() - start
        cpu += time.process_time() - began
    return wall, cpu


def _strategy(devices):
    """`make_strategy` of ``devices``; without GPUs, the CPU split first
    into that many logical devices (the same cores)."""
    import tensorflow as tf

    from explain_attn.devices import make_strategy

    if devices > 1 and not tf.config.list_physical_devices("GPU"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices
        )
    return make_strategy(devices)


def _scale_setup(attention, baseline, strategy=None):
    from explain_attn.devices import strategy_scope
    from explain_attn.report.build import report_explanations
    from explain_attn.report.models import load_report_models

    with strategy_scope(strategy):
        models = load_report_models(
            [str(attention)], str(baseline), safe_mode=True,
            say=lambda *a: None,
        )  # fmt: skip
    explanations, reference = report_explanations(models)
    return models, explanations, reference


def write_scale_data(path, size, image_size, *, chunk=500):
    """Writes ``size`` generated test images to an uncompressed ``.npz``.

    ``images`` uint8 ``(N, S, S, 3)``, ``masks`` bool, ``labels`` and
    ``class_names``, written chunk by chunk through ``.npy`` memory maps
    (never the whole array in memory), then stored in the zip uncompressed,
    so that `explain_attn.data.stream.NpzSource` reads it image by image.
    """
    import zipfile

    from explain_attn.data import synthetic

    path = Path(path)
    folder = path.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size, image_size, image_size)
    arrays = {
        "images": np.lib.format.open_memmap(
            folder / "images.npy", "w+", np.uint8, (*shape, 3)
        ),
        "masks": np.lib.format.open_memmap(
            folder / "masks.npy", "w+", bool, shape
        ),
    }
    labels = np.empty(size, np.int64)
    for start in range(0, size, chunk):
        count = min(chunk, size - start)
        images, labels[start : start + count], masks = synthetic.generate(
            count, split="test", seed=1000 + start, image_size=image_size
        )
        arrays["images"][start : start + count] = images
        arrays["masks"][start : start + count] = masks
    for array in arrays.values():
        array.flush()
    del arrays
    np.save(folder / "labels.npy", labels)
    np.save(folder / "class_names.npy", np.array(synthetic.CLASS_NAMES))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name in ("images", "masks", "labels", "class_names"):
            z.write(folder / f"{name}.npy", f"{name}.npy")
            (folder / f"{name}.npy").unlink()
    folder.rmdir()
    return path


def _timed_report(data, attention, baseline, faithfulness, strategy):
    """``(wall, CPU)`` seconds of one `report_from_sources` on ``data``."""
    from explain_attn.report import report_from_sources

    started, cpu = time.perf_counter(), time.process_time()
    report_from_sources(
        str(data),
        attention_models=[str(attention)],
        baseline_model=str(baseline),
        faithfulness=faithfulness,
        verbose=0,
        batch_size=128,
        strategy=strategy,
    )
    return time.perf_counter() - started, time.process_time() - cpu


def _scale_report(
    data, attention, baseline, faithfulness, strategy=None, rounds=1
):
    """Child body: `report_from_sources` streaming ``data`` (an ``.npz``),
    then, in the same process, the model passes alone on the same images
    (read chunk by chunk again; reading is not timed). With ``rounds`` >
    1 (and no strategy), the report and the passes traced once are run
    again, alternately, ``rounds - 1`` times (``"rounds"``: one
    ``[report wall, report CPU, passes wall, passes CPU]`` per round)."""
    from explain_attn.data import open_source
    from explain_attn.report.evaluate import batch_size_for, chunk_size_for

    models, explanations, _ = _scale_setup(attention, baseline, strategy)
    load = [os.getloadavg()[0]]
    seconds, cpu = _timed_report(
        data, attention, baseline, faithfulness, strategy
    )
    report_peak = peak_rss_mib()
    source = open_source(str(data))
    batch = batch_size_for(source.image_shape, 128)
    chunk = chunk_size_for(source.image_shape, batch_size=batch)
    _CPU["passes"] = 0.0
    passes = sum(
        _passes(models, explanations, images, 128, strategy)
        for images, _, _ in source.batches(chunk)
    )
    passes_cpu = _CPU["passes"]
    rounds_done = []
    for round_index in range(rounds if strategy is None else 0):
        if round_index:
            seconds_cpu = _timed_report(
                data, attention, baseline, faithfulness, None
            )
        else:
            seconds_cpu = (seconds, cpu)
        chunks = (images for images, _, _ in source.batches(chunk))
        once = _passes_once(models, explanations, chunks, 128)
        rounds_done.append([*seconds_cpu, *once])
    load.append(os.getloadavg()[0])
    once = rounds_done[0][2:] if rounds_done else (None, None)
    return {
        "load_average": load,
        "passes_once_seconds": once[0],
        "passes_once_cpu_seconds": once[1],
        "rounds": rounds_done,
        "size": len(source),
        "seconds": seconds,
        "passes_seconds": passes,
        "peak_rss_mib": report_peak,
        "peak_rss_with_passes_mib": peak_rss_mib(),
        "chunk_size": chunk,
        "cpu_seconds": cpu,
        "passes_cpu_seconds": passes_cpu,
    }


def _scale_stream(size, image_size, attention, baseline, strategy=None):
    """Child body: `evaluate_chunks` on chunks generated one at a time."""
    from explain_attn.report.evaluate import (
        batch_size_for,
        chunk_size_for,
        evaluate_chunks,
    )

    models, explanations, reference = _scale_setup(
        attention, baseline, strategy
    )
    shape = (image_size, image_size, 3)
    chunk = chunk_size_for(shape, batch_size=batch_size_for(shape, 128))
    spent = {"generate": 0.0, "passes": 0.0, "generate_cpu": 0.0}
    # Warm-up on a few images: tracing is not part of either figure.
    warm = _generated(size, 8, image_size)
    _passes(models, explanations, warm[0], 128, strategy)
    evaluate_chunks(
        models, explanations, reference, [warm], batch_size=128, verbose=0,
        strategy=strategy,
    )  # fmt: skip

    def source():
        for start in range(0, size, chunk):
            begun, cpu = time.perf_counter(), time.process_time()
            part = _generated(start, min(chunk, size - start), image_size)
            spent["generate"] += time.perf_counter() - begun
            spent["generate_cpu"] += time.process_time() - cpu
            spent["passes"] += _passes(
                models, explanations, part[0], 128, strategy
            )
            yield part

    _CPU["passes"] = 0.0
    started, cpu = time.perf_counter(), time.process_time()
    evaluate_chunks(
        models, explanations, reference, source(), batch_size=128, verbose=0,
        strategy=strategy,
    )  # fmt: skip
    total = time.perf_counter() - started
    cpu = time.process_time() - cpu - _CPU["passes"] - spent["generate_cpu"]
    return {
        "cpu_seconds": cpu,
        "passes_cpu_seconds": _CPU["passes"],
        "seconds": total - spent["generate"] - spent["passes"],
        "passes_seconds": spent["passes"],
        "generate_seconds": spent["generate"],
        "peak_rss_mib": peak_rss_mib(),
        "chunk_size": chunk,
    }


def _scale_child(
    kind, size, image_size, paths, faithfulness, devices=1, rounds=1
):
    import keras  # noqa: F401

    strategy = _strategy(devices)
    attention, baseline = paths[:2]
    if kind == "scale-report":
        result = _scale_report(
            paths[2], attention, baseline, faithfulness, strategy, rounds
        )
    else:
        result = _scale_stream(size, image_size, attention, baseline, strategy)
    print(json.dumps(result))


def _run_scale_child(
    kind, size, image_size, paths, faithfulness, devices=1, rounds=1
):
    command = [
        sys.executable, "-m", "benchmarks.bench_report", "--child", kind,
        *map(str, paths), "--size", str(size),
        "--image-size", str(image_size), "--faithfulness", faithfulness,
        "--devices", str(devices), "--rounds", str(rounds),
    ]  # fmt: skip
    return run_child(command, OPENBLAS_NUM_THREADS="1")


def _fit(sizes, seconds):
    """Least-squares ``(intercept, slope)`` of seconds over sizes."""
    slope, intercept = np.polyfit(np.asarray(sizes, float), seconds, 1)
    return float(intercept), float(slope)


def _one(item, subject, measure, value, unit, **extra):
    return Row(
        item=item, subject=subject, measure=measure, median=value,
        low=value, high=value, unit=unit, **extra,
    )  # fmt: skip


def _scale_size_rows(kind, size, image_size, result, faithfulness, devices=1):
    item = f"scale {kind} {image_size}px" + _on(devices)
    subject = f"N={size}"
    ratio = result["seconds"] / result["passes_seconds"]
    rows = [
        _one(item, subject, "peak RSS (absolute)", result["peak_rss_mib"],
             "MiB", goal="<= 1536 MiB",
             met=result["peak_rss_mib"] <= 1536,
             note=f"chunk {result['chunk_size']} images; one run"),
        _one(item, subject, "seconds", result["seconds"], "s",
             note=("report_from_sources streaming an .npz (uint8), "
             "model loading included, faithfulness " + faithfulness
             if kind == "report" else "evaluate_chunks, generation excluded")
             + _load_note(result)),
        _one(item, subject, "seconds / model passes", ratio, "x",
             goal="<= 1.5x", met=ratio <= 1.5,
             note=f"passes {result['passes_seconds']:.1f} s in the same "
             "process: both forwards, maps, Grad-CAM forward+backward"),
    ]  # fmt: skip
    cpu_ratio = result["cpu_seconds"] / result["passes_cpu_seconds"]
    rows.append(
        _one(item, subject, "CPU seconds / model passes' CPU seconds",
             cpu_ratio, "x", goal="<= 1.5x", met=cpu_ratio <= 1.5,
             note=f"CPU time of every thread, {result['cpu_seconds']:.1f} s "
             f"/ {result['passes_cpu_seconds']:.1f} s: less sensitive to "
             "other processes than wall time"),
    )  # fmt: skip
    if result.get("passes_once_seconds"):
        rows += _passes_once_rows(item, subject, result)
    return rows


def _load_note(result):
    load = result.get("load_average")
    return f"; load average {load[0]:.1f} -> {load[1]:.1f}" if load else ""


def _passes_once_rows(item, subject, result):
    """The ratios to the passes traced once (`_passes_once`): median,
    lowest and highest over the alternated rounds."""
    rounds = result["rounds"]
    wall = spread([r[0] / r[2] for r in rounds])
    cpu = spread([r[1] / r[3] for r in rounds])
    figures = "; ".join(
        f"{r[0]:.1f} / {r[2]:.1f} s, CPU {r[1]:.1f} / {r[3]:.1f} s"
        for r in rounds
    )
    note = f"{len(rounds)} alternated round(s), report / passes: {figures}"
    measures = (
        (
            "seconds / passes traced once",
            wall,
            note + " (predictors and explainer built once, as the report does)",
        ),
        (
            "CPU seconds / passes' CPU, traced once",
            cpu,
            "CPU time of every thread",
        ),
    )
    return [
        Row(
            item=item,
            subject=subject,
            measure=measure,
            median=median,
            low=low,
            high=high,
            unit="x",
            goal="<= 1.2x",
            met=median <= 1.2,
            note=text,
        )
        for measure, (median, low, high), text in measures
    ]


def _on(devices):
    return "" if devices == 1 else f", {devices} devices"


def scale(
    *, sizes=SCALE_SIZES, image_size=SCALE_IMAGE_SIZE, faithfulness="off",
    kinds=("stream", "report"), devices=1, rounds=1,
):  # fmt: skip
    """The scale measurement (see the module docstring); table rows.
    ``rounds``: alternated runs of the report and its passes traced once
    in each report process (`_scale_report`)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as directory:
        paths = _scale_models(directory, image_size)
        for kind in kinds:
            results = {}
            for size in sizes:
                data = []
                if kind == "report":
                    data = [Path(directory) / f"test_{size}.npz"]
                    write_scale_data(data[0], size, image_size)
                results[size] = _run_scale_child(
                    f"scale-{kind}", size, image_size, [*paths, *data],
                    faithfulness, devices, rounds,
                )  # fmt: skip
                for path in data:
                    path.unlink()
                rows += _scale_size_rows(
                    kind, size, image_size, results[size], faithfulness,
                    devices,
                )  # fmt: skip
                print(rows[-1], file=sys.stderr, flush=True)
            rows += _extrapolation_rows(kind, image_size, results, devices)
    return rows


def _extrapolation_rows(kind, image_size, results, devices=1):
    if len(results) < 2:
        return []
    item = f"scale {kind} {image_size}px" + _on(devices)
    sizes = sorted(results)
    intercept, slope = _fit(sizes, [results[n]["seconds"] for n in sizes])
    _, passes = _fit(sizes, [results[n]["passes_seconds"] for n in sizes])
    subject = f"N={sizes[0]}..{sizes[-1]}"
    rows = [
        _one(item, subject, "fitted cost per image", 1000 * slope, "ms",
             note=f"intercept {intercept:.1f} s"),
        _one(item, subject, "fitted per-image cost / passes' per-image cost",
             slope / passes, "x", goal="<= 1.5x", met=slope / passes <= 1.5,
             note=f"passes {1000 * passes:.1f} ms per image (fitted)"),
    ]  # fmt: skip
    if all("cpu_seconds" in results[n] for n in sizes):
        cpu_intercept, cpu = _fit(
            sizes, [results[n]["cpu_seconds"] for n in sizes]
        )
        _, cpu_passes = _fit(
            sizes, [results[n]["passes_cpu_seconds"] for n in sizes]
        )
        rows.append(
            _one(item, subject, "fitted per-image CPU / passes' per-image CPU",
                 cpu / cpu_passes, "x", goal="<= 1.5x",
                 met=cpu / cpu_passes <= 1.5,
                 note=f"CPU {1000 * cpu:.1f} ms per image, intercept "
                 f"{cpu_intercept:.1f} s; passes {1000 * cpu_passes:.1f} ms "
                 "per image (fitted)"),
        )  # fmt: skip
    for size in EXTRAPOLATED:
        value = intercept + slope * size
        rows.append(
            _one(item, f"N={size}", "extrapolated seconds", value, "s",
                 note="intercept + slope x N, not measured"),
        )  # fmt: skip
    return rows


def main(argv=None):
    """Entry point of a measuring child process, or of ``--scale``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--child",
        choices=("baseline", "report", "scale-report", "scale-stream"),
    )
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--scale", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", default=SCALE_SIZES)
    parser.add_argument("--size", type=int)
    parser.add_argument("--image-size", type=int, default=SCALE_IMAGE_SIZE)
    parser.add_argument("--faithfulness", default="off")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="scale report: alternated runs of the report and its passes",
    )
    parser.add_argument(
        "--kinds", nargs="+", default=("stream", "report"),
        choices=("stream", "report"),
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.scale:
        from benchmarks.run import render_markdown

        rows = scale(
            sizes=args.sizes, image_size=args.image_size,
            faithfulness=args.faithfulness, kinds=args.kinds,
            devices=args.devices, rounds=args.rounds,
        )  # fmt: skip
        print("\n".join(render_markdown(rows)))
    elif args.child.startswith("scale"):
        _scale_child(
            args.child, args.size, args.image_size, args.paths,
            args.faithfulness, args.devices, args.rounds,
        )  # fmt: skip
    else:
        _child(args.child, *args.paths)


if __name__ == "__main__":
    main()
