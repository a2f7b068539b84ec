"""The report's first stage: stream the test set, keep per-image numbers.

Images are processed in chunks: for each chunk, every model's predictions
and every explanation's maps are computed once, scored with every metric
and dropped. Only per-image numbers are kept for all images.
"""

import dataclasses

import keras
import numpy as np

from explain_attn import metrics
from explain_attn.explanations.explanation import Explainer
from explain_attn.explanations.inputs import check_model_images
from explain_attn.explanations.predict import Predictor

__all__ = ["CHUNK_SIZE", "Evaluation", "check_models_fit", "evaluate"]

CHUNK_SIZE = 1024
"""Test images per chunk of the streamed evaluation."""

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
    """Raises a one-line error naming the model whose input does not fit."""
    for entry in models:
        try:
            check_model_images(entry.model, test.images[:1])
        except ValueError as error:
            raise ValueError(
                f"{entry.role.capitalize()} model {entry.name!r}: {error}"
            ) from None


def _score(maps, masks, explanations, reference, values, agreement):
    for explanation in explanations:
        own = maps[explanation]
        row = values[explanation]
        for name, function in metrics.CONCENTRATION_METRICS.items():
            row.setdefault(name, []).append(function(own))
        if masks is not None:
            for name, function in metrics.FOREGROUND_METRICS.items():
                row.setdefault(name, []).append(function(own, masks))
        if explanation in agreement:
            for name in AGREEMENT:
                function = metrics.AGREEMENT_METRICS[name]
                agreement[explanation].setdefault(name, []).append(
                    function(own, maps[reference])
                )


def _joined(rows):
    return {
        key: {name: np.concatenate(chunks) for name, chunks in row.items()}
        for key, row in rows.items()
    }


def evaluate(
    models, explanations, reference, test, *, batch_size, verbose,
    observers=(),
):  # fmt: skip
    """Streams the test set: predictions and every per-image number.

    Args:
        models: The report's `ReportModel` list.
        explanations: The `Explanation` list to score.
        reference: The explanation the attention maps are compared with.
        test: The test `explain_attn.data.Dataset`.
        batch_size: Images per forward pass.
        verbose: Show a progress bar.
        observers: Callables ``observer(start, images, maps)`` called with
            each chunk's first index, images and maps (`Explanation` ->
            ``(n, h, w)``) before the maps are dropped (the report's
            warnings and explorer thumbnails are built this way).

    Returns:
        An `Evaluation`.
    """
    check_models_fit(models, test)
    count = len(test.labels)
    predictors = {entry.key: Predictor(entry.model) for entry in models}
    explainer = Explainer(explanations)
    predictions = {key: [] for key in predictors}
    values = {e: {} for e in explanations}
    agreement = {e: {} for e in explanations if e.method == "attention"}
    progress = (
        keras.utils.Progbar(count, unit_name="image") if verbose else None
    )
    for start in range(0, count, CHUNK_SIZE):
        stop = min(start + CHUNK_SIZE, count)
        images = check_model_images(models[0].model, test.images[start:stop])
        masks = None if test.masks is None else test.masks[start:stop]
        for key, predictor in predictors.items():
            predictions[key].append(
                np.concatenate(
                    [
                        predictor(images[i : i + batch_size])
                        for i in range(0, len(images), batch_size)
                    ]
                )
            )
        maps = explainer(
            images, batch_size=batch_size, labels=test.labels[start:stop]
        )
        _score(maps, masks, explanations, reference, values, agreement)
        for observer in observers:
            observer(start, images, maps)
        if progress is not None:
            progress.update(stop)
    return Evaluation(
        predictions={k: np.concatenate(v) for k, v in predictions.items()},
        values=_joined(values),
        agreement=_joined(agreement),
    )
