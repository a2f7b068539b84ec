"""Train what users have, end to end: `train_to_file`.

What ``explain-attn train`` does, as one function: build the network (a
built-in architecture, a `keras.applications` backbone or the user's
factory), insert attention, hold out a validation split of the training
data, standardise the inputs, train with the recipe of
`explain_attn.models.training` while `AttentionRecorder` records, check,
evaluate on the test split and write the model, its history and its
record.
"""

import functools
import json
import time
import warnings

import keras

from explain_attn.devices import replica_count
from explain_attn.models import training
from explain_attn.models.recorder import (
    AttentionRecorder,
    add_to_record,
    record_path,
)
from explain_attn.models.saving import atomic_path, save_model
from explain_attn.stages import stage

__all__ = ["build_network", "train_to_file"]


def build_network(
    train,
    *,
    architecture=None,
    backbone=None,
    weights=None,
    freeze_backbone=False,
    alpha=None,
    model_factory=None,
    attention=None,
    after=(),
    control=False,
    seed=0,
):
    """Builds the network to train, for the data ``train``.

    Returns:
        ``(model, description)``: the `keras.Model` (attention inserted)
        and a JSON-ready dict of what it is.

    Raises:
        ValueError: For inconsistent options, an unknown backbone, bad
            weights, a factory that returns no model, or ``after``
            patterns that match no 4-D layer.
    """
    from explain_attn.models.insert import add_attention

    _check_options(architecture, backbone, weights, freeze_backbone, alpha)
    _check_attention(attention, after, control)
    input_shape = tuple(int(n) for n in train.image_shape)
    num_classes = max(train.num_classes, 2)
    keras.utils.set_random_seed(seed)
    if backbone is not None:
        from explain_attn.models.backbones import build_backbone

        model = build_backbone(
            backbone, input_shape=input_shape, num_classes=num_classes,
            weights=weights, freeze=freeze_backbone, alpha=alpha,
        )  # fmt: skip
        description = {"backbone": backbone, "weights": weights}
        description |= {"freeze_backbone": freeze_backbone, "alpha": alpha}
    elif model_factory is not None:
        from explain_attn.models.user_code import build_from_factory

        model = build_from_factory(
            model_factory, input_shape=input_shape, num_classes=num_classes
        )
        description = {"model_factory": model_factory}
    else:
        from explain_attn.models.architectures import build_model

        architecture = architecture or "small_attention"
        model = build_model(
            architecture, input_shape=input_shape, num_classes=num_classes
        )
        description = {"architecture": architecture}
    if attention is not None:
        original = model.count_params()
        model = add_attention(model, list(after), kind=attention,
                              control=control)  # fmt: skip
        description["attention"] = {
            "kind": attention,
            "after": list(after),
            "control": control,
            "parameters_added": model.count_params() - original,
        }
    return model, description


def _check_options(architecture, backbone, weights, freeze_backbone, alpha):
    if backbone is None:
        for name, value in (
            ("--weights", weights),
            ("--freeze-backbone", freeze_backbone or None),
            ("--alpha", alpha),
        ):
            if value is not None:
                raise ValueError(
                    f"{name} applies to --backbone only. Add --backbone NAME "
                    f"or leave {name} out."
                )


def _check_attention(attention, after, control):
    if attention is None and (after or control):
        raise ValueError(
            "--after and --control need --attention KIND (spatial, cbam, "
            "channel, se or eca)."
        )
    if attention is not None and not after:
        raise ValueError(
            f"--attention {attention} needs --after PATTERN: the layers to "
            "insert it after (see `explain-attn layers` for names)."
        )


def _callbacks(output, probe, options, validation):
    callbacks = []
    if options["record"]:
        callbacks.append(
            AttentionRecorder(
                probe,
                record_path(output),
                num_images=options["record_images"],
                every_steps=options["record_every_steps"],
                resume=options["resume"],
            )
        )
    wants_validation = options["early_stopping"] or options["restore_best"]
    if wants_validation and validation is None:
        raise ValueError(
            "--early-stopping and --restore-best watch the validation loss: "
            "give --validation-split above 0."
        )
    if wants_validation:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=options["early_stopping"] or options["epochs"],
                restore_best_weights=options["restore_best"],
            )
        )
    if options["resume"]:
        backup = output.with_name(f"{output.stem}.backup")
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup)))
    return callbacks


def _split_validation(train, fraction, seed):
    if not fraction:
        return train, None
    from explain_attn.data import split_dataset

    try:
        return split_dataset(train, test_fraction=fraction, seed=seed)
    except ValueError:
        raise ValueError(
            f"--validation-split {fraction}: {len(train)} training images "
            "are too few to hold out a validation part. Use "
            "--validation-split 0 or more images."
        ) from None


def _fit(model, fitting, validation, output, settings, options, warn):
    """Trains ``model``; once trained, a later failure keeps its weights
    (`_keep_weights`, for `explain_attn.stages`)."""
    callbacks = _callbacks(output, validation or fitting, options, validation)
    with (
        warnings.catch_warnings(record=True) as caught,
        stage(
            f"training for {settings['epochs']} epoch(s) on {len(fitting)} "
            "images",
            kept=functools.partial(_keep_weights, model, output),
        ),
    ):
        warnings.simplefilter("always", training.TrainingWarning)
        history = training.train(
            model, fitting, validation_data=validation, verbose=1,
            callbacks=callbacks, seed=options["seed"],
            strategy=options.get("strategy"), **settings,
        )  # fmt: skip
    for warning in caught:
        if issubclass(warning.category, training.TrainingWarning):
            warn(str(warning.message))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename,
                warning.lineno,
            )  # fmt: skip
    return history


def train_to_file(train, test, output, *, data_source, say=print,
                  warn=print, **options):  # fmt: skip
    """Builds, trains, checks and saves a network; see the module docstring.

    Args:
        train, test: The training and test `explain_attn.data.Dataset`.
        output: The ``.keras`` path; ``<stem>.json`` (history, checks and
            settings) and ``<stem>.record.npz`` (with ``record``) go
            beside it.
        data_source: What the data was loaded from, for the history.
        say, warn: Where progress and problems go.
        **options: The options of `build_network`, ``seed``, ``epochs``,
            ``batch_size`` (the global batch, split across the devices),
            ``learning_rate``, ``validation_split``, ``early_stopping``,
            ``restore_best``, ``resume``, ``record``, ``record_images``,
            ``record_every_steps`` and ``strategy`` (``None`` or a
            `tf.distribute` strategy the model is built in and trained
            under, see `explain_attn.devices.make_strategy`).

    Returns:
        The JSON-ready dict written to ``<stem>.json``.
    """
    fitting, validation = _split_validation(
        train, options["validation_split"], options["seed"]
    )
    settings = _settings(options)
    options = {**options, "epochs": settings["epochs"]}
    standardize = options["model_factory"] is None and not options["weights"]
    model, description = _prepared_network(train, fitting, standardize,
                                           options)  # fmt: skip
    say(
        f"Training {model.name} ({model.count_params():,} parameters) on "
        f"{len(fitting)} images of {data_source!r} ({train.num_classes} "
        f"classes), validating on {len(validation) if validation else 0}, "
        f"testing on {len(test)}"
        + _on_devices(replica_count(options.get("strategy")))
    )
    start = time.perf_counter()
    history = _fit(model, fitting, validation, output, settings, options,
                   warn)  # fmt: skip
    seconds = time.perf_counter() - start
    accuracy = training.evaluate(model, test)
    problems = list(history.check.problems)
    majority = training.majority_rate(test.labels)
    if accuracy <= majority:
        problems.append(
            f"Model {model.name!r} classifies {accuracy:.1%} of the test "
            "images, no better than always answering the majority class "
            f"({majority:.1%})."
        )
        warn(problems[-1])
    with stage(f"saving {output}", kept=f"the trained model in {output}"):
        save_model(model, output)
    record = _history_record(
        model, description, history, train, fitting, validation, test,
        settings, options, data_source, standardize,
    ) | {
        "test_accuracy": accuracy,
        "test_majority_rate": majority,
        "warnings": problems,
        "training_seconds": round(seconds, 1),
        "devices": replica_count(options.get("strategy")),
    }  # fmt: skip
    if options["record"]:
        add_to_record(record_path(output), check=record["check"],
                      warnings=problems)  # fmt: skip
    with atomic_path(output.with_suffix(".json")) as temporary:
        temporary.write_text(json.dumps(record, indent=2) + "\n")
    say(f"Trained in {seconds:.1f} s.")
    say(f"Test accuracy: {accuracy:.4f} ({len(test)} images)")
    say(f"History: {output.with_suffix('.json')}")
    if options["record"]:
        say(f"Attention record: {record_path(output)}")
    say(str(output))
    return record


def _prepared_network(train, fitting, standardize, options):
    """`build_network`, inputs standardised on ``fitting`` when asked, in
    the scope of ``options["strategy"]`` (if any)."""
    from explain_attn.devices import strategy_scope

    build_keys = (
        "architecture", "backbone", "weights", "freeze_backbone", "alpha",
        "model_factory", "attention", "after", "control",
    )  # fmt: skip
    with strategy_scope(options.get("strategy")):
        model, description = build_network(
            train, seed=options["seed"], **{k: options[k] for k in build_keys}
        )
        if standardize:
            model = training.standardize_inputs(model, fitting)
    return model, description


def _on_devices(count):
    return "." if count == 1 else f", on {count} devices (each batch split)."


def _keep_weights(model, output):
    """Writes the trained weights beside ``output`` (after a failure that
    stopped the model's file); returns what was kept, in words."""
    path = output.with_name(f"{output.stem}.weights.h5")
    with atomic_path(path) as temporary:
        model.save_weights(temporary)
    return (
        f"the trained weights in {path} (model.load_weights on the same "
        "network; explain-attn reads them with --model-factory)"
    )


def _settings(options):
    return {
        "epochs": options["epochs"] or training.DEMO_EPOCHS,
        "batch_size": options["batch_size"] or training.DEMO_BATCH_SIZE,
        "learning_rate": options["learning_rate"]
        or training.DEMO_LEARNING_RATE,
    }


def _history_record(model, description, history, train, fitting,
                    validation, test, settings, options, data_source,
                    standardize):  # fmt: skip
    return {
        **description,
        "name": model.name,
        "parameters": int(model.count_params()),
        "data": str(data_source),
        "class_names": list(train.class_names),
        "training_images": len(fitting),
        "validation_images": len(validation) if validation else 0,
        "test_images": len(test),
        **settings,
        "seed": options["seed"],
        "standardized_inputs": standardize,
        "history": {
            key: [float(value) for value in values]
            for key, values in history.history.items()
        },
        "check": history.check.as_dict(),
    }
