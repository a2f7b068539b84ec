"""The Faithfulness section, ``fast`` against ``full``, on a real backbone.

Model: ``keras.applications.MobileNetV2(weights=None, input_shape=(96, 96,
3), include_top=False)`` with our `CBAM` appended after its last block,
global average pooling and a softmax head over the 4 synthetic classes
(untrained: the timings do not depend on the weights). Data: 160 test
images of 96 x 96 from `explain_attn.data.synthetic.generate`, with masks.

Each mode runs in a fresh process (tracing included, as a user meets it):
`explain_attn.report.faithfulness.faithfulness_section` on the model's
CBAM map and its Grad-CAM, batch 128. The figures are the section's wall
time and each check's time, one run per mode.

    python -m benchmarks.bench_faithfulness            # fast, then full
    python -m benchmarks.bench_faithfulness --modes fast
"""

import argparse
import json
import sys
import time

from benchmarks.common import Row, run_child

__all__ = ["IMAGE_SIZE", "NUM_IMAGES", "run"]

IMAGE_SIZE = 96
NUM_IMAGES = 160
FAST_GOAL_SECONDS = 60


def build_model(seed=0):
    """MobileNetV2 (random weights) + CBAM + pooling + softmax head."""
    import keras

    from explain_attn.attention import CBAM
    from explain_attn.data import synthetic

    keras.utils.set_random_seed(seed)
    backbone = keras.applications.MobileNetV2(
        weights=None,
        input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        include_top=False,
    )
    x = CBAM(name="cbam")(backbone.output)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(
        len(synthetic.CLASS_NAMES), activation="softmax", name="predictions"
    )(x)
    return keras.Model(backbone.input, outputs, name="mobilenet_v2_cbam")


def _child(mode):
    """Body of a measuring process: prints one JSON line."""
    from explain_attn.data import Dataset, synthetic
    from explain_attn.report.build import report_explanations
    from explain_attn.report.faithfulness import faithfulness_section
    from explain_attn.report.models import ReportModel

    images, labels, masks = synthetic.generate(
        NUM_IMAGES, split="test", seed=0, image_size=IMAGE_SIZE
    )
    test = Dataset(
        images.astype("float32") / 255.0,
        labels,
        masks,
        class_names=synthetic.CLASS_NAMES,
    )
    model = build_model()
    entry = ReportModel("attention", "attention", "mobilenet_v2_cbam", model)
    explanations, _ = report_explanations([entry])
    messages = []
    start = time.perf_counter()
    section = faithfulness_section(
        [entry], explanations, test, settings=mode, say=messages.append
    )
    seconds = time.perf_counter() - start
    cascade = section["randomization"][0]["cascade"]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "messages": messages,
                "settings": section["settings"],
                "cascade_steps": len(cascade["layers"]),
                "cascade_unit": cascade["unit"],
                "weighted_layers": sum(len(s) for s in cascade["steps"]),
            }
        )
    )


def _measure(mode):
    command = [sys.executable, "-m", "benchmarks.bench_faithfulness"]
    return run_child([*command, "--child", mode], OPENBLAS_NUM_THREADS="1")


def run(modes=("fast", "full")):
    """Runs each mode in a fresh process; returns table rows."""
    rows = []
    for mode in modes:
        result = _measure(mode)
        settings = result["settings"]
        seconds = result["seconds"]
        fast = mode == "fast"
        rows.append(
            Row(
                item="faithfulness MobileNetV2 96px",
                subject=mode,
                measure="faithfulness_section seconds",
                median=seconds,
                low=seconds,
                high=seconds,
                unit="s",
                goal=f"< {FAST_GOAL_SECONDS} s" if fast else "",
                met=seconds < FAST_GOAL_SECONDS if fast else None,
                note=(
                    f"{NUM_IMAGES} test images; interventions "
                    f"{settings['num_intervention_images']}, randomisation "
                    f"{settings['num_randomization_images']} "
                    f"({result['cascade_steps']} {result['cascade_unit']} "
                    f"steps over {result['weighted_layers']} layers with "
                    f"weights), deletion {settings['num_deletion_images']} "
                    f"x {settings['steps']} steps; "
                    + "; ".join(
                        m.removeprefix("Faithfulness: ")
                        for m in result["messages"]
                    )
                    + "; one run, fresh process"
                ),
            )
        )
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=("fast", "full"))
    parser.add_argument(
        "--modes", nargs="+", default=("fast", "full"), choices=("fast", "full")
    )
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return
    from benchmarks.run import render_markdown

    print("\n".join(render_markdown(run(args.modes))))


if __name__ == "__main__":
    main()
