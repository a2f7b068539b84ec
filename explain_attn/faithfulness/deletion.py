"""Deletion and insertion curves (Petsiuk et al., 2018), batched.

Blur away (or restore) the pixels an explanation ranks highest first and
record the true-class probability. A faithful map makes the deletion curve
fall fast and the insertion curve rise fast; a random order is the
reference.
"""

import numpy as np
import tensorflow as tf

from explain_attn.data.adapter import as_source
from explain_attn.data.source import read_arrays
from explain_attn.devices import graph_function, run_replicated
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.inputs import check_images
from explain_attn.faithfulness.common import as_labels
from explain_attn.graph import model_state
from explain_attn.models.heads import probability_function, single_input_graph
from explain_attn.options import check_positive_int

__all__ = ["DEFAULT_STEPS", "deletion_insertion"]

DEFAULT_STEPS = 10
"""Steps of the deletion and insertion curves (fractions 0, 0.1, ..., 1)."""


def _ranks(maps, rng):
    """Rank of each pixel (0 = highest value); ties broken at random."""
    flat = maps.reshape(len(maps), -1)
    tie_break = rng.random(flat.shape)
    order = np.lexsort((tie_break, -flat), axis=-1)
    ranks = np.empty_like(order)
    positions = np.broadcast_to(np.arange(flat.shape[1]), flat.shape)
    np.put_along_axis(ranks, order, positions, axis=-1)
    return ranks.reshape(maps.shape).astype(np.int32)


def _upsampled(maps, size):
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(
            f"Maps must be (N, h, w). Received: shape {maps.shape}"
        )
    if maps.shape[1:] == tuple(size):
        return maps
    return tf.image.resize(maps[..., None], size).numpy()[..., 0]


class _Curves:
    """One compiled call: every order x curve x step of a batch of images.

    The first and last steps of every order and curve are the image itself
    or its blurred copy (nothing or everything replaced): each goes through
    the model once, and only the steps in between once per order and curve.
    """

    def __init__(self, state):
        self.model = state.model
        self.probabilities = probability_function(state)
        shape = tuple(single_input_graph(state).inputs[0].shape[1:])
        # One trace for every chunk size (a last, smaller chunk included).
        self.function = graph_function(
            self._run,
            input_signature=[
                tf.TensorSpec((None, *shape), tf.float32),
                tf.TensorSpec((None, *shape), tf.float32),
                tf.TensorSpec((None, None, *shape[:2]), tf.int32),
                tf.TensorSpec((None,), tf.int32),
                tf.TensorSpec((None,), tf.int32),
            ],
        )

    def _run(self, images, blurred, ranks, counts, labels):
        # ranks (K, B, H, W); counts (S,) of the steps between the ends.
        removed = (
            ranks[:, None, ..., None] < counts[None, :, None, None, None, None]
        )
        deleted = tf.where(removed, blurred[None, None], images[None, None])
        inserted = tf.where(removed, images[None, None], blurred[None, None])
        middle = tf.stack([deleted, inserted], axis=1)  # (K, 2, S, B, ...)
        flat = tf.reshape(middle, tf.concat([[-1], tf.shape(images)[1:]], 0))
        batch = tf.concat([images, blurred, flat], 0)  # images' static shape
        count = tf.shape(images)[0]
        outputs = self.model(batch, training=False)
        scores = self.probabilities(tf.cast(outputs, tf.float32))
        scores = tf.reshape(scores, (-1, count, tf.shape(scores)[-1]))
        chosen = tf.one_hot(labels, tf.shape(scores)[-1], dtype=scores.dtype)
        scores = tf.reduce_sum(scores * chosen, axis=-1)  # (2 + K*2*S, B)
        shape = tf.shape(middle)
        middle = tf.reshape(scores[2:], (shape[0], 2, shape[2], count))
        ends = tf.broadcast_to(scores[:2, None], (shape[0], 2, 1, count))
        # Deletion starts at the image and ends at the blur; insertion the
        # other way round.
        return tf.concat([ends, middle, ends[:, ::-1]], axis=2)


def _orders(maps, count, size, random_order, rng):
    """``{name: (N, H, W) int32 ranks}``, ``"random"`` last."""
    if not isinstance(maps, dict) or not maps:
        raise TypeError(
            "`maps` must be a non-empty dict from name to (N, h, w) maps. "
            f"Received: {type(maps).__name__}"
        )
    orders = {}
    for name, values in maps.items():
        values = _upsampled(values, size)
        if len(values) != count:
            raise ValueError(
                f"Maps {name!r} have {len(values)} images; expected {count}."
            )
        orders[name] = _ranks(values, rng)
    if random_order:
        pixels = size[0] * size[1]
        orders["random"] = rng.permuted(
            np.tile(np.arange(pixels, dtype=np.int32), (count, 1)), axis=1
        ).reshape(count, *size)
    return orders


def _probabilities(
    state, images, blurred, stacked, counts, labels, chunk, strategy
):
    """``(K, 2, S, N)`` true-class probabilities, chunk by chunk, each
    chunk split across the replicas of ``strategy`` (if any)."""
    curves = compiled(state, _Curves, lambda: _Curves(state))

    def images_first(images, blurred, ranks, labels):
        values = curves.function(
            tf.constant(images, tf.float32),
            tf.constant(blurred, tf.float32),
            tf.transpose(tf.constant(ranks, tf.int32), (1, 0, 2, 3)),
            tf.constant(counts[1:-1], tf.int32),
            tf.constant(labels, tf.int32),
        )
        return np.moveaxis(values.numpy(), -1, 0)

    results = []
    for start in range(0, len(images), chunk):
        part = slice(start, min(start + chunk, len(images)))
        results.append(
            run_replicated(
                strategy,
                images_first,
                images[part],
                blurred[part],
                np.moveaxis(stacked[:, part], 1, 0),
                labels[part],
            )
        )
    return np.moveaxis(np.concatenate(results), 0, -1).astype(np.float64)


def deletion_insertion(
    model,
    images,
    labels=None,
    maps=None,
    *,
    steps=DEFAULT_STEPS,
    blur_sigma=None,
    random_order=True,
    seed=0,
    batch_size=512,
    strategy=None,
):
    """Deletion and insertion curves (Petsiuk et al., 2018), batched.

    For each explanation, the pixels of each image are ordered by the map's
    value (maps upsampled bilinearly to the input size; ties broken at
    random, seeded). At step ``s`` of ``steps``, the first
    ``round(s / steps * H * W)`` pixels are replaced by those of a blurred
    copy of the image (*deletion*, starting from the image) or restored on
    the blurred copy (*insertion*, starting from the blur), and the model's
    probability of the image's class in ``labels`` is recorded. A faithful
    explanation makes deletion fall and insertion rise early. ``"random"``
    is the same with a seeded random order per image.

    Every order, both curves and every step of a chunk of images go through
    the model in one call: about ``batch_size`` images per call.

    Args:
        model: A `keras.Model` with one image input and class scores out
            (probabilities, or logits turned into them with a softmax), or
            its `explain_attn.graph.ModelState`.
        images: ``(N, H, W, C)`` images, or any input of `as_source` (a
            `Source`, ``(images, labels)``, a folder...), read whole.
        labels: ``(N,)`` the class whose probability is recorded; ``None``
            for the labels of ``images``.
        maps: A dict from explanation name to ``(N, h, w)`` maps.
        steps: Number of steps, at least 1 (``steps + 1`` points).
        blur_sigma: Standard deviation in pixels of the Gaussian blur
            (`skimage.filters.gaussian`, per channel); ``None`` for a tenth
            of the smaller image side.
        random_order: Also compute the curves of a random order.
        seed: Seed of the random order and of the tie-breaking.
        batch_size: Images per model call (steps included).
        strategy: ``None`` or a `tf.distribute` strategy whose replicas
            share each call (`explain_attn.devices.run_replicated`).

    Returns:
        A dict: ``fractions`` ``(steps + 1,)`` (the fraction of pixels
        deleted or inserted at each step), ``blur_sigma``, and per name
        (``"random"`` last) a dict with ``deletion`` and ``insertion``
        ``(N, steps + 1)`` probabilities and ``deletion_auc`` and
        ``insertion_auc`` ``(N,)``, the trapezoid areas over the fractions
        in [0, 1] (lower deletion and higher insertion are better).

    Notes:
        ``AUC = sum_s (f_{s+1} - f_s) (p_s + p_{s+1}) / 2`` with ``f`` the
        fractions and ``p`` the probabilities.
    """
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    state, images, labels = _checked_inputs(model, images, labels)
    size = images.shape[1:3]
    rng = np.random.default_rng(seed)
    orders = _orders(maps, len(images), size, random_order, rng)
    blur_sigma = min(size) / 10.0 if blur_sigma is None else blur_sigma
    blurred = _blurred(images, blur_sigma)
    pixels = size[0] * size[1]
    counts = np.round(np.linspace(0, 1, steps + 1) * pixels).astype(np.int32)
    fractions = counts / pixels
    names = list(orders)
    stacked = np.stack([orders[name] for name in names])  # (K, N, H, W)
    chunk = _chunk_size(batch_size, len(names), steps)
    probabilities = _probabilities(
        state, images, blurred, stacked, counts, labels, chunk, strategy
    )
    output = {"fractions": fractions, "blur_sigma": float(blur_sigma)}
    for index, name in enumerate(names):
        output[name] = _areas(probabilities[index], fractions)
    return output


def _checked_inputs(model, images, labels):
    """``(state, images, labels)``, checked against the model's state:
    images as an array (any other input of `as_source` read whole) and
    labels (the images' own unless ``labels`` are given)."""
    state = model_state(model)
    graph = single_input_graph(state)
    shape = tuple(graph.inputs[0].shape[1:])
    if not isinstance(images, np.ndarray):
        source = as_source(images, image_shape=shape)
        images, own, _ = read_arrays(source)
        if labels is None and own is None:
            raise ValueError(
                "`labels` are needed: the images have none. Pass labels= "
                "or labelled images (a Source with labels, an (images, "
                "labels) tuple, a class folder)."
            )
        labels = own if labels is None else labels
    images = check_images(images, shape)
    num_classes = int(graph.outputs[0].shape[-1])
    return state, images, as_labels(labels, len(images), num_classes)


def _chunk_size(batch_size, orders, steps):
    """Images per call: each is ``2 + 2 * orders * (steps - 1)`` model
    inputs (`_Curves`), about ``batch_size`` in all."""
    return max(1, batch_size // (2 + 2 * orders * (steps - 1)))


def _blurred(images, sigma):
    """Each channel blurred with a Gaussian of ``sigma`` pixels."""
    from skimage.filters import gaussian

    return gaussian(
        images, sigma=(0, sigma, sigma, 0), preserve_range=True
    ).astype(np.float32)


def _areas(probabilities, fractions):
    """Curves ``(N, S)`` and their trapezoid areas from ``(2, S, N)``."""
    deletion = probabilities[0].T
    insertion = probabilities[1].T
    return {
        "deletion": deletion,
        "insertion": insertion,
        "deletion_auc": np.trapezoid(deletion, fractions, axis=1),
        "insertion_auc": np.trapezoid(insertion, fractions, axis=1),
    }
