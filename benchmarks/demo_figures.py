"""The README's demo figures: ``python -m benchmarks.demo_figures``.

Runs the quick start's first command (``explain-attn report`` on the
bundled sample data, demo models trained into an empty cache, then a warm
run that loads them) in fresh processes, and prints every figure the
README quotes, in the README's words: test accuracies with their 95 %
intervals, the paired difference, the headline metrics per explanation,
the faithfulness summary, wall times and file sizes.

TensorFlow's CPU kernels are not bit-identical on every machine (thread
scheduling, instruction sets), so trained weights, and with them every
figure, differ slightly between machines; the README gives the range seen.
Two runs on the same machine give the same ``report.json``.

Options: ``--cache DIR`` reuses a cache (skips the cold run's training),
``--output DIR`` keeps the report files.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADLINE = ("mass_in_mask", "pointing_game", "roc_auc", "entropy")


def _report(output, cache):
    environment = {
        **os.environ,
        "EXPLAIN_ATTN_CACHE_DIR": str(cache),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    command = [sys.executable, "-m", "explain_attn", "report"]
    start = time.perf_counter()
    subprocess.run(
        [*command, "--output", str(output)],
        check=True,
        env=environment,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return time.perf_counter() - start


def _percent(summary):
    return (
        f"{100 * summary['accuracy']:.1f} % "
        f"[{100 * summary['ci_low']:.1f}, {100 * summary['ci_high']:.1f}]"
    )


def _lines(data, seconds, sizes):
    cold, warm = seconds["cold"], seconds["warm"]
    yield f"Cold run: {cold:.0f} s; warm run: {warm:.0f} s"
    html, numbers = sizes["html"], sizes["json"]
    yield f"report.html {html:.2f} MB, report.json {numbers:.2f} MB"
    for model in data["models"]:
        yield f"Accuracy of {model['name']}: {_percent(model['accuracy'])}"
    for comparison in data["comparisons"]:
        yield comparison["sentence"]
    yield "| explanation | " + " | ".join(HEADLINE) + " |"
    for row in data["explanations"]:
        summary = row["summary"]["all"]
        values = [
            f"{summary[name]['mean']:.3f}" if name in summary else "–"
            for name in HEADLINE
        ]
        yield f"| {row['label']} | " + " | ".join(values) + " |"
    for flag in data.get("faithfulness", {}).get("flags", []):
        yield f"Faithfulness flag: {flag}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cache = arguments.cache or Path(scratch) / "cache"
        output = (arguments.output or Path(scratch)) / "report.html"
        output.parent.mkdir(parents=True, exist_ok=True)
        seconds = {"cold": _report(output, cache), "warm": None}
        seconds["warm"] = _report(output, cache)
        first = output.with_suffix(".json").read_bytes()
        _report(output, cache)  # A second warm run: the same file?
        second = output.with_suffix(".json").read_bytes()
        data = json.loads(second)
        sizes = {
            "html": output.stat().st_size / 1e6,
            "json": output.with_suffix(".json").stat().st_size / 1e6,
        }
        for line in _lines(data, seconds, sizes):
            print(line)
        print(f"Two warm runs, identical report.json: {first == second}")


if __name__ == "__main__":
    main()
