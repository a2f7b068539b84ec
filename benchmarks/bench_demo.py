"""The demo's first report: wall time of ``explain-attn report``, by stage.

Runs the demo (``explain-attn report`` with no options) in a fresh Python
process, as a new user does, with its cache in a given folder:

- ``--cold``: an empty cache folder (a fresh install's first run);
- ``--warm``: the same folder again (the second run).

The child times its imports, then records the library's stages
(`explain_attn.stages`: training or loading the demo models, the
evaluation, the faithfulness checks, rendering) and writing, and prints
them as JSON; this process adds the wall time of the whole child (Python's
start included) and CPU seconds (the child's and its helper process's,
which draws the figures as the command's does). Run:

    python -m benchmarks.bench_demo --cache-dir /tmp/demo-cache --runs cold warm
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["measure_demo"]

CHILD = r"""
import json, sys, time, types
clock = time.process_time if sys.argv[2] == "cpu" else time.perf_counter
started = clock()
import explain_attn.cli.common as common  # what the command imports first
# Keras as the command loads it (issue 27, fourth round; absent before).
getattr(common, "import_keras", lambda: None)()
from explain_attn.report import report_from_sources, report_html, write_json
from explain_attn import stages
from explain_attn.stages import recording, stage
stages.time = types.SimpleNamespace(perf_counter=clock)
imported = clock() - started
times = {"imports": imported}
try:  # The command's helper process draws the figures (absent before).
    from explain_attn.report.drawing import drawing_process
except ImportError:
    import contextlib
    drawing_process = contextlib.nullcontext
with recording() as log, drawing_process() as drawer:
    more = {} if drawer is None else {"drawer": drawer}
    report = report_from_sources(verbose=0, faithfulness=sys.argv[3], **more)
    with stage("rendering the report"):
        html = report_html(report)
    with stage("writing"):
        open(sys.argv[1], "w", encoding="utf-8").write(html)
        write_json(report, sys.argv[1] + ".json")
for finished in log.finished:
    times[finished.description] = finished.seconds
times["in process"] = clock() - started
print("STAGES " + json.dumps(times))
"""


def measure_demo(cache_dir, output, *, clock="wall", faithfulness="demo"):
    """Runs the demo once in a child process; returns stage -> seconds.

    ``clock``: ``"wall"`` (elapsed) or ``"cpu"`` (the process's CPU time,
    every thread's: the figure to compare on a machine shared with other
    jobs) for the stages. ``faithfulness``: the mode of the checks; the
    command's demo runs ``"demo"``.
    """
    environment = {
        **os.environ,
        "EXPLAIN_ATTN_CACHE_DIR": str(cache_dir),
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(output), clock, faithfulness],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    line = next(
        line for line in result.stdout.splitlines() if line.startswith("STAGES")
    )
    times = json.loads(line.split(" ", 1)[1])
    times["wall"] = wall
    times["cpu"] = (after.ru_utime - before.ru_utime) + (
        after.ru_stime - before.ru_stime
    )
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--runs", nargs="+", default=["cold", "warm"])
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument(
        "--faithfulness", choices=["demo", "full", "fast"], default="demo"
    )
    arguments = parser.parse_args()
    cache = Path(arguments.cache_dir or tempfile.mkdtemp(prefix="demo-"))
    with tempfile.TemporaryDirectory() as folder:
        for run in arguments.runs:
            times = measure_demo(
                cache,
                Path(folder) / "report.html",
                clock=arguments.clock,
                faithfulness=arguments.faithfulness,
            )
            print(run, json.dumps({k: round(v, 2) for k, v in times.items()}))


if __name__ == "__main__":
    main()
