"""Issue 27, seventh round: what tracing the report's functions costs,
with and without AutoGraph.

The library compiles its passes with `explain_attn.devices.graph_function`
(``tf.function(..., autograph=False)``); before, with `tf.function`'s
default, AutoGraph converted every function the trace called. This script
runs a report in a fresh process per round, alternating the two ways,
and sums the CPU seconds TensorFlow spends creating concrete functions
(its private ``tracing_compilation._create_concrete_function``, wrapped:
a benchmark may reach inside). It checks that both ways write the same
``report.json`` numbers.

- ``--case demo``: the demo's report (`report_from_sources()`, the
  faithfulness checks in full), its models from ``--cache-dir``;
- ``--case 224``: a report of 300 generated images of 224² on the untrained
  demo pair at 224² (`benchmarks.bench_report`), faithfulness off.

Run: ``python -m benchmarks.bench_tracing --case demo --rounds 3
--cache-dir /tmp/demo-cache``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import explain_attn.cli.common as common
common.import_keras()
import tensorflow as tf
from tensorflow.python.eager.polymorphic_function import tracing_compilation
import explain_attn.devices as devices
if sys.argv[1] == "autograph":  # The way before: tf.function's default.
    def with_autograph(function, input_signature=None):
        return tf.function(function, input_signature=input_signature)
    for module in list(sys.modules.values()):
        if getattr(module, "graph_function", None) is devices.graph_function:
            module.graph_function = with_autograph
spent = {"cpu": 0.0, "traces": 0}
create = tracing_compilation._create_concrete_function
def timed(*args, **kwargs):
    started = time.process_time()
    try:
        return create(*args, **kwargs)
    finally:
        spent["cpu"] += time.process_time() - started
        spent["traces"] += 1
tracing_compilation._create_concrete_function = timed
from explain_attn.report import report_from_sources, write_json
arguments = json.loads(sys.argv[3])
write_json(report_from_sources(verbose=0, **arguments), sys.argv[2])
print("TRACING " + json.dumps(spent))
"""


def _arguments(case, folder):
    """``report_from_sources`` keywords of ``case`` (``"demo"``, ``"224"``)."""
    if case == "demo":
        return {"faithfulness": "full"}
    from benchmarks.bench_report import _scale_models, write_scale_data

    attention, baseline = _scale_models(folder, 224)
    data = write_scale_data(Path(folder) / "data.npz", 300, 224)
    return {
        "data": str(data),
        "attention_models": [str(attention)],
        "baseline_model": str(baseline),
        "faithfulness": "off",
        "batch_size": 128,
    }


def _child(way, output, arguments, cache_dir):
    environment = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if cache_dir:
        environment["EXPLAIN_ATTN_CACHE_DIR"] = str(cache_dir)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, way, str(output), json.dumps(arguments)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(
        line
        for line in result.stdout.splitlines()
        if line.startswith("TRACING ")
    )
    return json.loads(line.removeprefix("TRACING "))


def _numbers(path):
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data.pop("run", None)  # Times, paths and the date differ by run.
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["demo", "224"], default="demo")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache-dir", default=None)
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_tracing_") as folder:
        keywords = _arguments(arguments.case, folder)
        outputs = {}
        for round_index in range(arguments.rounds):
            for way in ("autograph", "graph_function"):
                output = Path(folder) / f"{way}.json"
                spent = _child(way, output, keywords, arguments.cache_dir)
                outputs[way] = _numbers(output)
                print(
                    f"round {round_index + 1} {way}: {spent['traces']} traces, "
                    f"{spent['cpu']:.2f} CPU s",
                    flush=True,
                )
        same = outputs["autograph"] == outputs["graph_function"]
        print(f"report.json numbers equal (the run record aside): {same}")


if __name__ == "__main__":
    main()
