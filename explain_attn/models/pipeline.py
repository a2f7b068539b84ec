"""Train what users have, end to end: `train_to_file`.

What ``explain-attn train`` does, as one function: build the network (a
built-in architecture, a `keras.applications` backbone or the user's
factory), insert attention, hold out a validation split of the training
data, standardise the inputs, train with the recipe of
`explain_attn.models.training` while `AttentionRecorder` records, check,
evaluate on the test split and write the model, its history and its
record.
"""

import contextlib
import functools
import json
import shutil
import time
import warnings

import keras

from explain_attn.devices import replica_count
from explain_attn.models import training
from explain_attn.models.progress import TrainingProgress
from explain_attn.models.recorder import (
    AttentionRecorder,
    add_to_record,
    record_path,
)
from explain_attn.models.saving import model_bytes
from explain_attn.models.sinks import SinkWarning
from explain_attn.stages import stage
from explain_attn.writing import (
    DiskFullError,
    atomic_files,
    atomic_path,
    clean_stale,
    disk_full,
    is_disk_full,
    partial_name,
)

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
    keras.utils.set_random_seed(seed)
    model, description = _base_network(
        train,
        architecture,
        backbone,
        model_factory,
        {"weights": weights, "freeze": freeze_backbone, "alpha": alpha},
    )
    if attention is not None:
        original = model.count_params()
        model = add_attention(
            model, list(after), kind=attention, control=control
        )
        description["attention"] = {
            "kind": attention,
            "after": list(after),
            "control": control,
            "parameters_added": model.count_params() - original,
        }
    return model, description


def _base_network(
    train, architecture, backbone, model_factory, backbone_options
):
    """``(model, description)`` before attention: a backbone, the user's
    factory or a built-in architecture, for ``train``'s shape and classes."""
    input_shape = tuple(int(n) for n in train.image_shape)
    num_classes = max(train.num_classes, 2)
    if backbone is not None:
        from explain_attn.models.backbones import build_backbone

        model = build_backbone(
            backbone,
            input_shape=input_shape,
            num_classes=num_classes,
            **backbone_options,
        )
        description = {
            "backbone": backbone,
            "weights": backbone_options["weights"],
            "freeze_backbone": backbone_options["freeze"],
            "alpha": backbone_options["alpha"],
        }
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


def _callbacks(staging, probe, options, validation):
    """The run's callbacks; what they keep goes into ``staging`` (the
    record, the progress and, with ``resume``, Keras' backup)."""
    callbacks = [options["progress"]]
    if options["record"]:
        callbacks.append(
            AttentionRecorder(
                probe,
                staging / "record.npz",
                num_images=options["record_images"],
                every_steps=options["record_every_steps"],
                resume=options["resume"],
                sinks=options.get("sinks", ()),
            )
        )
    elif options.get("sinks"):
        raise ValueError(
            "The trackers (--tensorboard, --wandb, --mlflow) show the "
            "attention record: leave out --no-record."
        )
    callbacks += options.get("callbacks", [])
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
        backup = staging / "keras"
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup)))
    return callbacks


@contextlib.contextmanager
def _staging(output, resume):
    """The folder a run keeps its progress in until the model set is
    written: ``<stem>.backup/`` with ``resume`` (kept after a failure, a
    kill or Ctrl-C for the next ``--resume``), else a hidden folder of this
    process (removed on failure, or by the next run after a kill)."""
    clean_stale(output)
    if resume:
        staging = output.with_name(f"{output.stem}.backup")
    else:
        staging = partial_name(output)
        shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(exist_ok=True)
    except OSError as error:
        if is_disk_full(error):
            raise disk_full(staging, kept="nothing was trained") from None
        raise
    try:
        yield staging
    except BaseException:
        if not resume:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)


def _earlier(output):
    """What a failure keeps of the earlier model set at ``output``."""
    if output.exists():
        return f"the earlier {output.name} and its files are unchanged"
    return "no model was written"


def _save_set(model, record, output, staging, options):
    """Writes the model, its history and its record as one set (with an
    earlier ``.weights.h5`` removed): all replaced, or none."""
    history_path = output.with_suffix(".json")
    recorded = staging / "record.npz"
    paths = [output, history_path, record_path(output), weights_path(output)]
    needed = model_bytes(model)
    if options["record"]:
        add_to_record(
            recorded, check=record["check"], warnings=record["warnings"]
        )
        needed += recorded.stat().st_size
    with atomic_files(
        paths, needed=needed, kept=_earlier(output)
    ) as temporaries:
        model.save(temporaries[0])
        text = json.dumps(record, indent=2) + "\n"
        temporaries[1].write_text(text, encoding="utf-8")
        if options["record"]:
            shutil.copyfile(recorded, temporaries[2])


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
    callbacks = _callbacks(
        options["staging"], validation or fitting, options, validation
    )
    with (
        warnings.catch_warnings(record=True) as caught,
        stage(
            f"training for {settings['epochs']} epoch(s) on {len(fitting)} "
            "images",
            kept=functools.partial(_keep_weights, model, output),
        ),
    ):
        warnings.simplefilter("always", training.TrainingWarning)
        warnings.simplefilter("always", SinkWarning)
        try:
            history = training.train(
                model,
                fitting,
                validation_data=validation,
                verbose=1,
                callbacks=callbacks,
                seed=options["seed"],
                strategy=options.get("strategy"),
                **settings,
            )
        except DiskFullError as error:  # The record or progress.
            raise DiskFullError(
                f"{error} Training stopped; {_earlier(output)}."
            ) from None
    for warning in caught:
        if issubclass(warning.category, training.TrainingWarning | SinkWarning):
            warn(str(warning.message))
        else:
            warnings.warn_explicit(
                warning.message,
                warning.category,
                warning.filename,
                warning.lineno,
            )
    return history


def train_to_file(
    train, test, output, *, data_source, say=print, warn=print, **options
):
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
    with _staging(output, options["resume"]) as staging:
        progress = TrainingProgress(
            staging / "progress.json", resume=options["resume"]
        )
        options = {
            **options,
            "epochs": settings["epochs"],
            "staging": staging,
            "progress": progress,
        }
        standardize = (
            options["model_factory"] is None and not options["weights"]
        )
        options |= {"data_source": data_source, "standardize": standardize}
        model, description = _prepared_network(
            train, fitting, standardize, options
        )
        splits = (train, fitting, validation, test)
        say(_announcement(model, splits, data_source, options))
        start = time.perf_counter()
        history = _fit(
            model, fitting, validation, output, settings, options, warn
        )
        history.history = progress.history  # The whole run's, when resumed.
        seconds = progress.earlier_seconds + time.perf_counter() - start
        tested = _tested(model, test, history, warn)
        record = _history_record(
            model, description, history, splits, settings, options
        ) | _results(tested, seconds, options)
        with stage(f"saving {output}", kept=f"the trained model in {output}"):
            _save_set(model, record, output, staging, options)
    _say_written(say, seconds, tested[0], test, output, options)
    return record


def _announcement(model, splits, data_source, options):
    """The line that starts a run: the model, the data and the devices."""
    train, fitting, validation, test = splits
    return (
        f"Training {model.name} ({model.count_params():,} parameters) on "
        f"{len(fitting)} images of {data_source!r} ({train.num_classes} "
        f"classes), validating on {len(validation) if validation else 0}, "
        f"testing on {len(test)}"
        + _on_devices(replica_count(options.get("strategy")))
    )


def _results(tested, seconds, options):
    """The record's entries on the test split, the time and the devices."""
    accuracy, majority, problems = tested
    return {
        "test_accuracy": accuracy,
        "test_majority_rate": majority,
        "warnings": problems,
        "training_seconds": round(seconds, 1),
        "devices": replica_count(options.get("strategy")),
    }


def _say_written(say, seconds, accuracy, test, output, options):
    say(f"Trained in {seconds:.1f} s.")
    say(f"Test accuracy: {accuracy:.4f} ({len(test)} images)")
    say(f"History: {output.with_suffix('.json')}")
    if options["record"]:
        say(f"Attention record: {record_path(output)}")
    say(str(output))


def _tested(model, test, history, warn):
    """``(test accuracy, majority rate, problems)``; a model no better than
    the majority class is a problem, warned."""
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
    return accuracy, majority, problems


def _prepared_network(train, fitting, standardize, options):
    """`build_network`, inputs standardised on ``fitting`` when asked, in
    the scope of ``options["strategy"]`` (if any)."""
    from explain_attn.devices import strategy_scope

    build_keys = (
        "architecture",
        "backbone",
        "weights",
        "freeze_backbone",
        "alpha",
        "model_factory",
        "attention",
        "after",
        "control",
    )
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
    path = weights_path(output)
    # Checked first: h5py on a full disk can crash the process.
    with atomic_path(path, needed=model_bytes(model)) as temporary:
        model.save_weights(temporary)
    return (
        f"the trained weights in {path} (model.load_weights on the same "
        "network; explain-attn reads them with --model-factory)"
    )


def weights_path(output):
    """Where the weights of a model whose file could not be written go:
    ``model.keras`` -> ``model.weights.h5``."""
    return output.with_name(f"{output.stem}.weights.h5")


def _settings(options):
    return {
        "epochs": options["epochs"] or training.DEMO_EPOCHS,
        "batch_size": options["batch_size"] or training.DEMO_BATCH_SIZE,
        "learning_rate": options["learning_rate"]
        or training.DEMO_LEARNING_RATE,
    }


def _history_record(model, description, history, splits, settings, options):
    """The record's description of the run (``options["data_source"]`` and
    ``options["standardize"]`` included) and its history."""
    train, fitting, validation, test = splits
    return {
        **description,
        "name": model.name,
        "parameters": int(model.count_params()),
        "data": str(options["data_source"]),
        "class_names": list(train.class_names),
        "training_images": len(fitting),
        "validation_images": len(validation) if validation else 0,
        "test_images": len(test),
        **settings,
        "seed": options["seed"],
        "standardized_inputs": options["standardize"],
        "history": {
            key: [float(value) for value in values]
            for key, values in history.history.items()
        },
        "check": history.check.as_dict(),
    }
