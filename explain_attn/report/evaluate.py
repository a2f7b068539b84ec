"""The report's first stage: stream the test set, keep per-image numbers.

Images arrive in chunks ``(images, labels, masks)`` from any iterable
(the report iterates ``test.batches(chunk_size)`` of an in-memory
`explain_attn.data.Dataset` or a streamed source alike; `chunks` cuts
anything with ``images``, ``labels`` and ``masks``). For each chunk,
every model's predictions and every explanation's maps are computed once,
scored with every metric and dropped. Only per-image numbers are kept
for all images, so the stage's memory depends on the chunk size, not on
the test set.

The chunk size adapts to the image size (`chunk_size_for`), and the metrics
of a chunk are computed in slices of at most `METRIC_PIXELS` mask pixels
(`score_slices`): the foreground metrics work on float64 copies of the maps
resized to the masks' size, about ten of them at a time.
"""

import concurrent.futures
import dataclasses

import keras
import numpy as np

from explain_attn import metrics
from explain_attn.explanations.explanation import Explainer
from explain_attn.explanations.inputs import check_model_images
from explain_attn.explanations.predict import Predictor

__all__ = [
    "BATCH_PIXELS",
    "CHUNK_BYTES",
    "MAX_CHUNK_SIZE",
    "METRIC_PIXELS",
    "Evaluation",
    "batch_size_for",
    "check_models_fit",
    "chunk_size_for",
    "chunks",
    "evaluate",
    "evaluate_chunks",
    "score_slices",
]

CHUNK_BYTES = 32 * 2**20
"""Bytes of float32 images per chunk (at most `MAX_CHUNK_SIZE` images). A
streamed source holds a few chunks at a time (`tf.data` prefetches two);
forward passes (`BATCH_PIXELS`) and metric calls (`METRIC_PIXELS`) are no
larger than a chunk at 128 x 128 and above, so a larger chunk saves no
call there."""

MAX_CHUNK_SIZE = 1024
"""Most test images per chunk, whatever their size."""

BATCH_PIXELS = 2**21
"""Most image pixels (images x H x W) per forward pass: 128 images of
128 x 128, 41 of 224 x 224. TensorFlow keeps every activation of a batch
(and, for Grad-CAM, their gradients); at 224 x 224 a batch of 128 through
the demo models peaks about 1 GB higher than a batch of 41."""

METRIC_PIXELS = 2**21
"""Most mask pixels (images x H x W) scored in one metric call: about
17 MB per float64 copy, so the metric stage stays under about 200 MB."""

AGREEMENT = ("spearman", "top_fraction_overlap")
"""Agreement metrics of each attention map with the reference CAM."""


@dataclasses.dataclass
class Evaluation:
    """Per-image numbers of the test set.

    Attributes:
        predictions: Model key -> ``(N,)`` predicted classes.
        values: `Explanation` -> metric name -> ``(N,)`` values.
        agreement: Attention `Explanation` -> metric name -> ``(N,)``
            agreement with the reference explanation.
    """

    predictions: dict
    values: dict
    agreement: dict


def check_models_fit(models, test):
    """Raises a one-line error naming the model whose input does not fit.

    Args:
        models: The report's `ReportModel` list.
        test: A dataset, or an ``(N, H, W, C)`` array of images.
    """
    images = test if isinstance(test, np.ndarray) else test.images
    for entry in models:
        try:
            check_model_images(entry.model, images[:1])
        except ValueError as error:
            raise ValueError(
                f"{entry.role.capitalize()} model {entry.name!r}: {error}"
            ) from None


def chunk_size_for(image_shape, *, batch_size=1, budget=CHUNK_BYTES):
    """Images per chunk: ``budget`` bytes of float32 images, at least one.

    At most `MAX_CHUNK_SIZE`; a multiple of ``batch_size`` when it holds at
    least one batch, so that forward passes run on full batches. With the
    defaults: 1,024 images of 32 x 32 x 3, 128 of 128 x 128 x 3 (batch
    128) and 41 of 224 x 224 x 3 (batch 41, `batch_size_for`).

    Args:
        image_shape: ``(H, W)`` or ``(H, W, C)`` of one image.
        batch_size: Images per forward pass.
        budget: Bytes of float32 images per chunk.
    """
    values = np.prod([int(size) for size in image_shape], dtype=np.int64)
    size = int(min(MAX_CHUNK_SIZE, max(1, budget // (4 * int(values)))))
    if size >= batch_size:
        size -= size % batch_size
    return size


def batch_size_for(image_shape, batch_size):
    """``batch_size``, or fewer images so a batch holds `BATCH_PIXELS`.

    Args:
        image_shape: ``(H, W)`` or ``(H, W, C)`` of one image.
        batch_size: The most images per forward pass.
    """
    pixels = int(image_shape[0]) * int(image_shape[1])
    return int(max(1, min(batch_size, BATCH_PIXELS // pixels)))


def chunks(test, chunk_size=None, *, batch_size=1):
    """Yields ``(images, labels, masks)`` chunks of an in-memory dataset.

    Args:
        test: An `explain_attn.data.Dataset` (``images``, ``labels`` and
            ``masks`` or ``None``).
        chunk_size: Images per chunk; ``None`` for `chunk_size_for` the
            images' shape.
        batch_size: Passed to `chunk_size_for`.

    Yields:
        ``images`` ``(n, H, W, C)``, ``labels`` ``(n,)`` and ``masks``
        ``(n, H, W)`` bool or ``None``; views, not copies.
    """
    if chunk_size is None:
        chunk_size = chunk_size_for(
            test.images.shape[1:], batch_size=batch_size
        )
    count = len(test.labels)
    labels = np.asarray(test.labels)
    for start in range(0, count, chunk_size):
        stop = min(start + chunk_size, count)
        masks = None if test.masks is None else test.masks[start:stop]
        yield test.images[start:stop], labels[start:stop], masks


def score_slices(num_images, pixels, budget=None):
    """``slice`` objects cutting ``num_images`` into metric calls.

    Each slice holds at most ``budget // pixels`` images (at least one),
    where ``pixels`` is the mask (or map) size of one image and ``budget``
    is `METRIC_PIXELS` unless given.
    """
    budget = METRIC_PIXELS if budget is None else budget
    step = max(1, budget // max(1, int(pixels)))
    return [
        slice(start, min(start + step, num_images))
        for start in range(0, num_images, step)
    ]


def _score_part(maps, masks, explanations, reference, agreement):
    """``{explanation: {metric: values}}`` and the agreement of one slice."""
    values, agreed = {}, {}
    for explanation in explanations:
        own = maps[explanation]
        row = {
            name: function(own)
            for name, function in metrics.CONCENTRATION_METRICS.items()
        }
        if masks is not None:
            row.update(metrics.foreground_metrics(own, masks))
        values[explanation] = row
        if explanation in agreement:
            agreed[explanation] = {
                name: metrics.AGREEMENT_METRICS[name](own, maps[reference])
                for name in AGREEMENT
            }
    return values, agreed


def _append(rows, part):
    for key, row in part.items():
        for name, value in row.items():
            rows[key].setdefault(name, []).append(value)


def _score(maps, masks, explanations, reference, values, agreement):
    """Scores one chunk in slices of at most `METRIC_PIXELS` pixels."""
    count = len(next(iter(maps.values())))
    sizes = [m.shape[1] * m.shape[2] for m in maps.values()]
    if masks is not None:
        sizes.append(masks.shape[1] * masks.shape[2])
    for part in score_slices(count, max(sizes)):
        own, agreed = _score_part(
            {e: m[part] for e, m in maps.items()},
            None if masks is None else masks[part],
            explanations,
            reference,
            agreement,
        )
        _append(values, own)
        _append(agreement, agreed)


def _joined(rows):
    return {
        key: {name: np.concatenate(chunks) for name, chunks in row.items()}
        for key, row in rows.items()
    }


def _predicted(predictor, images, batch_size):
    return np.concatenate(
        [
            predictor(images[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ]
    )


def evaluate(
    models, explanations, reference, test, *, batch_size, verbose,
    chunk_size=None, observers=(), strategy=None,
):  # fmt: skip
    """Streams an in-memory test set: predictions and per-image numbers.

    `evaluate_chunks` over `chunks` of ``test``.

    Args:
        models: The report's `ReportModel` list.
        explanations: The `Explanation` list to score.
        reference: The explanation the attention maps are compared with.
        test: The test `explain_attn.data.Dataset`.
        batch_size: Images per forward pass.
        verbose: Show a progress bar.
        chunk_size: Images per chunk (``None``: `chunk_size_for`).
        observers: Callables ``observer(start, images, maps, labels,
            masks)`` called with each chunk's first index, images, maps
            (`Explanation` -> ``(n, h, w)``), labels and masks (or
            ``None``) before the chunk is dropped: the report's baselines,
            warnings, channel weights and explorer thumbnails are built
            this way, in the same pass.
        strategy: ``None`` or a `tf.distribute` strategy whose replicas
            share every forward pass (see `evaluate_chunks`).

    Returns:
        An `Evaluation`.
    """
    check_models_fit(models, test)
    batch_size = batch_size_for(test.images.shape[1:], batch_size)
    return evaluate_chunks(
        models, explanations, reference,
        chunks(test, chunk_size, batch_size=batch_size),
        num_images=len(test.labels), batch_size=batch_size, verbose=verbose,
        observers=observers, strategy=strategy,
    )  # fmt: skip


def evaluate_chunks(
    models, explanations, reference, source, *, batch_size, verbose,
    num_images=None, observers=(), strategy=None,
):  # fmt: skip
    """Predictions and every per-image number, chunk by chunk.

    Args:
        models: The report's `ReportModel` list.
        explanations: The `Explanation` list to score.
        reference: The explanation the attention maps are compared with.
        source: An iterable of ``(images, labels, masks)`` chunks (masks
            ``None`` when the data has none); every chunk of a source must
            agree on whether it has masks.
        batch_size: The most images per forward pass (fewer for large
            images: `batch_size_for`).
        verbose: Show a progress bar.
        num_images: The number of test images, for the progress bar
            (``None``: unknown).
        observers: As in `evaluate`.
        strategy: ``None`` or a `tf.distribute` strategy: each forward
            pass (predictions, maps, CAMs) is split across its replicas
            (`explain_attn.devices.run_replicated`); load the models in
            its scope.

    Returns:
        An `Evaluation`; its arrays follow the order of the chunks.

    A chunk is scored and observed on one worker thread while the next
    chunk's model passes run (NumPy and TensorFlow release the GIL), in
    the order of the chunks; at most two chunks are held at a time.

    Raises:
        ValueError: When a model's input does not fit the images, or the
            source yields no image.
    """
    predictors = {
        entry.key: Predictor(entry.model, strategy=strategy) for entry in models
    }
    explainer = Explainer(explanations, strategy=strategy)
    predictions = {key: [] for key in predictors}
    values = {e: {} for e in explanations}
    agreement = {e: {} for e in explanations if e.method == "attention"}
    progress = (
        keras.utils.Progbar(num_images, unit_name="image") if verbose else None
    )

    def observe(start, images, maps, labels, masks):
        _score(maps, masks, explanations, reference, values, agreement)
        for observer in observers:
            observer(start, images, maps, labels, masks)

    seen, pending = 0, None
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        for images, labels, masks in source:
            if seen == 0:
                check_models_fit(models, images)
                batch_size = batch_size_for(images.shape[1:], batch_size)
            images = check_model_images(models[0].model, images)
            for key, predictor in predictors.items():
                predictions[key].append(
                    _predicted(predictor, images, batch_size)
                )
            maps = explainer(images, batch_size=batch_size, labels=labels)
            if pending is not None:
                pending.result()  # In order, one chunk behind; raises.
            pending = worker.submit(observe, seen, images, maps, labels, masks)
            seen += len(images)
            if progress is not None:
                progress.update(seen)
        if pending is not None:
            pending.result()
    if seen == 0:
        raise ValueError("The test data holds no image; nothing to evaluate.")
    return Evaluation(
        predictions={k: np.concatenate(v) for k, v in predictions.items()},
        values=_joined(values),
        agreement=_joined(agreement),
    )
