"""The report's first stage: stream the test set, keep per-image numbers.

The pass is a map and a reduce (`explain_attn.report.contributions`):
for each chunk of consecutive images, every model's predictions and every
explanation's maps are computed once, and each contributor (`Scores`: the
metrics and agreements; the baselines, mask shares, map statistics,
channel weights and thumbnails of the report) turns the chunk into a
`Part`: per-image rows and per-chunk sums. `evaluate_parts` combines the
chunks' parts into one `Part`; each contributor's ``reduce`` turns its
share of it into what the report shows, its one kind of result (`Scores`
gives an `Evaluation`, completed with the pass's predictions by
`with_predictions`). The contract:

- a contribution is a function of one chunk and the chunk's first index
  only (no state carried from chunk to chunk);
- a result is a function of the combined part only (``reduce(part)``);
- contributions combine by concatenation in image order, and sums are
  added in chunk order (`explain_attn.report.contributions.block_sum`);
- so a pass over the chunks of images ``a`` to ``b`` and one over ``b``
  to ``c``, combined, equal one pass over ``a`` to ``c``, bit for bit:
  shards of whole chunks run anywhere merge into the same report
  (`explain_attn.report.shards`).

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
import functools

import numpy as np

from explain_attn import metrics
from explain_attn.data.source import ArraySource
from explain_attn.devices import run_replicated
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.explanation import Explainer
from explain_attn.explanations.inputs import check_model_images
from explain_attn.explanations.predict import Predictor
from explain_attn.progress import Progress
from explain_attn.report.contributions import Contributor, Part, combine

__all__ = [
    "BATCH_PIXELS",
    "CHUNK_BYTES",
    "MAX_CHUNK_SIZE",
    "METRIC_PIXELS",
    "Evaluation",
    "Scores",
    "batch_size_for",
    "check_models_fit",
    "chunk_size_for",
    "chunks",
    "evaluate",
    "evaluate_chunks",
    "evaluate_parts",
    "score_slices",
    "with_predictions",
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
        test: A source, or an ``(N, H, W, C)`` array of images.
    """
    images = test if isinstance(test, np.ndarray) else test.read(0)[0][None]
    for entry in models:
        try:
            check_model_images(entry.state, images[:1])
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
    """Yields ``(images, labels, masks)`` chunks of a source.

    Args:
        test: An `explain_attn.data.source.Source` (an in-memory dataset
            gives views, not copies; a streamed one reads as it goes).
        chunk_size: Images per chunk; ``None`` for `chunk_size_for` the
            images' shape.
        batch_size: Passed to `chunk_size_for`.

    Yields:
        ``images`` ``(n, H, W, C)``, ``labels`` ``(n,)`` and ``masks``
        ``(n, H, W)`` bool or ``None``: ``test.batches(chunk_size)``.
    """
    if chunk_size is None:
        chunk_size = chunk_size_for(test.image_shape, batch_size=batch_size)
    yield from test.batches(chunk_size)


def score_slices(num_images, pixels, budget=None):
    """``slice`` objects cutting ``num_images`` into metric calls.

    Each slice holds at most ``budget // pixels`` images (at least one),
    where ``pixels`` is the mask (or map) size of one image and ``budget``
    is `METRIC_PIXELS` unless given.
    """
    budget = METRIC_PIXELS if budget is None else budget
    step = max(1, budget // max(1, int(pixels)))
    # Slices, not `Source.batches`: one plan cuts several aligned arrays
    # (every explanation's maps, the masks) by a pixel budget.
    return [
        slice(start, min(start + step, num_images))
        for start in range(0, num_images, step)
    ]


def _score_part(maps, masks, explanations, reference):
    """``{explanation: {metric: values}}`` and the agreement of one slice."""
    values, agreed = {}, {}
    # Every attention map is compared with the same reference maps:
    # resized, ranked and cut into their top set once.
    compared = metrics.AgreementReference(maps[reference])
    for explanation in explanations:
        own = maps[explanation]
        row = {
            name: function(own)
            for name, function in metrics.CONCENTRATION_METRICS.items()
        }
        if masks is not None:
            row.update(metrics.foreground_metrics(own, masks))
        values[explanation] = row
        if explanation.is_attention:
            agreed[explanation] = {
                name: compared.compare(name, own) for name in AGREEMENT
            }
    return values, agreed


def _score(maps, masks, explanations, reference):
    """Rows ``("values" | "agreement", explanation key, metric)`` of one
    chunk, scored in slices of at most `METRIC_PIXELS` pixels."""
    count = len(next(iter(maps.values())))
    sizes = [m.shape[1] * m.shape[2] for m in maps.values()]
    if masks is not None:
        sizes.append(masks.shape[1] * masks.shape[2])
    rows = {}
    for part in score_slices(count, max(sizes)):
        scored = _score_part(
            {e: m[part] for e, m in maps.items()},
            None if masks is None else masks[part],
            explanations,
            reference,
        )
        for kind, found in zip(("values", "agreement"), scored, strict=True):
            for explanation, row in found.items():
                for name, value in row.items():
                    key = (kind, explanation.key, name)
                    rows.setdefault(key, []).append(value)
    return {key: np.concatenate(chunks) for key, chunks in rows.items()}


class Scores(Contributor):
    """The pass's own contributor: every metric of every explanation, and
    each attention map's agreement with the reference, per image.

    Args:
        explanations: The `Explanation` list to score.
        reference: The explanation the attention maps are compared with.
    """

    def __init__(self, explanations, reference):
        super().__init__()
        self.explanations = list(explanations)
        self.reference = reference

    def contribute(self, start, images, maps, labels=None, masks=None):
        """Rows ``("values" | "agreement", explanation key, metric)``."""
        rows = _score(maps, masks, self.explanations, self.reference)
        return Part(start, start + len(next(iter(maps.values()))), rows)

    def reduce(self, total):
        """The `Evaluation`; its ``predictions`` are the pass's own (not
        this contributor's): `observed_from` adds them (`predictions_of`)."""
        values = {e: {} for e in self.explanations}
        agreement = {e: {} for e in self.explanations if e.is_attention}
        by_key = {e.key: e for e in self.explanations}
        for (kind, key, name), row in total.rows.items():
            chosen = values if kind == "values" else agreement
            chosen[by_key[key]][name] = row
        return Evaluation({}, values, agreement)


def _predictor(state, strategy):
    """The state's `Predictor` (`compiled`: the one the faithfulness
    checks' `predict_classes` use, traced once), split across the replicas
    of ``strategy``."""
    predictor = compiled(state, Predictor, lambda: Predictor(state))
    return functools.partial(run_replicated, strategy, predictor)


def _predicted(predictor, images, batch_size):
    return np.concatenate(
        [
            predictor(batch)
            for batch, _, _ in ArraySource(images).batches(batch_size)
        ]
    )


def evaluate(
    models,
    explanations,
    reference,
    test,
    *,
    batch_size,
    verbose,
    chunk_size=None,
    observers=(),
    strategy=None,
):
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
            ``None``) before the chunk is dropped.
        strategy: ``None`` or a `tf.distribute` strategy whose replicas
            share every forward pass (see `evaluate_chunks`).

    Returns:
        An `Evaluation`.
    """
    check_models_fit(models, test)
    batch_size = batch_size_for(test.image_shape, batch_size)
    return evaluate_chunks(
        models,
        explanations,
        reference,
        chunks(test, chunk_size, batch_size=batch_size),
        num_images=len(test.labels),
        batch_size=batch_size,
        verbose=verbose,
        observers=observers,
        strategy=strategy,
    )


class _Observer(Contributor):
    """A plain callable observer in the pass: called, contributes nothing."""

    def __init__(self, observer):
        super().__init__()
        self.observer = observer

    def contribute(self, start, images, maps, labels=None, masks=None):
        self.observer(start, images, maps, labels, masks)
        return Part(start, start + len(images))

    def reduce(self, total):
        return None  # The observer keeps what it saw.


def evaluate_chunks(
    models,
    explanations,
    reference,
    source,
    *,
    batch_size,
    verbose,
    num_images=None,
    observers=(),
    strategy=None,
):
    """Predictions and every per-image number, chunk by chunk.

    `evaluate_parts` with `Scores` as the contributor, reduced to an
    `Evaluation`; ``observers`` (callables, as in `evaluate`) are called
    with every chunk.

    Returns:
        An `Evaluation`; its arrays follow the order of the chunks.
    """
    scores = Scores(explanations, reference)
    contributors = {"scores": scores}
    for position, observer in enumerate(observers):
        if not isinstance(observer, Contributor):
            observer = _Observer(observer)
        contributors[f"observer {position}"] = observer
    total = evaluate_parts(
        models,
        explanations,
        source,
        contributors=contributors,
        batch_size=batch_size,
        verbose=verbose,
        num_images=num_images,
        strategy=strategy,
    )
    for name, contributor in contributors.items():
        contributor.load(total.section(name))
    return with_predictions(scores.result, total)


def predictions_of(total):
    """Model key -> ``(N,)`` predicted classes of a combined `Part`."""
    return {key[1]: row for key, row in total.rows.items() if key[0] == "_"}


def with_predictions(evaluation, total):
    """The `Scores` result ``evaluation`` with the predictions of the
    combined `Part` ``total`` (`predictions_of`)."""
    return dataclasses.replace(evaluation, predictions=predictions_of(total))


def _chunk_passes(models, predictors, explainer, images, labels, batch_size):
    """One chunk's model passes: ``(images, labels, predicted, maps)``,
    the images as the models take them (`check_model_images`)."""
    images = check_model_images(models[0].state, images)
    predicted = {
        key: _predicted(predictor, images, batch_size)
        for key, predictor in predictors.items()
    }
    maps = explainer(images, batch_size=batch_size, labels=labels)
    return images, labels, predicted, maps


def _chunk_part(contributors, start, images, labels, predicted, maps, masks):
    """The map step: one chunk's `Part`, every contributor's under its
    name, the predictions under ``("_", model key)``."""
    part = Part(start, start + len(images))
    part.rows.update({("_", key): row for key, row in predicted.items()})
    for name, contributor in contributors.items():
        own = contributor.contribute(start, images, maps, labels, masks)
        part.rows.update(own.prefixed(name).rows)
        part.blocks.update(own.prefixed(name).blocks)
    return part


def evaluate_parts(
    models,
    explanations,
    source,
    *,
    contributors,
    batch_size,
    verbose,
    num_images=None,
    start=0,
    strategy=None,
):
    """The evaluation pass: chunks in, one combined `Part` out.

    Args:
        models: The report's `ReportModel` list.
        explanations: The `Explanation` list whose maps are computed.
        source: An iterable of ``(images, labels, masks)`` chunks (masks
            ``None`` when the data has none); every chunk of a source must
            agree on whether it has masks.
        contributors: Name -> `Contributor` (see the module); the part
            holds each one's contributions under its name and the
            predictions under ``("_", model key)`` (`predictions_of`).
        batch_size: The most images per forward pass (fewer for large
            images: `batch_size_for`).
        verbose: Show progress with the time left (on a terminal only,
            `explain_attn.progress`).
        num_images: The number of images, for the progress.
        start: The index of the source's first image in the test set.
        strategy: ``None`` or a `tf.distribute` strategy: each forward
            pass (predictions, maps, CAMs) is split across its replicas
            (`explain_attn.devices.run_replicated`); load the models in
            its scope.

    Returns:
        The `Part` of images ``start`` to ``start + n - 1``.

    A chunk's contributions are computed on one worker thread while the
    next chunk's model passes run (NumPy and TensorFlow release the GIL);
    at most two chunks are held at a time.

    Raises:
        ValueError: When a model's input does not fit the images, or the
            source yields no image.
    """
    predictors = {
        entry.key: _predictor(entry.state, strategy) for entry in models
    }
    explainer = Explainer(explanations, strategy=strategy)
    progress = Progress(
        num_images,
        "evaluation",
        unit="images",
        enabled=None if verbose else False,
    )
    seen, pending, parts = 0, None, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        for images, labels, masks in source:
            if seen == 0:
                check_models_fit(models, images)
                batch_size = batch_size_for(images.shape[1:], batch_size)
            chunk = _chunk_passes(
                models, predictors, explainer, images, labels, batch_size
            )
            if pending is not None:
                parts.append(pending.result())  # In order, one behind.
            pending = worker.submit(
                _chunk_part, contributors, start + seen, *chunk, masks
            )
            seen += len(images)
            progress.update(seen)
        if pending is not None:
            parts.append(pending.result())
    progress.close()
    if seen == 0:
        raise ValueError("The test data holds no image; nothing to evaluate.")
    return combine(parts)
