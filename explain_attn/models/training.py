"""Seeded training and evaluation of Keras classifiers, with a sound recipe.

The recipe (issue 16), applied by `train_architecture` and by
``explain-attn train`` to every model it builds:

1. **Inputs standardised inside the model.** `standardize_inputs` puts a
   `keras.layers.Normalization` named ``input_standardization``, adapted on
   the training split (per-channel mean and variance), right after the
   input; it is saved with the model, so every later use (maps, reports)
   sees the same inputs.
2. **BatchNormalization statistics that match the data.** Keras' moving
   averages forget their initial values slowly: after ``s`` steps at
   momentum 0.99, ``0.99 ** s`` of the initial variance 1.0 is left (1.2 %
   after 444 steps), which swamps the variance of low-contrast inputs
   (about 0.005 on BCCD crops) and broke inference on them. `train` ends
   with `recalibrate_batch_norm`: one pass over the training split in
   training mode, which sets every trainable BatchNormalization layer's
   moving mean and variance to the mean and variance of its inputs over
   the whole split.
3. **Checked.** `check_training` evaluates the training split in inference
   mode and reports a problem (`TrainingWarning`) when that accuracy is
   more than `AGREEMENT_TOLERANCE` below the training-mode accuracy Keras
   reported for the last epoch, or when the model does not beat always
   answering the training split's majority class.

The demo defaults below were measured on the sample data on a 2-core CPU
shared with other jobs (issue 3): ``small_convnet`` reached 90.1 % test
accuracy in about 35 s and ``small_attention`` 92.0 % in about 53 s. Trained
on the same images with the objects left out, ``small_convnet`` scores
24.4 % (chance is 25 %).
"""

import contextlib
import dataclasses
import warnings

import keras
import numpy as np

from explain_attn.data.adapter import as_source
from explain_attn.data.pipeline import fit_pipeline, positions
from explain_attn.data.source import ArraySource
from explain_attn.data.stream import ImageSource
from explain_attn.devices import (
    graph_function,
    replica_count,
    run_replicated,
    strategy_scope,
)
from explain_attn.options import RunOptions, check_positive_int
from explain_attn.progress import EpochProgress, keras_verbose

__all__ = [
    "AGREEMENT_TOLERANCE",
    "DEMO_BATCH_SIZE",
    "DEMO_EPOCHS",
    "DEMO_LEARNING_RATE",
    "RECIPE",
    "ArraySplit",
    "TrainingCheck",
    "TrainingWarning",
    "check_training",
    "evaluate",
    "majority_rate",
    "recalibrate_batch_norm",
    "standardize_inputs",
    "synchronized_batch_norm",
    "train",
    "train_architecture",
]

DEMO_EPOCHS = 6
DEMO_BATCH_SIZE = 32
DEMO_LEARNING_RATE = 3e-3
AGREEMENT_TOLERANCE = 0.05
"""How far (a fraction) inference-mode accuracy on the training split may
fall below the training-mode accuracy before `check_training` objects."""
RECIPE = "standardized-inputs+bn-recalibration+seeded-epoch-orders"
"""Names the training recipe, for caches of trained models."""
STANDARDIZATION_LAYER = "input_standardization"


class TrainingWarning(UserWarning):
    """A trained model that should not be trusted (see `check_training`)."""


ArraySplit = ArraySource
"""The former name of `explain_attn.data.source.ArraySource` (arrays with
labels, any number of channels), kept importable."""


def _as_split(name, value):
    """``value`` as a labelled `Source` that training can read by index
    (`explain_attn.data.adapter.as_source`)."""
    try:
        source = as_source(value, name=name)
    except TypeError:
        source = None
    if (
        source is None
        or source.labels is None
        or not isinstance(source, ArraySource | ImageSource)
    ):
        raise TypeError(
            f"`{name}` must be an explain_attn.data.Dataset (see "
            "load_dataset), a streamed folder or .npz (open_source) or an "
            f"(images, labels) tuple of arrays. Received: {name} of type "
            f"{type(value).__name__}"
        )
    return source


def standardize_inputs(model, train_data, *, batch_size=256):
    """A copy of ``model`` whose inputs are standardised by the training data.

    A `keras.layers.Normalization` named ``"input_standardization"``,
    adapted on ``train_data`` (per channel: subtract the mean, divide by
    the standard deviation, with Keras' epsilon guarding a constant
    channel), is applied to the input before any layer of ``model`` reads
    it. The copy has fresh layers holding copies of the model's weights
    (`explain_attn.models.insert.rebuild`); ``model`` is not changed.

    Args:
        model: A functional or Sequential `keras.Model` with one input.
        train_data: The training `Dataset` or ``(images, labels)``.
        batch_size: Images per adaptation batch.

    Returns:
        The new `keras.Model`, with the model's name.

    Raises:
        ValueError: If the model already has a layer of that name.
    """

    from explain_attn.models.insert import rebuild

    train_data = _as_split("train_data", train_data)
    _check_model(model, train_data)
    names = {layer.name for layer in model.layers}
    if STANDARDIZATION_LAYER in names:
        raise ValueError(
            f"Model {model.name!r} already has a layer named "
            f"{STANDARDIZATION_LAYER!r}: its inputs are standardised."
        )
    normalization = keras.layers.Normalization(
        axis=-1, name=STANDARDIZATION_LAYER
    )
    order = positions(len(train_data))
    normalization.adapt(
        fit_pipeline(train_data, order, batch_size).map(lambda x, _: x)
    )
    return rebuild(model, before=normalization)


def _batch_normalizations(model):
    """Every trainable `BatchNormalization` layer, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _batch_normalizations(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            if layer.trainable:
                found.append(layer)
    return found


def recalibrate_batch_norm(model, data, *, batch_size=64):
    """Sets BatchNormalization statistics to those of ``data``, layer by layer.

    One pass over ``data`` in training mode, momentum set to 0 so that each
    batch's statistics replace the moving ones; the batch means and
    variances are combined into the mean and variance over all of
    ``data`` (law of total variance, weighted by batch size) and assigned.
    Frozen (non-trainable) BatchNormalization layers keep their
    statistics; the momentum of every layer is restored.

    Each layer's inputs are computed with the layers before it in training
    mode (batch statistics), as during training.

    Args:
        model: A `keras.Model`.
        data: A `Dataset` or ``(images, labels)``.
        batch_size: Images per batch.

    Returns:
        The number of layers recalibrated (0 when the model has none).
    """
    import tensorflow as tf

    data = _as_split("data", data)
    layers = _batch_normalizations(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    totals = [np.zeros((3, *layer.moving_mean.shape)) for layer in layers]
    count = 0
    try:
        for layer in layers:
            layer.momentum = 0.0
        step = graph_function(lambda x: model(x, training=True))
        for batch, _, _ in data.batches(batch_size):
            step(tf.constant(batch))
            size = len(batch)
            count += size
            for layer, total in zip(layers, totals, strict=True):
                mean = layer.moving_mean.numpy().astype(np.float64)
                variance = layer.moving_variance.numpy().astype(np.float64)
                total += size * np.stack([mean, variance, mean**2])
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    for layer, (mean, variance, square) in zip(layers, totals, strict=True):
        mean, variance, square = mean / count, variance / count, square / count
        layer.moving_mean.assign(mean.astype("float32"))
        # Within-batch variance plus the variance of the batch means.
        total_variance = variance + np.maximum(square - mean**2, 0.0)
        layer.moving_variance.assign(total_variance.astype("float32"))
    return len(layers)


def majority_rate(labels):
    """The accuracy of always answering the most frequent label."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return float("nan")
    return float(np.bincount(labels).max() / labels.size)


@dataclasses.dataclass(frozen=True)
class TrainingCheck:
    """What `check_training` found.

    Attributes:
        training_mode_accuracy: Keras' accuracy of the last epoch (the
            model in training mode, averaged over the epoch), or ``None``
            when the model was compiled without accuracy.
        inference_accuracy: Accuracy on the training split in inference
            mode, after training.
        majority_rate: Accuracy of always answering the majority class.
        problems: One sentence per problem; empty when none.
    """

    training_mode_accuracy: float | None
    inference_accuracy: float
    majority_rate: float
    problems: tuple

    def as_dict(self):
        return dataclasses.asdict(self) | {"problems": list(self.problems)}


def _last_accuracy(history):
    logs = getattr(history, "history", history) or {}
    for key in ("accuracy", "sparse_categorical_accuracy", "acc"):
        if logs.get(key):
            return float(logs[key][-1])
    return None


def check_training(model, train_data, history, *, batch_size=256):
    """Checks a trained model on its own training split.

    Args:
        model: The trained `keras.Model`.
        train_data: Its training `Dataset` or ``(images, labels)``.
        history: The `keras.callbacks.History` of its training (or its
            ``history`` dict).
        batch_size: Images per prediction batch.

    Returns:
        A `TrainingCheck`; ``problems`` names a gap of more than
        `AGREEMENT_TOLERANCE` between training-mode and inference
        accuracy, and a model that does not beat the majority class.
    """
    train_data = _as_split("train_data", train_data)
    inference = evaluate(model, train_data, batch_size=batch_size)
    training_mode = _last_accuracy(history)
    majority = majority_rate(train_data.labels)
    problems = []
    if training_mode is not None and (
        inference < training_mode - AGREEMENT_TOLERANCE
    ):
        problems.append(
            f"Model {model.name!r} classifies {inference:.1%} of its "
            f"training images in inference mode but {training_mode:.1%} in "
            "training mode: its BatchNormalization statistics or its "
            "inputs' scale differ between the two. Do not trust its "
            "predictions or maps; retrain with explain_attn's recipe."
        )
    if inference <= majority:
        problems.append(
            f"Model {model.name!r} classifies {inference:.1%} of its "
            f"training images, no better than always answering the "
            f"majority class ({majority:.1%}): it has learnt nothing usable."
        )
    return TrainingCheck(training_mode, inference, majority, tuple(problems))


def train(
    model,
    train_data,
    *,
    validation_data=None,
    epochs=10,
    batch_size=64,
    learning_rate=1e-3,
    seed=0,
    verbose="auto",
    callbacks=None,
    recalibrate=True,
    check=True,
    strategy=None,
):
    """Trains ``model`` on a `Dataset` and returns the Keras `History`.

    An uncompiled model is compiled like the tutorial: Adam, sparse
    categorical cross-entropy and accuracy, the learning rate following a
    cosine decay from ``learning_rate`` to 0 (far less jumpy final weights
    than a constant rate); a compiled model keeps its own settings. After
    `keras.Model.fit`, BatchNormalization statistics are set to the
    training split's (`recalibrate_batch_norm`) and the model is checked
    (`check_training`; each problem also becomes a `TrainingWarning`).
    Standardise the inputs first (`standardize_inputs`;
    `train_architecture` does). Seeded (`keras.utils.set_random_seed`, and
    each epoch's image order from ``seed`` and the epoch): equal initial
    weights give equal weights on CPU. The arrays are not modified.

    Args:
        model: A `keras.Model`, input ``(H, W, C)``, output a softmax over
            ``train_data.num_classes`` classes.
        train_data: The training `Dataset`, or ``(images, labels)`` arrays
            (any number of channels).
        validation_data: An optional `Dataset` (or tuple) evaluated after
            each epoch.
        epochs, batch_size: Positive integers.
        learning_rate: The Adam learning rate at the start, positive.
        seed: Seed of initialisation-free randomness (shuffle, dropout).
        verbose: As `keras.Model.fit` (bars on a terminal only).
        callbacks: More `keras.callbacks.Callback` objects for ``fit``
            (e.g. `explain_attn.AttentionRecorder`, early stopping).
        recalibrate, check: Recalibrate (`recalibrate_batch_norm`) and
            check (`check_training`) after fit.
        strategy: ``None`` or the `tf.distribute` strategy the model was
            built in (by default, the model's): ``batch_size`` is the
            global batch, split across its replicas (see
            `synchronized_batch_norm` and ``tests/test_devices.py``).

    Returns:
        The `keras.callbacks.History`: ``history.history`` maps ``"loss"``,
        ``"accuracy"`` (``"val_*"``) to one value per epoch;
        ``history.check`` is the `TrainingCheck` or ``None``.

    Raises:
        ValueError: For an argument out of range, or a model that does not
            fit the data or was not built in ``strategy``'s scope.
    """
    train_data, validation_data = _checked_arguments(
        model, train_data, validation_data, epochs, batch_size, learning_rate
    )
    strategy = _training_strategy(model, strategy)
    options = RunOptions(batch_size=batch_size, seed=seed, strategy=strategy)
    keras.utils.set_random_seed(seed)
    data, order = _fit_data(train_data, validation_data, epochs, options)
    with strategy_scope(strategy), synchronized_batch_norm(model, strategy):
        if not model.compiled:
            steps = epochs * -(-len(train_data) // batch_size)
            _compile_like_the_tutorial(model, learning_rate, steps)
        history = _fit(
            model,
            data,
            epochs=epochs,
            verbose=_fit_verbose(verbose),
            shuffle=False,  # The pipeline shuffles, with the seed.
            callbacks=[order, *(callbacks or ()), EpochProgress(model.name)],
        )
        _after_fit(model, train_data, history, recalibrate, check, batch_size)
    return history


def _fit(model, data, **settings):
    """``model.fit``; a streamed source's read error (a file that cannot
    be decoded) is raised as the source's own `ValueError`, not as
    TensorFlow's."""
    import tensorflow as tf

    data = dict(data)
    sources = data.pop("sources")
    try:
        return model.fit(**data, **settings)
    except tf.errors.OpError as error:
        for source in sources:
            if isinstance(source, ImageSource) and source.read_failed():
                raise source.read_error(error) from None
        raise


def _fit_verbose(verbose):
    """``fit``'s ``verbose``: bars on a terminal only (`keras_verbose`)."""
    return keras_verbose() if verbose in ("auto", 1) else verbose


def _fit_data(train_data, validation_data, epochs, options):
    """``model.fit``'s ``x`` and ``validation_data``, and the callback
    that sets each epoch's image order (`_training_batches`)."""
    _check_first_batch(len(train_data), options)
    validation = None
    if validation_data is not None:
        size = _validation_batch_size(len(validation_data), options)
        order = positions(len(validation_data))
        validation = fit_pipeline(validation_data, order, size)
    batches, order = _training_batches(train_data, epochs, options)
    data = {"x": batches, "validation_data": validation}
    return data | {"sources": (train_data, validation_data)}, order


def _model_strategy(model):
    """The strategy ``model`` runs under: the one it was built in, or the
    current one; ``None`` for none."""
    import tensorflow as tf

    strategy = model.distribute_strategy
    if strategy is tf.distribute.get_strategy():
        if not tf.distribute.has_strategy():
            return None
    return strategy


def _training_strategy(model, strategy):
    """``strategy``, else the one ``model`` was built in; checked."""
    strategy = strategy or _model_strategy(model)
    if strategy is None:
        return None
    variables = [variable.value for variable in model.weights[:1]]
    if variables and not strategy.extended.variable_created_in_scope(
        variables[0]
    ):
        raise ValueError(
            f"Model {model.name!r} was not built in the scope of the "
            f"{type(strategy).__name__} it should train under, so its "
            "variables are not on its devices. Build (or load) it inside "
            "`with explain_attn.devices.strategy_scope(strategy):`."
        )
    return strategy


def _splits_well(count, batch_size, replicas):
    """Whether Keras can run batches of ``batch_size`` of ``count`` images
    on ``replicas`` replicas: under a strategy it builds the model from the
    first batch's parts averaged across the replicas (they must be of
    equal size), and a replica given no image fails."""
    last = count % batch_size
    return min(count, batch_size) % replicas == 0 and (
        last == 0 or last >= replicas
    )


def _check_first_batch(count, options):
    """Training batches that every replica can share (`_splits_well`)."""
    batch_size = options.batch_size
    replicas = replica_count(options.strategy)
    if not _splits_well(count, batch_size, replicas):
        raise ValueError(
            f"Batches of {batch_size} of {count} training images do not "
            f"split across {replicas} devices as Keras needs: the first "
            f"evenly and none with fewer than {replicas} images. Use a "
            f"batch size that is a multiple of {replicas}, with a last "
            f"batch (images % batch size) of 0 or at least {replicas}."
        )


def _validation_batch_size(count, options):
    """At least 256 images per validation batch; under a strategy, the
    largest batch that splits well (`_splits_well`; validation numbers do
    not depend on the batch size)."""
    size = max(options.batch_size, 256)
    replicas = replica_count(options.strategy)
    for candidate in range(min(size, count), 0, -1):
        if replicas == 1 or _splits_well(count, candidate, replicas):
            return max(size, candidate) if replicas == 1 else candidate
    raise ValueError(
        f"The {count} validation images cannot be split across {replicas} "
        "devices in batches Keras accepts. Use more validation images or "
        "fewer devices."
    )


@contextlib.contextmanager
def synchronized_batch_norm(model, strategy):
    """BatchNormalization with the global batch's statistics, while inside.

    Under a strategy of several replicas, Keras' BatchNormalization
    normalises each replica's part of a batch by that part's own mean and
    variance, so training differs from one device's (by about 1e-2 in the
    weights after two epochs of a small model). Inside this context every
    trainable BatchNormalization layer of ``model`` (nested ones too) is
    ``synchronized``: the replicas all-reduce the sums of their inputs
    and squares, so each normalises by the statistics of the whole batch,
    as one device does (to float rounding: the variance is computed as
    ``E[x^2] - E[x]^2``). The layers' setting is restored on exit; the
    saved model does not change. Does nothing without a strategy or with
    one replica, nor outside the replicas (`recalibrate_batch_norm` runs
    there, on whole batches).
    """
    layers = []
    if replica_count(strategy) > 1:
        layers = [
            layer
            for layer in _batch_normalizations(model)
            if not layer.synchronized
        ]
    try:
        for layer in layers:
            layer.synchronized = True
        yield
    finally:
        for layer in layers:
            layer.synchronized = False


class _EpochOrder(keras.callbacks.Callback):
    """Sets the epoch whose image order `_training_batches` yields."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)


def _training_batches(data, epochs, options):
    """``model.fit``'s ``x`` for ``train``, and the callback it needs.

    Epoch ``e`` sees the images in the order
    ``np.random.default_rng([seed, e]).permutation(N)``: every iterator
    made over ``x`` yields the order of the epoch the callback last set
    (in ``on_epoch_begin``, before Keras makes the epoch's iterator). So
    the order depends on the seed and the epoch alone: not on how many
    iterators a Keras version makes per epoch (3.5 and 3.15 differ), nor
    on the batch Keras draws under a strategy to build the model. One
    device and several see the same batches (``test_devices`` checks it),
    and a run resumed at epoch ``e`` sees epoch ``e``'s order.
    """
    import tensorflow as tf

    batch_size, seed = options.batch_size, options.seed
    count = len(data)
    orders = tf.constant(
        np.stack(
            [
                np.random.default_rng([seed, epoch]).permutation(count)
                for epoch in range(epochs)
            ]
        )
    )
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    order = tf.data.Dataset.range(1).flat_map(
        lambda _: tf.data.Dataset.from_tensor_slices(
            tf.gather(orders, epoch.read_value())
        )
    )
    batches = fit_pipeline(data, order, batch_size, prefetch=False).apply(
        tf.data.experimental.assert_cardinality(-(-count // batch_size))
    )
    return batches.prefetch(tf.data.AUTOTUNE), _EpochOrder(epoch)


def _after_fit(model, train_data, history, recalibrate, check, batch_size):
    if recalibrate:
        recalibrate_batch_norm(model, train_data, batch_size=batch_size)
    history.check = None
    if check:
        history.check = check_training(model, train_data, history)
        for problem in history.check.problems:
            warnings.warn(problem, TrainingWarning, stacklevel=3)


def _compile_like_the_tutorial(model, learning_rate, steps):
    schedule = keras.optimizers.schedules.CosineDecay(
        float(learning_rate), decay_steps=steps
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def _checked_arguments(
    model, train_data, validation_data, epochs, batch_size, learning_rate
):
    """The training and validation splits as `ArraySplit` objects, checked
    with the other arguments."""
    train_data = _as_split("train_data", train_data)
    if validation_data is not None:
        validation_data = _as_split("validation_data", validation_data)
    _check_model(model, train_data)
    if validation_data is not None:
        _check_model(model, validation_data)
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    if not isinstance(learning_rate, int | float) or not learning_rate > 0:
        raise ValueError(
            "`learning_rate` must be a positive number. Received: "
            f"learning_rate={learning_rate!r}"
        )
    return train_data, validation_data


def train_architecture(
    architecture,
    train_data,
    *,
    validation_data=None,
    epochs=DEMO_EPOCHS,
    batch_size=DEMO_BATCH_SIZE,
    learning_rate=DEMO_LEARNING_RATE,
    seed=0,
    verbose="auto",
    callbacks=None,
    standardize=True,
    recalibrate=True,
    strategy=None,
):
    """Builds a registered architecture with seeded weights and trains it.

    The recipe of this module: inputs standardised (`standardize_inputs`),
    then `train` (BatchNormalization recalibrated, model checked). With a
    ``strategy`` the model is built in its scope and trained under it.

    Args:
        architecture: A key of `explain_attn.ARCHITECTURES`.
        train_data: The training `Dataset` (or ``(images, labels)``); it
            sets the input shape and the number of classes.
        validation_data, epochs, batch_size, learning_rate, seed, verbose,
            callbacks: As `train`. The defaults are the demo's.
        standardize: Add the input standardisation layer.
        recalibrate, strategy: As `train` (``batch_size`` is the global
            batch, split across the replicas).

    Returns:
        ``(model, history)``.
    """
    from explain_attn.models.architectures import build_model

    train_data = _as_split("train_data", train_data)
    keras.utils.set_random_seed(seed)
    with strategy_scope(strategy):
        model = build_model(
            architecture,
            input_shape=tuple(int(n) for n in train_data.image_shape),
            num_classes=max(train_data.num_classes, 2),
        )
        if standardize:
            model = standardize_inputs(model, train_data)
    history = train(
        model,
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        verbose=verbose,
        callbacks=callbacks,
        recalibrate=recalibrate,
        strategy=strategy,
    )
    return model, history


def evaluate(model, dataset, *, batch_size=256):
    """The fraction of ``dataset`` that ``model`` classifies correctly.

    Args:
        model: A `keras.Model` giving class scores ``(N, num_classes)``.
        dataset: A `Dataset` (or ``(images, labels)``) the model's input
            fits.
        batch_size: Images per prediction batch.

    Returns:
        Accuracy in [0, 1] as a Python float (argmax of the scores), in
        inference mode.
    """
    dataset = _as_split("dataset", dataset)
    _check_model(model, dataset)
    strategy = _model_strategy(model)
    if strategy is None:
        order = positions(len(dataset))
        scores = model.predict(
            fit_pipeline(dataset, order, batch_size), verbose=0
        )
    else:  # Keras' predict fails on a batch smaller than the replicas.
        scores = np.concatenate(
            [
                run_replicated(
                    strategy,
                    lambda batch: model(batch, training=False).numpy(),
                    images,
                )
                for images, _, _ in dataset.batches(batch_size)
            ]
        )
    return float((scores.argmax(axis=-1) == dataset.labels).mean())


def _check_model(model, dataset):
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model. Received: model of type "
            f"{type(model).__name__}"
        )
    expected = tuple(model.input_shape[1:])
    if len(expected) != 3 or any(
        want is not None and want != got
        for want, got in zip(expected, dataset.image_shape, strict=True)
    ):
        raise ValueError(
            f"Model {model.name!r} expects inputs {expected} but "
            f"{dataset.name!r} has images {tuple(dataset.image_shape)}. "
            "Load the data with image_size matching the model."
        )
    outputs = model.output_shape[-1]
    if outputs is not None and outputs < dataset.num_classes:
        raise ValueError(
            f"Model {model.name!r} predicts {outputs} classes but "
            f"{dataset.name!r} has {dataset.num_classes}. Build the model "
            f"with num_classes={dataset.num_classes}."
        )
