"""Compiled functions kept in a model's state, so that they are traced once.

Building an extractor, a CAM or a predictor traces a `tf.function`, which
costs about as much as hundreds of images. Every `Explainer` of a report
(evaluation, gallery, faithfulness) shares them through `compiled`, keyed
by what determines the function, in the `explain_attn.graph.ModelState`
it is given (the functions go when the state does). A public convenience
function given a `keras.Model` uses the state kept on the model
(`explain_attn.graph.model_state`), so repeated calls trace nothing new.
"""

from explain_attn.graph import model_state

__all__ = ["compiled"]


def compiled(model, key, build):
    """``build()``'s result for ``model`` and ``key``, built once.

    Args:
        model: The `explain_attn.graph.ModelState` the function is kept
            in, or a `keras.Model` (the state kept on it).
        key: A hashable description of the function (its class, layers,
            size).
        build: Called without arguments when there is no entry yet.
    """
    functions = model_state(model).functions
    if key not in functions:
        functions[key] = build()
    return functions[key]
