"""Runs every benchmark, prints the table and writes ``RESULTS.md``.

Usage, from the repository root::

    python -m benchmarks.run            # everything, about 20 minutes
    python -m benchmarks.run --quick    # tiny sizes, under 30 s (smoke)
    python -m benchmarks.run --items 1 2 --output /tmp/results.md

Items: 1 attention maps, 2 Grad-CAM, 3 metrics, 4 report scaling, 5 end to
end (``--quick`` leaves out 5 and the memory processes of 4). Item 2 needs
tf-keras-vis for its peer comparison (``pip install tf-keras-vis``);
without it that row says so. See ``benchmarks/README.md``.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import Row, machine_info

__all__ = ["main", "metrics_rows", "render_markdown"]

HERE = Path(__file__).resolve().parent

FULL = {
    "maps_images": 2048,
    "tutorial_sample": 64,
    "cam_images": 512,
    "metrics_maps": 10_000,
    "report_sizes": (1000, 2000, 4000, 8000),
    "report_goal_size": 10_000,
    "rounds": 5,
}
QUICK = {
    "maps_images": 64,
    "tutorial_sample": 2,
    "cam_images": 32,
    "metrics_maps": 200,
    "report_sizes": (16, 32),
    "report_goal_size": None,
    "rounds": 2,
}


def metrics_rows(*, num_maps, repeats):
    """Item 3, by running ``benchmarks/bench_metrics.py`` (reused as is).

    Its output lists the best of ``repeats`` runs of each metric on
    ``num_maps`` random 32x32 maps. The figure here is the sum over the
    per-image metrics (`explain_attn.metrics.PER_IMAGE_METRICS`) and the
    two agreement metrics the report computes (spearman and
    top_fraction_overlap).
    """
    from explain_attn import metrics

    script = HERE / "bench_metrics.py"
    if not script.is_file():
        nan = float("nan")
        return [
            Row(
                item="3 metrics",
                subject=f"{num_maps} maps",
                measure="total",
                median=nan,
                low=nan,
                high=nan,
                unit="s",
                goal="< 1 s",
                note="benchmarks/bench_metrics.py is missing",
            )
        ]
    command = [
        sys.executable,
        str(script),
        "--num-maps",
        str(num_maps),
        "--repeats",
        str(repeats),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    timings = {}
    for line in result.stdout.splitlines():
        match = re.match(r"\s+(\S+)\s+([\d.]+) ms$", line)
        if match:
            timings[match.group(1)] = float(match.group(2)) / 1e3
    wanted = [*metrics.PER_IMAGE_METRICS, "spearman", "top_fraction_overlap"]
    missing = [name for name in wanted if name not in timings]
    if missing:
        raise RuntimeError(
            "benchmarks/bench_metrics.py did not report "
            f"{', '.join(missing)}. Its output:\n{result.stdout}"
        )
    rows = [
        Row(
            item="3 metrics",
            subject=f"{num_maps} maps",
            measure=name,
            median=timings[name],
            low=timings[name],
            high=timings[name],
            unit="s",
            note=f"best of {repeats}",
        )
        for name in wanted
    ]
    total = sum(timings[name] for name in wanted)
    rows.append(
        Row(
            item="3 metrics",
            subject=f"{num_maps} maps",
            measure="total (per-image + spearman + top_fraction_overlap)",
            median=total,
            low=total,
            high=total,
            unit="s",
            goal="< 1 s",
            met=total < 1.0,
            note=f"sum of the best of {repeats} of each metric",
        )
    )
    return rows


def _figure(value, unit):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "x":
        return f"{value:.2f}x" if value < 100 else f"{value:.0f}x"
    if unit == "r":
        return f"{value:.4f}"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.3g} {unit}"


def _met(row):
    if row.met is None:
        return ""
    return "met" if row.met else "**missed**"


def render_markdown(rows):
    """The results table as Markdown lines."""
    lines = [
        "| item | subject | measure | median | range (min-max) | goal | "
        "status | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        same = row.low == row.high or (
            math.isnan(row.low) if isinstance(row.low, float) else False
        )
        spread_text = (
            ""
            if same
            else f"{_figure(row.low, row.unit)} - {_figure(row.high, row.unit)}"
        )
        lines.append(
            f"| {row.item} | {row.subject} | {row.measure} | "
            f"{_figure(row.median, row.unit)} | {spread_text} | {row.goal} | "
            f"{_met(row)} | {row.note} |"
        )
    return lines


def write_results(path, rows, machine, settings, seconds, *, quick, extra=""):
    """Writes the Markdown results file."""
    lines = ["# Benchmark results", ""]
    lines.append(
        "Written by `python -m benchmarks.run"
        + (" --quick" if quick else "")
        + f"` in {seconds:.0f} s. Ratios are medians of per-round ratios "
        "measured in one process, the sides interleaved round by round after "
        f"a warm-up ({settings['rounds']} rounds); the range is min-max "
        "over the rounds."
    )
    if quick:
        lines += [
            "",
            "A smoke run on tiny sizes: the figures say nothing about speed.",
        ]
    lines += ["", "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    lines += ["", "## Results", ""]
    lines += render_markdown(rows)
    if extra:
        lines += ["", extra.rstrip()]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None):
    """Parses the command line, runs the chosen items, writes the file."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and 2 rounds (a smoke run; figures meaningless)",
    )
    parser.add_argument(
        "--items",
        nargs="+",
        type=int,
        choices=range(1, 6),
        default=None,
        help="items to run (default: 1-5, or 1-4 with --quick)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds (default 5)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE / "RESULTS.md",
        help="the Markdown results file (default: benchmarks/RESULTS.md)",
    )
    parser.add_argument(
        "--notes",
        type=Path,
        default=HERE / "NOTES.md",
        help="Markdown appended to the results (analysis of missed goals)",
    )
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    if args.rounds is not None:
        settings["rounds"] = max(1, args.rounds)
    items = args.items or ([1, 2, 3, 4] if args.quick else [1, 2, 3, 4, 5])
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    start = time.perf_counter()
    machine = machine_info()
    rows = []
    rounds = settings["rounds"]
    if 1 in items:
        from benchmarks import bench_maps

        rows += bench_maps.run(
            num_images=settings["maps_images"],
            sample=settings["tutorial_sample"],
            rounds=rounds,
            architectures=(
                ("small_attention",) if args.quick else bench_maps.ARCHITECTURES
            ),
        )
        _progress(rows, "1")
    if 2 in items:
        from benchmarks import bench_cam

        rows += bench_cam.run(
            num_images=settings["cam_images"],
            rounds=rounds,
            architectures=(
                ("small_attention",) if args.quick else bench_cam.ARCHITECTURES
            ),
        )
        _progress(rows, "2")
    if 3 in items:
        rows += metrics_rows(
            num_maps=settings["metrics_maps"], repeats=max(rounds, 5)
        )
        _progress(rows, "3")
    if 4 in items:
        from benchmarks import bench_report

        rows += bench_report.run(
            sizes=settings["report_sizes"],
            goal_size=settings["report_goal_size"],
            rounds=rounds,
            memory=not args.quick,
        )
        _progress(rows, "4")
    if 5 in items:
        from benchmarks import bench_end_to_end

        rows += bench_end_to_end.run(warm_rounds=rounds)
        _progress(rows, "5")
    seconds = time.perf_counter() - start

    print("\n".join(render_markdown(rows)))
    extra = ""
    if not args.quick and args.notes.is_file():
        extra = args.notes.read_text(encoding="utf-8")
    write_results(
        args.output,
        rows,
        machine,
        settings,
        seconds,
        quick=args.quick,
        extra=extra,
    )
    print(f"\nWrote {args.output}")
    return 0


def _progress(rows, item):
    done = [row for row in rows if row.item.startswith(item)]
    for row in done:
        median = _figure(row.median, row.unit)
        print(f"  [{row.item}] {row.subject}: {row.measure} = {median}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
