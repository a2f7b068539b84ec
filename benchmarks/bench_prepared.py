"""Per-model state in the open: graph builds and CPU time of maps and report.

``python -m benchmarks.bench_prepared DIR [--rounds 3] [--size 512]``
writes the inputs of `benchmarks.bench_report.write_inputs` into ``DIR``
(once), then, in this process, counts how many times one `export_maps`
call enters ``explain_attn.graph.flat_graph`` and how many times it builds
a flat graph (``_flatten``), and times ``export_maps`` (attention and
Grad-CAM) and ``report_from_sources`` (faithfulness ``fast``) in CPU
seconds (``time.process_time``: the shared machine's load changes wall
time more than CPU time). Prints one JSON line. Run it once per checkout
(``PYTHONPATH`` pointing at each) and divide.
"""

import argparse
import json
import time
from pathlib import Path

__all__ = ["count_graph_calls", "main"]


def count_graph_calls(function):
    """``(entries, builds, result)``: calls of ``flat_graph`` and of the
    graph's build (``_flatten``) while ``function()`` runs."""
    import explain_attn.graph as graph

    counts = {"entries": 0, "builds": 0}
    entered, built = graph.flat_graph, graph._flatten

    def counting_entry(*args, **kwargs):
        counts["entries"] += 1
        return entered(*args, **kwargs)

    def counting_build(*args, **kwargs):
        counts["builds"] += 1
        return built(*args, **kwargs)

    modules = _modules_using(graph.flat_graph)
    for module in modules:
        module.flat_graph = counting_entry
    graph.flat_graph, graph._flatten = counting_entry, counting_build
    try:
        result = function()
    finally:
        for module in modules:
            module.flat_graph = entered
        graph.flat_graph, graph._flatten = entered, built
    return counts["entries"], counts["builds"], result


def _modules_using(function):
    import sys

    return [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("explain_attn")
        and getattr(module, "flat_graph", None) is function
    ]


def _cpu_seconds(function):
    start = time.process_time()
    function()
    return time.process_time() - start


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    options = parser.parse_args(argv)
    from benchmarks.bench_report import write_inputs

    directory = Path(options.directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / f"test_{options.size}.npz").exists():
        write_inputs(directory, [options.size])
    data = directory / f"test_{options.size}.npz"
    attention = directory / "small_attention.keras"
    baseline = directory / "small_convnet.keras"
    from explain_attn import load_dataset
    from explain_attn.explanations.export import export_maps
    from explain_attn.models.saving import load_model
    from explain_attn.report import report_from_sources

    model = load_model(attention)
    dataset = load_dataset(str(data))
    out = directory / "maps.npz"

    def maps():
        return export_maps(model, dataset, out, methods=("grad_cam",))

    def report():
        return report_from_sources(
            str(data),
            attention_models=[str(attention)],
            baseline_model=str(baseline),
            faithfulness="fast",
            verbose=0,
        )

    entries, builds, _ = count_graph_calls(maps)  # Also the warm-up.
    report()
    figures = {"flat_graph_entries": entries, "graph_builds": builds}
    figures["maps_cpu_s"] = [_cpu_seconds(maps) for _ in range(options.rounds)]
    figures["report_cpu_s"] = [
        _cpu_seconds(report) for _ in range(options.rounds)
    ]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
