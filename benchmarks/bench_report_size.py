"""The report's size budget: at most 10 MB of HTML at 10,000 test images.

Real reports, not synthetic records: the demo pair (``small_attention`` and
``small_convnet``, untrained, 4 classes) and 1,000 and 10,000 test images
of `explain_attn.data.synthetic.generate` (32 x 32, with masks), written by
`benchmarks.bench_report.write_inputs`. For each size, `build_report` runs
without the Faithfulness section (its figures and tables do not grow with
the test set: on the demo they are about 0.2 MB) and `report_html` renders
the page. Reported: the HTML's size, the explorer payload's share, and the
seconds spent in the stages this report gained (baselines, per-class
numbers, warnings' map statistics, findings, explorer thumbnails and their
encoding), measured by wrapping those functions in this process.

    python -m benchmarks.bench_report_size [--sizes 1000 10000]
"""

import argparse
import collections
import functools
import json
import tempfile
import time

from benchmarks.bench_report import write_inputs

__all__ = ["BUDGET_BYTES", "measure"]

BUDGET_BYTES = 10_000_000
"""The budget at 10,000 test images (see `explain_attn.report.explorer`)."""

_TIMED = (
    "baselines_section",
    "per_class_section",
    "findings",
    "explorer_payload",
)


_SECONDS = collections.defaultdict(float)
"""Seconds per wrapped stage in the current `measure` call."""


def _wrap(name, function):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _SECONDS[name] += time.perf_counter() - start

    return timed


def _instrument():
    """Wraps the new stages once per process."""
    from explain_attn.report import build
    from explain_attn.report.explorer import Thumbnails
    from explain_attn.report.warnings import MapStatistics

    if hasattr(build.findings, "__wrapped__"):
        return
    for name in _TIMED:
        setattr(build, name, _wrap(name, getattr(build, name)))
    Thumbnails.__call__ = _wrap("thumbnails", Thumbnails.__call__)
    MapStatistics.__call__ = _wrap("map_statistics", MapStatistics.__call__)


def measure(size, data, attention, baseline):
    """Builds and renders one report; returns its figures as a dict."""
    from explain_attn.data import load_dataset
    from explain_attn.report import build_report, report_html
    from explain_attn.report.models import load_report_models

    _instrument()
    _SECONDS.clear()
    test = load_dataset(str(data))
    models = load_report_models(
        [str(attention)], str(baseline), safe_mode=True, say=lambda *a: None
    )
    start = time.perf_counter()
    report = build_report(models, test, faithfulness=False, verbose=0)
    build_seconds = time.perf_counter() - start
    start = time.perf_counter()
    html = report_html(report)
    render_seconds = time.perf_counter() - start
    payload = json.dumps(report.explorer, separators=(",", ":"))
    return {
        "images": size,
        "html_bytes": len(html.encode("utf-8")),
        "explorer_bytes": len(payload.encode("utf-8")),
        "build_seconds": round(build_seconds, 2),
        "render_seconds": round(render_seconds, 2),
        "new_stage_seconds": {k: round(v, 2) for k, v in _SECONDS.items()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data, attention, baseline = write_inputs(folder, arguments.sizes)
        for size in arguments.sizes:
            result = measure(size, data[size], attention, baseline)
            if size == 10_000:
                result["budget_bytes"] = BUDGET_BYTES
                result["met"] = result["html_bytes"] <= BUDGET_BYTES
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
