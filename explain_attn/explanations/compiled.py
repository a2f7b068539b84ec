"""Compiled functions kept per model, so that they are traced once.

Building an extractor, a CAM or a predictor traces a `tf.function`, which
costs about as much as hundreds of images. The public convenience
functions and every `Explainer` of a report (evaluation, gallery,
faithfulness) share them through `compiled`, keyed by what determines the
function, in the model's `explain_attn.graph.ModelState` (its one
per-model state: the functions go when the model does).
"""

from explain_attn.graph import model_state

__all__ = ["compiled"]


def compiled(model, key, build):
    """``build()``'s result for ``model`` and ``key``, built once.

    Args:
        model: The `keras.Model` the function belongs to.
        key: A hashable description of the function (its class, layers,
            size).
        build: Called without arguments when there is no entry yet.
    """
    functions = model_state(model).functions
    if key not in functions:
        functions[key] = build()
    return functions[key]
