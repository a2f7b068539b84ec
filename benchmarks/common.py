"""Shared plumbing of the benchmarks: interleaved timing, statistics, machine.

Every comparison is a ratio measured in one process: the sides run one
after the other inside each round (A B A B ...), after a warm-up call of
each, and the ratio is taken per round, so a few seconds of machine drift
hit both sides of a round alike. A comparison reports the median ratio over
the rounds and its range (min-max).
"""

import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path

__all__ = [
    "Comparison",
    "Row",
    "interleaved",
    "machine_info",
    "run_child",
    "spread",
    "timed",
]


@dataclasses.dataclass
class Row:
    """One line of the results table.

    Attributes:
        item: Benchmark item, e.g. ``"1 maps"``.
        subject: What was measured, e.g. the model.
        measure: What the figure is, e.g. ``"attention_maps / forward"``.
        median: The median figure (a ratio, seconds or MiB, see ``unit``).
        low: The smallest figure over the rounds.
        high: The largest figure over the rounds.
        unit: ``"x"`` for a ratio, ``"s"``, ``"ms"`` or ``"MiB"``.
        goal: The goal as text, e.g. ``"<= 1.0x"``, or ``""``.
        met: Whether the goal is met; ``None`` when there is no goal.
        note: Anything the reader must know to read the figure.
    """

    item: str
    subject: str
    measure: str
    median: float
    low: float
    high: float
    unit: str
    goal: str = ""
    met: bool | None = None
    note: str = ""


@dataclasses.dataclass
class Comparison:
    """Per-round seconds of each side and the per-round ratios.

    Attributes:
        seconds: Side name -> list of seconds, one per round.
    """

    seconds: dict

    def ratio(self, numerator, denominator):
        """Per-round ``numerator / denominator`` time ratios."""
        return [
            top / bottom
            for top, bottom in zip(
                self.seconds[numerator],
                self.seconds[denominator],
                strict=True,
            )
        ]


def run_child(command, **defaults):
    """Runs a measuring child process from the repository root; returns
    the JSON object on the last line of its output.

    TensorFlow's logs are quieted; ``defaults`` are environment variables
    set unless the environment already has them (e.g.
    ``OPENBLAS_NUM_THREADS="1"``).

    Raises:
        RuntimeError: If the child fails, with the end of its stderr.
    """
    variables = dict(os.environ)
    for name, value in {"TF_CPP_MIN_LOG_LEVEL": "3", **defaults}.items():
        variables.setdefault(name, value)
    result = subprocess.run(
        [str(part) for part in command],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
        env=variables,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
            f"{result.stderr[-3000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def timed(function):
    """Calls ``function()`` once; returns its wall-clock seconds."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved(sides, *, rounds, warmup=1):
    """Times several functions round by round, interleaved.

    Args:
        sides: A dict from side name to a function of no argument; each
            round calls them in the dict's order.
        rounds: Number of timed rounds (at least 1).
        warmup: Untimed calls of each side before the first round (builds
            and traces compiled functions, fills caches).

    Returns:
        A `Comparison` with ``rounds`` timings per side.
    """
    for _ in range(warmup):
        for function in sides.values():
            function()
    seconds = {name: [] for name in sides}
    for _ in range(rounds):
        for name, function in sides.items():
            seconds[name].append(timed(function))
    return Comparison(seconds=seconds)


def spread(values):
    """Returns ``(median, min, max)`` of a non-empty list of numbers."""
    return statistics.median(values), min(values), max(values)


def _cpu_model():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib():
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return None


def _version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*arguments):
    root = Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", *arguments],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout


def _git_commit():
    """The commit, and the library files that differ from it."""
    commit = _git("rev-parse", "--short", "HEAD")
    if commit is None:
        return "unknown"
    changed = _git("status", "--porcelain", "--", "explain_attn", "templates")
    files = [line[3:] for line in (changed or "").splitlines()]
    if not files:
        return commit.strip()
    return f"{commit.strip()} plus uncommitted changes to {', '.join(files)}"


def machine_info():
    """The machine, versions and date, as an ordered dict of strings."""
    memory = _memory_gib()
    return {
        "date (UTC)": datetime.datetime.now(datetime.UTC).strftime(
            "%Y-%m-%d %H:%M"
        ),
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": "unknown" if memory is None else f"{memory:.1f} GiB",
        "OS": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "tf-keras-vis": _version("tf-keras-vis"),
        "explain-attn commit": _git_commit(),
    }
