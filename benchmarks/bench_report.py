"""Item 4: `build_report` scaling with given models, time and peak memory.

Setup, in a temporary folder: the demo pair (``small_attention`` and
``small_convnet``, untrained, 4 classes) saved as ``.keras`` files, and one
``.npz`` per size holding ``images``, ``labels``, ``masks`` and
``class_names`` from `explain_attn.data.synthetic.generate` (the test stream).

- **Time**: `build_report` on every size, interleaved round by round in
  this process; the figure is the per-round ratio of the time at ``2N`` to
  the time at ``N`` (linear scaling gives 2.0).
- **Peak memory**: for each size, two fresh processes. A *baseline* one
  imports TensorFlow and the package and loads the data; a *report* one
  imports the same and calls `build_report` (which loads the data itself).
  Each reports its own peak RSS (``VmHWM``); the figure is the
  increment of the report over the baseline, which should not grow with N.
- **10,000 images**: the wall time of `build_report` in the report
  process of that size (one run).

Run a child by hand with ``python -m benchmarks.bench_report --child report
DATA ATTENTION BASELINE``.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row, interleaved, spread

__all__ = ["SIZES", "run"]

SIZES = (1000, 2000, 4000, 8000)
"""Test-set sizes of the scaling measurement."""

GOAL_SIZE = 10_000
"""The size of the absolute goal (at most 30 s)."""

FLAT_TOLERANCE_MIB = 64
"""How much the peak-memory increment may grow over the sizes and be flat."""


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
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        command,
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env=_quiet_environment(),
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n"
            f"{result.stderr[-2000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _quiet_environment():
    import os

    environment = dict(os.environ)
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return environment


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
        increments = []
        for size in every_size:
            base = _measure_child("baseline", data[size], attention, baseline)
            full = _measure_child("report", data[size], attention, baseline)
            increment = full["peak_rss_mib"] - base["peak_rss_mib"]
            increments.append(increment)
            rows.append(
                Row(
                    item="4 report",
                    subject=f"N={size}",
                    measure="peak RSS over baseline process",
                    median=increment,
                    low=increment,
                    high=increment,
                    unit="MiB",
                    note=(
                        f"report {full['peak_rss_mib']:.0f} MiB, baseline "
                        f"(import TF, load data) {base['peak_rss_mib']:.0f} "
                        "MiB; one run each"
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
        growth = increments[-1] - increments[0]
        rows.append(
            Row(
                item="4 report",
                subject=f"N={every_size[0]} -> {every_size[-1]}",
                measure="growth of the peak RSS increment",
                median=growth,
                low=growth,
                high=growth,
                unit="MiB",
                goal="flat in N",
                met=growth <= FLAT_TOLERANCE_MIB,
                note=(
                    "increment at the largest size minus at the smallest; "
                    f"flat: at most {FLAT_TOLERANCE_MIB} MiB"
                ),
            )
        )
    return rows


def main(argv=None):
    """Entry point of a measuring child process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=("baseline", "report"))
    parser.add_argument("paths", nargs=3)
    args = parser.parse_args(argv)
    _child(args.child, *args.paths)


if __name__ == "__main__":
    main()
