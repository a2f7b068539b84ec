"""`explain-attn train`: train a network and save it."""

from pathlib import Path

import click

from explain_attn.cli.common import (
    image_size_option,
    import_option,
    seed_option,
    user_errors,
)


@click.command("train")
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
@image_size_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most this many images of each split.",
)
@seed_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    help="The .keras model file; its history goes beside it as .json.",
)
@import_option
@user_errors
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
