"""`explain-attn train`: build or import a network, train it soundly, save it.

The network is a built-in architecture (``--architecture``), a
`keras.applications` backbone (``--backbone``) or the user's own
(``--model-factory module:function``); ``--attention KIND --after
PATTERN`` inserts attention into it (`explain_attn.add_attention`). The
training recipe is `explain_attn.models.training`'s: inputs standardised
inside the model, BatchNormalization recalibrated, the result checked.
"""

from pathlib import Path

import click

from explain_attn.cli.common import (
    devices_option,
    image_size_option,
    import_option,
    quiet_option,
    seed_option,
    task_option,
    user_errors,
)

ARCHITECTURE_NAMES = [
    "attention",
    "attention_ablation",
    "attention_unet",
    "baseline",
    "residual",
    "small_attention",
    "small_convnet",
    "unet",
]

SEGMENTATION_REFUSED = (
    "backbone",
    "weights",
    "freeze_backbone",
    "alpha",
    "model_factory",
    "attention",
    "after",
    "early_stopping",
    "restore_best",
    "resume",
    "record_every_steps",
    "limit",
    "tensorboard",
    "wandb",
    "mlflow",
    "stream",
)
"""Options ``--task segmentation`` does not take (yet)."""


def _model_options(function):
    options = [
        click.option(
            "--architecture",
            type=click.Choice(ARCHITECTURE_NAMES),
            default=None,
            help="A built-in network (see explain_attn.ARCHITECTURES) "
            "[default: small_attention, unless --backbone or "
            "--model-factory].",
        ),
        click.option(
            "--backbone",
            default=None,
            help="A keras.applications backbone: MobileNetV2, "
            "MobileNetV3Small, ResNet50, ResNet50V2, EfficientNetB0 or "
            "DenseNet121, with a pooling and softmax head.",
        ),
        click.option(
            "--weights",
            type=click.Path(dir_okay=False),
            default=None,
            help="A local weights file for --backbone without its top "
            "[default: random weights; nothing is downloaded].",
        ),
        click.option(
            "--freeze-backbone",
            is_flag=True,
            help="Train only what is not the backbone.",
        ),
        click.option(
            "--alpha",
            type=click.FloatRange(min=0.0, min_open=True),
            default=None,
            help="Width multiplier of the MobileNet backbones.",
        ),
        click.option(
            "--model-factory",
            default=None,
            metavar="MODULE:FUNCTION",
            help="Your architecture: a function (in a module or file.py) "
            "taking input_shape and num_classes and returning a "
            "keras.Model.",
        ),
        click.option(
            "--attention",
            type=click.Choice(["spatial", "cbam", "channel", "se", "eca"]),
            default=None,
            help="Insert this attention after each --after layer.",
        ),
        click.option(
            "--after",
            multiple=True,
            metavar="PATTERN",
            help="A layer name, outer/inner path or glob pattern; repeat "
            "for more.",
        ),
        click.option(
            "--control",
            is_flag=True,
            help="Insert identity instead of --attention: the "
            "capacity-matched control (for attention_unet: unet, its gates "
            "replaced by identity).",
        ),
        task_option,
        click.option(
            "--loss",
            type=click.Choice(["dice", "cross_entropy"]),
            default=None,
            help="--task segmentation: soft Dice or pixel cross-entropy "
            "[default: dice].",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _training_options(function):
    options = [
        click.option(
            "--validation-split",
            type=click.FloatRange(min=0.0, max=0.5),
            default=0.1,
            show_default=True,
            help="Fraction of the training split held out for validation "
            "(never the test split); 0 for none.",
        ),
        click.option(
            "--early-stopping",
            type=click.IntRange(min=1),
            default=None,
            metavar="PATIENCE",
            help="Stop when the validation loss has not improved for "
            "PATIENCE epochs.",
        ),
        click.option(
            "--restore-best",
            is_flag=True,
            help="Keep the weights of the epoch with the best validation "
            "loss (the best checkpoint), not the last.",
        ),
        click.option(
            "--resume",
            is_flag=True,
            help="Keep the run's progress in '<output>.backup/' (removed "
            "when the model is written) and, when it is there, continue "
            "from its last finished epoch: rerun the same command after a "
            "kill or Ctrl-C.",
        ),
        click.option(
            "--record/--no-record",
            default=True,
            show_default=True,
            help="Record attention on probe images each epoch into "
            "'<output>.record.npz' (the report's 'Attention during "
            "training').",
        ),
        click.option(
            "--record-images",
            type=click.IntRange(min=1),
            default=8,
            show_default=True,
            help="Probe images of the record.",
        ),
        click.option(
            "--record-every-steps",
            type=click.IntRange(min=1),
            default=None,
            help="Record every that many steps instead of every epoch.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _tracker_options(function):
    options = [
        click.option(
            "--tensorboard",
            type=click.Path(file_okay=False),
            default=None,
            metavar="LOGDIR",
            help="Write TensorBoard logs to LOGDIR: Keras' (train, "
            "validation) and the attention record's (LOGDIR/attention: "
            "each layer's maps over the probe images, metrics, gate "
            "histograms).",
        ),
        click.option(
            "--wandb",
            is_flag=True,
            help="Log the attention record to Weights & Biases (offline "
            "unless WANDB_MODE says otherwise; extra [wandb]).",
        ),
        click.option(
            "--mlflow",
            is_flag=True,
            help="Log the attention record to MLflow (MLFLOW_TRACKING_URI, "
            "else ./mlruns; extra [mlflow]).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command("train")
@_model_options
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
@click.option(
    "--stream",
    is_flag=True,
    help="Read a folder or .npz batch by batch while training instead of "
    "loading it (memory flat in the number of images; every pass decodes "
    "the images again).",
)
@_training_options
@_tracker_options
@devices_option
@seed_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    help="The .keras model file; its history goes beside it as .json.",
)
@import_option
@quiet_option
@user_errors
def train_command(
    output, data_source, image_size, limit, seed, devices, **options
):
    """Train a network on --data, evaluate it on the test split, save it.

    Prints Keras' progress bar, any warning about the trained model, and
    the test accuracy. Writes the model (--output, '.keras'), its training
    history ('<output>.json': loss and accuracy per epoch, test accuracy,
    checks and settings) and its attention record
    ('<output>.record.npz'), as one set: all three are replaced together
    once the run succeeds, so a failure, a kill or Ctrl-C (exit 130) leaves
    the earlier set as it was.

    With --devices N|all the model is built and trained under
    tf.distribute.MirroredStrategy: each batch of --batch-size images is
    split across the devices, which average their gradients.
    """
    from explain_attn.data import train_test_datasets
    from explain_attn.devices import make_strategy
    from explain_attn.models.pipeline import train_to_file
    from explain_attn.models.recorder import record_path
    from explain_attn.stages import watch_outputs
    from explain_attn.writing import check_writable

    output_path = Path(output)
    if output_path.suffix != ".keras":
        raise ValueError(
            f"--output must end in '.keras'. Received: --output {output}"
        )
    check_writable(output_path)
    watch_outputs(
        output_path, output_path.with_suffix(".json"), record_path(output_path)
    )

    if _segmentation_task(options):
        return _train_segmentation(
            output_path, data_source, image_size, seed, devices, options
        )
    strategy = make_strategy(devices)
    sources = [
        name
        for name in ("architecture", "backbone", "model_factory")
        if options[name] is not None
    ]
    if len(sources) > 1:
        given = ", ".join("--" + s.replace("_", "-") for s in sources)
        raise ValueError(
            "Give one of --architecture, --backbone and --model-factory. "
            f"Received: {given}."
        )
    options["sinks"], options["callbacks"] = _trackers(options)
    train, test = train_test_datasets(
        data_source,
        image_size=image_size,
        limit=limit,
        seed=seed,
        stream=options.pop("stream"),
    )
    train_to_file(
        train,
        test,
        output_path,
        data_source=data_source,
        seed=seed,
        say=click.echo,
        warn=lambda text: click.echo(f"Warning: {text}", err=True),
        strategy=strategy,
        **options,
    )


def _segmentation_task(options):
    """Whether to train a segmentation model: ``--task``, else the
    architecture; removes the segmentation-only options."""
    from explain_attn.models.architectures import SEGMENTATION_ARCHITECTURES

    task, loss = options.pop("task"), options.pop("loss")
    options["segmentation_loss"] = loss
    segmentation = options["architecture"] in SEGMENTATION_ARCHITECTURES
    if task == "classification" and segmentation:
        raise ValueError(
            f"--architecture {options['architecture']} is a segmentation "
            "model; give --task segmentation or leave --task out."
        )
    if loss is not None and not (segmentation or task == "segmentation"):
        raise ValueError("--loss applies to --task segmentation only.")
    return task == "segmentation" or segmentation


def _train_segmentation(
    output_path, data_source, image_size, seed, devices, options
):
    """``--task segmentation``: `train_segmentation_to_file`."""
    from explain_attn.data import train_test_datasets
    from explain_attn.models.segmentation_pipeline import (
        train_segmentation_to_file,
    )

    given = [
        name
        for name in SEGMENTATION_REFUSED
        if options.get(name) not in (None, False, ())
    ]
    given += ["devices"] if devices != "1" else []
    if given:
        raise ValueError(
            f"--{given[0].replace('_', '-')} is not supported with --task "
            "segmentation yet."
        )
    train, test = train_test_datasets(
        data_source, image_size=image_size, seed=seed
    )
    train_segmentation_to_file(
        train,
        test,
        output_path,
        data_source=data_source,
        seed=seed,
        architecture=options["architecture"],
        control=options["control"],
        record=options["record"],
        record_images=options["record_images"],
        epochs=options["epochs"],
        batch_size=options["batch_size"],
        learning_rate=options["learning_rate"],
        loss=options["segmentation_loss"],
        say=click.echo,
        warn=lambda text: click.echo(f"Warning: {text}", err=True),
    )


def _trackers(options):
    """The trackers' sinks and callbacks, checked before training."""
    from explain_attn.models.sinks import make_sinks

    wanted = {
        "tensorboard": options.pop("tensorboard"),
        "wandb": options.pop("wandb"),
        "mlflow": options.pop("mlflow"),
    }
    if any(v not in (None, False) for v in wanted.values()):
        if not options["record"]:
            raise ValueError(
                "The trackers (--tensorboard, --wandb, --mlflow) show the "
                "attention record: leave out --no-record."
            )
    return make_sinks(**wanted)
