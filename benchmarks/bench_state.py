"""What a one-shot call pays for building a model's state.

``python -m benchmarks.bench_state`` builds ``small_attention`` (32², 2
classes) and ``keras.applications.MobileNetV2`` (96², ``weights=None``), and
prints, in CPU seconds (``time.process_time``: the shared machine's load
changes wall time more), medians of 3 rounds after a warm-up: the flat
graph's build (`explain_attn.graph.ModelState.graph`), the graph and
attention discovery on it, and ``grad_cam`` of 2 images given the model
(its state, graph and compiled function are built for the call) and
given a state built once.
"""

import statistics
import time

__all__ = ["main"]


def _cpu(function):
    start = time.process_time()
    function()
    return time.process_time() - start


def _median(function, rounds=3):
    function()  # Warm-up.
    return statistics.median(_cpu(function) for _ in range(rounds))


def _figures(model):
    import numpy as np

    from explain_attn import grad_cam
    from explain_attn.attention.discovery import discover_modules
    from explain_attn.graph import model_state

    shape = tuple(model.inputs[0].shape[1:])
    images = np.random.default_rng(0).random((2, *shape), dtype="f4")
    state = model_state(model)
    return {
        "calls": len(state.graph.taps),
        "graph_s": _median(lambda: model_state(model).graph),
        "graph_and_modules_s": _median(lambda: discover_modules(model)),
        "grad_cam_given_model_s": _median(lambda: grad_cam(model, images)),
        "grad_cam_given_state_s": _median(lambda: grad_cam(state, images)),
    }


def main():
    import keras

    from explain_attn import build_model

    models = {
        "small_attention": build_model(
            "small_attention", input_shape=(32, 32, 3), num_classes=2
        ),
        "MobileNetV2": keras.applications.MobileNetV2(
            weights=None, input_shape=(96, 96, 3), classes=10
        ),
    }
    for name, model in models.items():
        figures = _figures(model)
        print(name, {k: round(v, 4) for k, v in figures.items()})


if __name__ == "__main__":
    main()
