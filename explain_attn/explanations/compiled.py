"""Compiled functions kept per model, so that they are traced once.

Building an extractor, a CAM or a predictor traces a `tf.function`, which
costs about as much as hundreds of images. The public convenience
functions and every `Explainer` of a report (evaluation, gallery,
faithfulness) share them through `compiled`, keyed by what determines the
function; the entries go when the model does.
"""

import weakref

__all__ = ["compiled"]

_COMPILED = weakref.WeakKeyDictionary()


def compiled(model, key, build):
    """``build()``'s result for ``model`` and ``key``, built once.

    Args:
        model: The `keras.Model` the function belongs to (a weak key).
        key: A hashable description of the function (its class, layers,
            size).
        build: Called without arguments when there is no entry yet.
    """
    functions = _COMPILED.setdefault(model, {})
    if key not in functions:
        functions[key] = build()
    return functions[key]
