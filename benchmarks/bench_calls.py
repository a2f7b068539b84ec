"""What a user's calls cost: one call on a data set, and a loop of calls.

``python benchmarks/bench_calls.py DIR [--size 512] [--batch 64]
[--export]`` reads the inputs that `benchmarks.bench_report.write_inputs`
writes into ``DIR`` (``test_SIZE.npz``, ``small_attention.keras``; make
``DIR`` and write them first with ``python -c "from benchmarks.bench_report
import write_inputs; write_inputs('DIR', [512])"``) and times, in this one
process, CPU and wall seconds of:

- ``attention_maps(model, images)`` and ``grad_cam(model, images)`` on
  all ``SIZE`` images: the first call of the process and a second one;
- the same two functions called in a loop over ``SIZE / BATCH`` batches,
  the way a user explains a data set batch by batch, given the model
  (at the start of the round a hidden cache kept its functions; at
  6491193 each call built a new state; now the state kept on the model
  is used) and given the model's state (``model_state(model)``, where
  the checkout has it);
- with ``--export``, only ``export_maps`` (attention and Grad-CAM) on
  all images, the first call of the process.

It imports only ``explain_attn``, so the same file measures any checkout
(``PYTHONPATH`` pointing at it). Prints one JSON line.
"""

import argparse
import json
import time
from pathlib import Path

__all__ = ["main"]


def _timed(function):
    """``(cpu seconds, wall seconds)`` of ``function()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    function()
    return (
        round(time.process_time() - cpu, 3),
        round(time.perf_counter() - wall, 3),
    )


def _loop(function, model, images, batch):
    def run():
        for start in range(0, len(images), batch):
            function(model, images[start : start + batch])

    return run


def _state_of(model, function, images):
    """The model's `ModelState` where the checkout's ``function`` takes
    one (``explain_attn.graph.model_state``); else None."""
    try:
        from explain_attn.graph import model_state

        state = model_state(model)
        function(state, images[:1])
    except (ImportError, TypeError):
        return None
    return state


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--export", action="store_true")
    options = parser.parse_args(argv)
    directory = Path(options.directory)
    from explain_attn import attention_maps, grad_cam, load_dataset
    from explain_attn.explanations.export import export_maps
    from explain_attn.models.saving import load_model

    model = load_model(directory / "small_attention.keras")
    images = load_dataset(str(directory / f"test_{options.size}.npz")).images
    if options.export:
        dataset = load_dataset(str(directory / f"test_{options.size}.npz"))
        out = directory / "maps_bench_calls.npz"
        figures = {
            "export_maps": _timed(
                lambda: export_maps(model, dataset, out, methods=("grad_cam",))
            )
        }
        print(json.dumps(figures))
        return
    figures = {}
    calls = {"attention_maps": attention_maps, "grad_cam": grad_cam}
    for name, function in calls.items():
        figures[f"{name}_first"] = _timed(lambda f=function: f(model, images))
        figures[f"{name}_second"] = _timed(lambda f=function: f(model, images))
        figures[f"{name}_loop_model"] = _timed(
            _loop(function, model, images, options.batch)
        )
        state = _state_of(model, function, images)
        if state is not None:
            figures[f"{name}_loop_state"] = _timed(
                _loop(function, state, images, options.batch)
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
