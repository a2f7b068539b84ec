"""The ``explain-attn`` command line: a thin layer over the Python API.

Each command parses its arguments, calls the library and prints. Bad input,
whether caught by click or raised by the library as `ValueError` or
`TypeError`, becomes one line on stderr, ``Error: <what and how to fix>``,
and exit code 2, without a traceback.
"""

import functools
import os
import sys
from pathlib import Path

import click

from explain_attn import __version__


class InputError(click.ClickException):
    """A user-input problem: shown as one line, exit code 2."""

    exit_code = 2


def _one_line(message):
    return " ".join(str(message).split())


def _import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up logs kept off stderr.

    TensorFlow 2.21 logs through absl before any log level applies
    (``TF_CPP_MIN_LOG_LEVEL`` does not silence these lines), which would
    break the promise of one line on stderr for bad input. The process's
    file descriptor 2 points to /dev/null while TensorFlow imports and
    initialises its devices; Python errors raised meanwhile still reach the
    user, because the descriptor is restored before they propagate. Set
    ``EXPLAIN_ATTN_TF_LOGS=1`` to see the logs.
    """
    if "tensorflow" in sys.modules or os.environ.get("EXPLAIN_ATTN_TF_LOGS"):
        return
    saved = os.dup(2)
    try:
        silent = os.open(os.devnull, os.O_WRONLY)
        os.dup2(silent, 2)
        os.close(silent)
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()
        tf.constant(0.0).numpy()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _user_errors(function):
    """Turns library input errors into a one-line `InputError`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        _import_tensorflow_quietly()
        try:
            return function(*args, **kwargs)
        except (ValueError, TypeError) as error:
            raise InputError(_one_line(error)) from None

    return wrapper


class _OneLineErrors(click.Group):
    """A click group whose usage errors are one line, like `InputError`."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        try:
            result = super().main(
                args, prog_name, standalone_mode=False, **extra
            )
        except click.ClickException as error:
            click.echo(f"Error: {_one_line(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


@click.group(
    cls=_OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="explain-attn")
def main():
    """Attention maps, Grad-CAM and shareable reports for Keras ConvNets."""


# Commands are registered below, one function each.


_layer_option = click.option(
    "--layer",
    "layer_names",
    multiple=True,
    help="Layer name, outer/inner path or glob pattern; repeat for more. "
    "Default: every attention layer.",
)
_seed_option = click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of training, intervals and example choice.",
)
_image_size_option = click.option(
    "--image-size",
    type=click.IntRange(min=1),
    default=None,
    help="Resize images to SIZE x SIZE [default: keep their size].",
)


def _method_option(function):
    # Not a click.Choice: the registry needs TensorFlow, and `--help` should
    # not wait for it. An unknown name is a one-line error listing them.
    return click.option(
        "--method",
        "methods",
        multiple=True,
        help="A class-activation method: grad_cam, grad_cam_plus_plus, "
        "layer_cam, hires_cam or any registered one; repeat for more. The "
        "report compares attention with the baseline's first "
        "[default: grad_cam].",
    )(function)


def _unsafe_load_option(function):
    return click.option(
        "--unsafe-load",
        is_flag=True,
        help="Load models with Keras safe mode off (runs code stored in "
        "the file, e.g. Lambda layers). Only for files you trust.",
    )(function)


@main.command("layers")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@_unsafe_load_option
@_user_errors
def layers_command(model_path, unsafe_load):
    """List MODEL's attention layers and the layers usable for Grad-CAM.

    MODEL is a '.keras' file. Nested models are searched; their layers are
    shown as 'outer/inner' paths, which every other command accepts.
    """
    from explain_attn.explanations.lookup import (
        default_cam_layer,
        describe_layers,
    )
    from explain_attn.models.saving import load_model

    model = load_model(model_path, safe_mode=not unsafe_load)
    rows = describe_layers(model)
    attention = [r for r in rows if r["kind"] in ("attention", "gate")]
    channel = [r for r in rows if r["kind"] == "channel"]
    spatial = [r for r in rows if r["kind"] not in ("channel",)]
    click.echo(f"Model {model.name!r}: {model.count_params():,} parameters")
    click.echo("Attention layers (path, kind, class, output shape):")
    for row in attention or [None]:
        click.echo(_layer_line(row) if row else "  none")
    if channel:
        click.echo("Channel attention layers (weights per channel, no map):")
        for row in channel:
            click.echo(_layer_line(row))
    default = default_cam_layer(model) if spatial else None
    click.echo("4-D layers usable for Grad-CAM (* = default):")
    for row in spatial or [None]:
        if row is None:
            click.echo("  none")
        else:
            mark = "*" if row["path"] == default else " "
            click.echo(f"{mark}{_layer_line(row)[1:]}")


def _layer_line(row):
    shape = (
        "("
        + ", ".join(
            "None" if s is None else str(s) for s in row["output_shape"]
        )
        + ")"
    )
    return f"  {row['path']}  {row['kind']}  {row['class_name']}  {shape}"


@main.command("maps")
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option(
    "--data",
    "data_source",
    required=True,
    help="'sample', 'cifar10', an image folder or an .npz file.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "train"]),
    default="test",
    show_default=True,
    help="Which split of --data to use.",
)
@_layer_option
@click.option(
    "--grad-cam",
    "with_grad_cam",
    is_flag=True,
    help="Also compute Grad-CAM (the same as --method grad_cam).",
)
@_method_option
@click.option(
    "--cam-layer",
    default=None,
    help="Layer of the --method maps: name, path or pattern of one 4-D "
    "layer [default: the last 4-D layer].",
)
@_image_size_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use only the first N images.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default="maps.npz",
    show_default=True,
    help="Where to write the maps (.npz).",
)
@_unsafe_load_option
@_user_errors
def maps_command(
    model_path,
    data_source,
    split,
    layer_names,
    with_grad_cam,
    methods,
    cam_layer,
    image_size,
    limit,
    batch_size,
    output,
    unsafe_load,
):
    """Write MODEL's attention maps (and CAMs) for a dataset to an .npz.

    The file holds, for each layer i, 'map_i' (N, h, w) float32 and its
    path in 'layer_names'; 'labels', 'predictions', 'class_names'; for each
    --method NAME (or --grad-cam) also 'NAME' (N, h, w) for the predicted
    class and 'NAME_layer'. A model without attention layers needs a
    --method.
    """
    from explain_attn.data import load_dataset
    from explain_attn.explanations.export import export_maps
    from explain_attn.models.saving import load_model

    if not output.endswith(".npz"):
        raise ValueError(
            f"--output must end in '.npz'. Received: --output {output}"
        )
    model = load_model(model_path, safe_mode=not unsafe_load)
    dataset = load_dataset(
        data_source, split=split, image_size=image_size, limit=limit
    )
    summary = export_maps(
        model,
        dataset,
        output,
        layers=list(layer_names) or None,
        methods=methods,
        cam_layer=cam_layer,
        with_grad_cam=with_grad_cam,
        batch_size=batch_size,
    )
    for path, shape in summary.items():
        click.echo(f"{path}: {shape}")
    click.echo(output)


@main.command("report")
@click.option(
    "--data",
    "data_source",
    default="sample",
    show_default=True,
    help="'sample', 'cifar10', an image folder or an .npz file.",
)
@click.option(
    "--attention-model",
    "attention_models",
    multiple=True,
    type=click.Path(),
    help="A .keras attention model; repeat for more. Needs "
    "--baseline-model. Without models the demo pair is trained.",
)
@click.option(
    "--baseline-model",
    type=click.Path(),
    help="The .keras baseline whose Grad-CAM the attention is compared with.",
)
@_layer_option
@_method_option
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Training epochs of the demo models [default: the demo's].",
)
@click.option(
    "--num-examples",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Test images shown in the gallery.",
)
@_image_size_option
@_seed_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="The HTML report; the numbers go beside it as .json.",
)
@click.option(
    "--no-faithfulness",
    is_flag=True,
    help="Skip the Faithfulness section (attention interventions, "
    "randomisation checks, deletion curves) when time matters.",
)
@click.option(
    "--spurious-correlation",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Demo on --data sample only: probability that a training image's "
    "background tint gives its class away; the test split stays clean.",
)
@_unsafe_load_option
@_user_errors
def report_command(
    data_source,
    attention_models,
    baseline_model,
    layer_names,
    methods,
    epochs,
    num_examples,
    image_size,
    seed,
    output,
    no_faithfulness,
    spurious_correlation,
    unsafe_load,
):
    """Compare attention maps with the baseline's CAMs in an HTML report.

    With no options, runs the demo offline: trains (or loads from the cache)
    a ConvNet and the same network with spatial attention on the bundled
    sample data, evaluates both on its test split, and writes report.html
    and report.json. The last line printed is the report's path.
    """
    from explain_attn.models.saving import atomic_path, check_writable
    from explain_attn.report import report_from_sources, report_html, write_json

    output_path = Path(output)
    if output_path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(
            f"--output must end in '.html'. Received: --output {output}"
        )
    json_path = output_path.with_suffix(".json")
    check_writable(output_path)
    report = report_from_sources(
        data_source,
        attention_models=attention_models,
        baseline_model=baseline_model,
        layers=list(layer_names) or None,
        methods=list(methods) or ["grad_cam"],
        epochs=epochs,
        num_examples=num_examples,
        image_size=image_size,
        seed=seed,
        safe_mode=not unsafe_load,
        command_line=" ".join(["explain-attn", *sys.argv[1:]]),
        log=click.echo,
        faithfulness=not no_faithfulness,
        spurious_correlation=spurious_correlation,
    )
    # Render first: an error or Ctrl-C while rendering writes nothing.
    html = report_html(report)
    write_json(report, json_path)
    with atomic_path(output_path) as temporary:
        temporary.write_text(html, encoding="utf-8")
    click.echo(f"Numbers: {json_path}")
    click.echo(str(output_path))


@main.command("train")
@click.option(
    "--architecture",
    type=click.Choice(
        [
            "attention",
            "attention_ablation",
            "baseline",
            "residual",
            "small_attention",
            "small_convnet",
        ]
    ),
    default="small_attention",
    show_default=True,
    help="The network to build (see explain_attn.ARCHITECTURES).",
)
@click.option(
    "--data",
    "data_source",
    default="sample",
    show_default=True,
    help="'sample', 'cifar10', an image folder DIR/images/<class>/<name>.png "
    "(with DIR/train and DIR/test, or 20 % held out) or an .npz file.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Passes over the training data [default: the demo's].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Images per step [default: the demo's].",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Adam's starting learning rate [default: the demo's].",
)
@_image_size_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most this many images of each split.",
)
@_seed_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    help="The .keras model file; its history goes beside it as .json.",
)
@_user_errors
def train_command(
    architecture,
    data_source,
    epochs,
    batch_size,
    learning_rate,
    image_size,
    limit,
    seed,
    output,
):
    """Train a network on --data, evaluate it on the test split, save it.

    Prints Keras' progress bar and then the test accuracy. Writes the model
    (--output, '.keras') and its training history ('<output>.json': loss
    and accuracy per epoch, test accuracy and settings), each atomically.
    """
    import json
    import time

    from explain_attn.data import train_test_datasets
    from explain_attn.models import training
    from explain_attn.models.saving import (
        atomic_path,
        check_writable,
        save_model,
    )

    output_path = Path(output)
    if output_path.suffix != ".keras":
        raise ValueError(
            f"--output must end in '.keras'. Received: --output {output}"
        )
    history_path = output_path.with_suffix(".json")
    check_writable(output_path)
    train, test = train_test_datasets(
        data_source, image_size=image_size, limit=limit, seed=seed
    )
    settings = {
        "epochs": epochs or training.DEMO_EPOCHS,
        "batch_size": batch_size or training.DEMO_BATCH_SIZE,
        "learning_rate": learning_rate or training.DEMO_LEARNING_RATE,
        "seed": seed,
    }
    click.echo(
        f"Training {architecture} on {len(train)} images of {data_source!r} "
        f"({train.num_classes} classes), testing on {len(test)}."
    )
    start = time.perf_counter()
    model, history = training.train_architecture(
        architecture, train, verbose=1, **settings
    )
    seconds = time.perf_counter() - start
    accuracy = training.evaluate(model, test)
    save_model(model, output_path)
    record = {
        "architecture": architecture,
        "data": str(data_source),
        "class_names": list(train.class_names),
        "training_images": len(train),
        "test_images": len(test),
        **settings,
        "history": {
            key: [float(value) for value in values]
            for key, values in history.history.items()
        },
        "test_accuracy": accuracy,
        "training_seconds": round(seconds, 1),
    }
    with atomic_path(history_path) as temporary:
        temporary.write_text(json.dumps(record, indent=2) + "\n")
    click.echo(f"Trained in {seconds:.1f} s.")
    click.echo(f"Test accuracy: {accuracy:.4f} ({len(test)} images)")
    click.echo(f"History: {history_path}")
    click.echo(str(output_path))
