"""Predicted classes, in one compiled forward pass per batch."""

import keras
import numpy as np
import tensorflow as tf

from explain_attn.devices import graph_function, run_replicated
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.inputs import model_batches
from explain_attn.graph import flat_graph, model_state
from explain_attn.models.task import predicted_labels

__all__ = ["Predictor", "predict_classes"]


class Predictor:
    """One compiled function from a batch of images to predicted classes.

    Keras' ``predict`` rebuilds its loop on every call, which dominates on
    the chunks a report streams; this is built once per model.

    Args:
        model: The model.
        strategy: ``None`` or a `tf.distribute` strategy whose replicas
            share each batch (`explain_attn.devices.run_replicated`).
    """

    def __init__(self, model, *, strategy=None):
        self.strategy = strategy
        graph = flat_graph(model)
        forward = keras.Model(graph.model_inputs, graph.outputs[0])
        self.function = graph_function(
            lambda batch: predicted_labels(forward(batch, training=False)),
            input_signature=[
                tf.TensorSpec(tuple(graph.inputs[0].shape), tf.float32)
            ],
        )

    def __call__(self, batch):
        """``(B,)`` int64 predicted classes of one batch."""
        return run_replicated(self.strategy, self._classes, batch)

    def _classes(self, batch):
        return self.function(batch).numpy().astype(np.int64)


def predict_classes(
    model,
    images,
    *,
    batch_size=128,
    input_scale=None,
    preprocess=None,
    strategy=None,
):
    """Returns the predicted class of each image, ``(N,)`` int64.

    Args:
        model: The model.
        images: An array, a `tf.data.Dataset`, an iterable of batches, a
            list of image files or a data source (see
            `explain_attn.explanations.inputs`).
        batch_size: Images per forward pass (split across the devices of
            ``strategy``).
        input_scale: ``None`` or the scale the model takes (see
            `explain_attn.explanations.inputs.model_batches`).
        preprocess: ``None`` or a function applied to every batch.
        strategy: ``None`` or a `tf.distribute` strategy
            (`explain_attn.devices.make_strategy`).
    """
    state = model_state(model)
    predictor = compiled(state, Predictor, lambda: Predictor(state))
    return np.concatenate(
        [
            run_replicated(strategy, predictor, batch)
            for batch in model_batches(
                state,
                images,
                batch_size,
                input_scale=input_scale,
                preprocess=preprocess,
            )
        ]
    )
