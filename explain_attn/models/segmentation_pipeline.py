"""``explain-attn train --task segmentation``: a U-Net trained on masks.

The built-in `unet` or `attention_unet` (``--control`` turns the second
into the first: its gates replaced by identity) learns each pixel's label,
object (1) or background (0), from the data's masks (with multi-class
masks, ``masks/labels.txt``: each pixel's class, 0 the background), with a
soft Dice loss or cross-entropy. The model, its history (``<stem>.json``:
loss per epoch, the test Dice with its interval, the checks) and, with
``record``, its gates' maps on probe images after every epoch
(``<stem>.record.npz``, the filmstrip of `explain_attn.models.recorder`) are
written atomically.
"""

import json
from pathlib import Path

import numpy as np

from explain_attn.metrics.segmentation import dice_per_class, image_scores
from explain_attn.metrics.statistics import summarize
from explain_attn.models.architectures import (
    SEGMENTATION_ARCHITECTURES,
    build_model,
)
from explain_attn.models.recorder import AttentionRecorder, record_path
from explain_attn.models.saving import atomic_path, save_model
from explain_attn.models.segmentation_training import (
    LOSSES,
    train_segmentation,
)
from explain_attn.options import RunOptions

__all__ = ["SEGMENTATION_TRAINING", "train_segmentation_to_file"]

SEGMENTATION_TRAINING = {
    "epochs": 6,
    "batch_size": 32,
    "learning_rate": 3e-3,
    "loss": "dice",
}
"""The defaults of ``explain-attn train --task segmentation``."""


def _architecture(architecture, control):
    architecture = architecture or "attention_unet"
    if architecture not in SEGMENTATION_ARCHITECTURES:
        raise ValueError(
            "--task segmentation trains unet or attention_unet. Received: "
            f"--architecture {architecture}"
        )
    return "unet" if control else architecture


def _targets(dataset, name):
    if dataset.masks is None:
        raise ValueError(
            f"The {name} split has no masks, and a segmentation model learns "
            "from them (its targets). Give data with a masks/ folder."
        )
    return dataset.masks.astype(np.int64)


def _num_labels(dataset):
    """Labels per pixel, background included: 2 (object or not), or one
    per mask label and the background."""
    if dataset.mask_labels is None:
        return 2
    return len(dataset.mask_labels) + 1


def _model(architecture, train, test):
    """The U-Net to train, one output per label of ``train``'s masks."""
    if train.mask_labels != test.mask_labels:
        raise ValueError(
            "The training and test masks must have the same labels "
            f"(masks/labels.txt). Received: {train.mask_labels} and "
            f"{test.mask_labels}"
        )
    return build_model(
        architecture,
        input_shape=tuple(train.images.shape[1:]),
        num_classes=_num_labels(train),
    )


def _task(train):
    if train.mask_labels is None:
        return "object against background"
    return f"{', '.join(train.mask_labels)} against background"


def _test_dice(model, test, options):
    """The test images' Dice summary (`RunOptions`: batch size, seed)."""
    probabilities = model.predict(
        test.images, batch_size=options.batch_size, verbose=0
    )
    predicted = probabilities.argmax(-1)
    targets = _targets(test, "test")
    per_class = dice_per_class(predicted, targets, num_labels=_num_labels(test))
    return summarize(image_scores(per_class), seed=options.seed)


def _settings(given):
    """The training settings: ``given``'s, `SEGMENTATION_TRAINING`'s for
    the ones left ``None``; the loss checked."""
    settings = {
        key: given.get(key) or value
        for key, value in SEGMENTATION_TRAINING.items()
    }
    if settings["loss"] not in LOSSES:
        raise ValueError(
            f"--loss must be one of {', '.join(LOSSES)}. Received: --loss "
            f"{settings['loss']}"
        )
    return settings


def _problems(model, dice, warn):
    """The history's problems (each also given to ``warn``)."""
    problems = []
    if not dice["mean"] > 0:
        problems.append(
            f"Model {model.name!r} has a test Dice of {dice['mean']:.3f}: no "
            "better than predicting the background everywhere."
        )
        warn(problems[-1])
    return problems


def train_segmentation_to_file(
    train,
    test,
    output,
    *,
    data_source,
    architecture=None,
    control=False,
    seed=0,
    record=True,
    record_images=8,
    say=print,
    warn=print,
    **settings,
):
    """Builds, trains, checks and saves a U-Net; see the module.

    Args:
        train, test: `explain_attn.data.Dataset` objects with masks.
        output: The ``.keras`` path.
        data_source: What the data was loaded from, for the history.
        architecture: ``"unet"`` or ``"attention_unet"`` (default).
        control: Replace the gates by identity (gives ``"unet"``).
        seed, record, record_images: As ``explain-attn train``.
        say, warn: Where progress and problems go.
        **settings: ``epochs``, ``batch_size``, ``learning_rate``, ``loss``
            (``None`` for `SEGMENTATION_TRAINING`'s).

    Returns:
        The JSON-ready dict written to ``<stem>.json``.
    """
    architecture = _architecture(architecture, control)
    settings = _settings(settings)
    targets = _targets(train, "training")
    _targets(test, "test")
    model = _model(architecture, train, test)
    say(
        f"Training {model.name} ({model.count_params():,} parameters) on "
        f"{len(targets)} images of {data_source!r}, {_task(train)}, "
        f"{settings['loss']} loss; testing on {len(test.labels)}"
    )
    output = Path(output)
    callbacks = []
    if record:
        callbacks.append(
            AttentionRecorder(
                test,
                record_path(output),
                num_images=record_images,
                seed=seed,
            )
        )
    info = train_segmentation(
        model,
        train.images,
        targets,
        seed=seed,
        callbacks=callbacks,
        **settings,
    )
    options = RunOptions(batch_size=settings["batch_size"], seed=seed)
    dice = _test_dice(model, test, options)
    history = {
        "task": "segmentation",
        "architecture": architecture,
        "data": str(data_source),
        "seed": seed,
        **settings,
        **info,
        "test_dice": dice,
        "problems": _problems(model, dice, warn),
    }
    save_model(model, output)
    with atomic_path(output.with_suffix(".json")) as temporary:
        temporary.write_text(json.dumps(history, indent=1), encoding="utf-8")
    say(
        f"Test Dice: {dice['mean']:.3f} [{dice['ci_low']:.3f}, "
        f"{dice['ci_high']:.3f}]"
    )
    return history
