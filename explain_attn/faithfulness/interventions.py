"""Attention interventions: replace a layer's map at inference, measure.

If a model uses its attention, replacing the map by a uniform, a shuffled
or an inverted one hurts its accuracy, and the ground-truth mask may help.
"""

import keras
import numpy as np
import tensorflow as tf

from explain_attn.attention.discovery import attention_module
from explain_attn.data.adapter import as_source
from explain_attn.data.source import read_arrays
from explain_attn.devices import graph_function, run_replicated
from explain_attn.explanations.inputs import check_model_images
from explain_attn.faithfulness.common import as_labels
from explain_attn.graph import model_state
from explain_attn.metrics import paired_differences
from explain_attn.models.heads import probability_function, single_input_graph
from explain_attn.models.lookup import reading_kind, resolve_layers
from explain_attn.options import RunOptions

__all__ = ["INTERVENTIONS", "Intervened", "attention_interventions"]

INTERVENTIONS = {
    "uniform": "the map replaced by a constant map at its own per-image mean",
    "shuffled": "the map's values moved to randomly permuted positions "
    "(a seeded permutation per image)",
    "inverted": "the map replaced by 1 − m",
    "mask": "the map replaced by the ground-truth foreground mask, "
    "area-resized to the layer's resolution (the fraction of each cell "
    "covered by the object)",
}
"""The interventions of `attention_interventions`, in report order."""


class Intervened:
    """One compiled forward pass with a module's map replaced, batched.

    The flat graph is cut at the module: ``head`` computes the tensor its
    kind reads (`explain_attn.attention.kinds`), ``tail`` computes the
    model's output from the images and the module's output. Both are
    sub-models over the same layer objects, so the weights are the model's
    own and nothing is copied or changed. For one batch, every variant of
    the module's output is stacked into one call of ``tail``: the
    unmodified output first, then one per intervention.

    Args:
        model: The model, or its `explain_attn.graph.ModelState`.
        module: An `explain_attn.attention.kinds.AttentionModule` of it.
        with_mask: Whether a mask replacement is passed to each call.
    """

    def __init__(self, model, module, *, with_mask):
        state = model_state(model)
        graph = single_input_graph(state)
        self.module = module
        self.head = keras.Model(graph.model_inputs, module.source())
        self.tail = keras.Model(
            [graph.inputs[0], module.tap.output], graph.outputs
        )
        self.probabilities = probability_function(state)
        self.map_shape = tuple(int(s) for s in module.tap.output.shape[1:3])
        self.with_mask = with_mask
        # One trace for every batch size (a last, smaller batch included).
        self.function = graph_function(
            self._run,
            input_signature=[
                tf.TensorSpec((None, *graph.inputs[0].shape[1:]), tf.float32),
                tf.TensorSpec(
                    (None, self.map_shape[0] * self.map_shape[1]), tf.int32
                ),
                tf.TensorSpec((None, *self.map_shape, 1), tf.float32),
            ],
        )

    def _run(self, images, permutation, mask):
        features, attention = self.module.parts(
            self.head(images, training=False)
        )
        recombine = self.module.kind.recombine
        shape = tf.shape(attention)
        mean = tf.reduce_mean(attention, axis=(1, 2), keepdims=True)
        flat = tf.reshape(attention, (shape[0], -1))
        replacements = [
            tf.broadcast_to(mean, shape),
            tf.reshape(tf.gather(flat, permutation, batch_dims=1), shape),
            1.0 - attention,
        ]
        if self.with_mask:
            replacements.append(tf.cast(mask, attention.dtype))
        variants = [
            recombine(features, weights)
            for weights in (attention, *replacements)
        ]
        count = len(variants)
        stacked = tf.concat(variants, axis=0)
        tiled = tf.tile(images, [count, 1, 1, 1])
        outputs = self.tail([tiled, stacked], training=False)
        if isinstance(outputs, list | tuple):
            outputs = outputs[0]
        scores = self.probabilities(tf.cast(outputs, tf.float32))
        return tf.reshape(scores, (count, shape[0], -1))

    def scores(self, images, masks, seed, batch_size, strategy=None):
        """``(variants, N, classes)`` probabilities, unmodified first.

        ``strategy`` (``None`` or a `tf.distribute` strategy) splits each
        batch across its replicas.
        """
        height, width = self.map_shape
        rng = np.random.default_rng(seed)
        permutations = rng.permuted(
            np.tile(
                np.arange(height * width, dtype=np.int32), (len(images), 1)
            ),
            axis=1,
        )
        resized = (
            None if masks is None else _resized_masks(masks, self.map_shape)
        )
        chunks = []
        for start in range(0, len(images), batch_size):
            stop = min(start + batch_size, len(images))
            mask = (
                resized[start:stop]
                if resized is not None
                else np.zeros((stop - start, height, width, 1), np.float32)
            )
            chunks.append(
                run_replicated(
                    strategy,
                    self._images_first,
                    images[start:stop],
                    permutations[start:stop],
                    mask,
                )
            )
        return np.moveaxis(np.concatenate(chunks), 0, 1).astype(np.float64)

    def _images_first(self, images, permutation, mask):
        """One batch's ``(B, variants, classes)`` probabilities."""
        scores = self.function(
            tf.constant(images, tf.float32),
            tf.constant(permutation, tf.int32),
            tf.constant(mask, tf.float32),
        )
        return np.moveaxis(scores.numpy(), 1, 0)


def _resized_masks(masks, shape):
    """Area-resizes boolean masks to ``shape``: covered fraction per cell."""
    values = tf.image.resize(
        masks[..., None].astype(np.float32), shape, method="area"
    )
    return np.clip(values.numpy(), 0.0, 1.0)


def _effects(scores, labels, names, bootstrap):
    """Accuracy and true-class probability of each variant vs unmodified."""
    probabilities = scores[:, np.arange(len(labels)), labels]
    correct = scores.argmax(axis=-1) == labels[None]
    clean = {
        "accuracy": float(correct[0].mean()),
        "mean_true_class_probability": float(probabilities[0].mean()),
    }
    # One call for every variant's changes: their intervals share the
    # bootstrap's draws (the same dicts as one paired_difference each).
    changes = paired_differences(
        [
            pair
            for index in range(1, len(names) + 1)
            for pair in (
                (correct[index].astype(float), correct[0].astype(float)),
                (probabilities[index], probabilities[0]),
            )
        ],
        **bootstrap,
    )
    results = {}
    for index, name in enumerate(names, start=1):
        results[name] = {
            "accuracy": float(correct[index].mean()),
            "mean_true_class_probability": float(probabilities[index].mean()),
            "accuracy_change": changes[2 * index - 2],
            "probability_change": changes[2 * index - 1],
        }
    return clean, results


def _layer_row(module, intervened, results):
    note = module.kind.intervention_note
    return {
        "layer": module.path,
        "kind": module.kind.name,
        "map_shape": list(intervened.map_shape),
        "interventions": results,
        "notes": [note] if note else [],
    }


def _no_map_row(path, tap, module=None):
    what = (
        f"a {module.kind.description}, whose weights cannot be replaced by "
        "one map"
        if module is not None
        else "not a spatial attention module"
    )
    return {
        "layer": path,
        "kind": reading_kind(tap, module),
        "map_shape": None,
        "interventions": {},
        "notes": [f"Layer {path!r} is {what}; no intervention is possible."],
    }


def _clean(state, graph, images, labels, options):
    """Accuracy and mean true-class probability of the unmodified model."""
    batch_size, strategy = options.batch_size, options.strategy
    forward = keras.Model(graph.model_inputs, graph.outputs[0])
    probabilities = probability_function(state)

    def scores_of(batch):
        return probabilities(tf.cast(forward(batch), tf.float32)).numpy()

    scores = np.concatenate(
        [
            run_replicated(strategy, scores_of, images[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ]
    )
    return {
        "accuracy": float((scores.argmax(axis=-1) == labels).mean()),
        "mean_true_class_probability": float(
            scores[np.arange(len(labels)), labels].mean()
        ),
    }


def _inputs(state, dataset):
    """``(graph, images, labels, masks or None, notes)``, checked."""
    graph = single_input_graph(state)
    images, labels, masks = read_arrays(as_source(dataset, name="dataset"))
    images = check_model_images(state, images)
    num_classes = int(graph.outputs[0].shape[-1])
    labels = as_labels(labels, len(images), num_classes)
    notes = []
    if masks is None:
        notes.append(
            "The data has no foreground masks, so the 'mask' intervention "
            "is left out."
        )
    else:
        masks = np.asarray(masks, dtype=bool)
    return graph, images, labels, masks, notes


def _layer_rows(state, paths, inputs, bootstrap, options):
    """One row per layer (its effects, or why it has none), and the
    unmodified model's scores (``None`` when no layer had a map)."""
    graph, images, labels, masks = inputs
    names = [n for n in INTERVENTIONS if n != "mask" or masks is not None]
    rows, clean = [], None
    for position, path in enumerate(paths):
        module = attention_module(state, path)
        if module is None or not (
            module.kind.spatial and module.kind.intervenable
        ):
            rows.append(_no_map_row(path, graph.taps[path], module))
            continue
        intervened = Intervened(state, module, with_mask=masks is not None)
        scores = intervened.scores(
            images,
            masks,
            options.seed + position,
            options.batch_size,
            options.strategy,
        )
        own_clean, results = _effects(scores, labels, names, bootstrap)
        clean = clean or own_clean
        rows.append(_layer_row(module, intervened, results))
    return rows, clean


def attention_interventions(
    model,
    dataset,
    *,
    explanations=None,
    layers=None,
    seed=0,
    batch_size=128,
    confidence=0.95,
    num_resamples=10_000,
    strategy=None,
):
    """Replaces each attention layer's map at inference; measures the effect.

    For each layer, the map ``m`` (the layer's own weights) is replaced by
    each of `INTERVENTIONS` (``"mask"`` only when the data has masks). The
    module's output becomes ``x * r`` with the replacement ``r``, as its
    attention kind defines it (for `CBAM`, ``x`` after the channel
    attention; for a plain-Keras gate, the gate's output is replaced).
    Only one layer is intervened on at a time; the model is not modified
    (see `Intervened`).

    Args:
        model: A `keras.Model` with one image input and one class-score
            output (probabilities, or logits that a softmax turns into
            probabilities), or its `explain_attn.graph.ModelState`.
        dataset: The images with labels and optional masks: any labelled
            input of `explain_attn.data.adapter.as_source` (a `Dataset`,
            an ``(images, labels)`` tuple, a folder...), read whole.
        explanations: `Explanation` objects of ``model``: the layers of those
            whose maps are attention weights (``is_attention``) are
            intervened on, instead of ``layers``.
        layers: ``None`` for every attention layer, or names, paths or glob
            patterns. Layers without a map get a note, not an error.
        seed: Seed of the permutations and of the bootstrap intervals.
        batch_size: Images per batch (each model call sees up to 5 times
            as many).
        confidence: Level of the bootstrap intervals.
        num_resamples: Bootstrap resamples.
        strategy: ``None`` or a `tf.distribute` strategy sharing batches.

    Returns:
        A JSON-ready dict: ``num_images``; ``clean`` (``accuracy`` and
        ``mean_true_class_probability`` of the unmodified model);
        ``layers``, one dict per layer with ``layer``, ``kind``,
        ``map_shape``, ``interventions`` (name -> ``accuracy``,
        ``mean_true_class_probability``, ``accuracy_change`` and
        ``probability_change``, each a
        `explain_attn.metrics.paired_difference` of intervened minus
        unmodified per image) and ``notes``; and ``notes``.

    Raises:
        ValueError: For unknown layers, a model without attention layers,
            images that do not match the model, or bad labels.
    """
    options = RunOptions(batch_size=batch_size, strategy=strategy, seed=seed)
    if explanations is not None:
        layers = [e.layer for e in explanations if e.is_attention]
    state = model_state(model)
    paths = resolve_layers(state, layers)
    graph, images, labels, masks, notes = _inputs(state, dataset)
    bootstrap = {
        "seed": seed,
        "confidence": confidence,
        "num_resamples": num_resamples,
    }
    rows, clean = _layer_rows(
        state, paths, (graph, images, labels, masks), bootstrap, options
    )
    if clean is None:  # No layer had a map to replace.
        clean = _clean(state, graph, images, labels, options)
    return {
        "num_images": int(len(images)),
        "clean": clean,
        "layers": rows,
        "notes": notes,
    }
