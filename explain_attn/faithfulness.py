"""Is the attention used, and is it sane? Interventions, randomisation, curves.

"Attention is not explanation": a map can look right without the model
relying on it. Three families of checks answer this for a trained model:

- `attention_interventions`: at inference, replace one attention layer's map
  by a uniform map at its own per-image mean, the same map spatially
  shuffled, the inverted map ``1 - m`` or the ground-truth mask, and measure
  what happens to accuracy and to the true-class probability. If the model
  uses its attention, the first three hurt and the mask may help.
- `randomization_check` (Adebayo et al., 2018): re-initialise the weights of
  a clone of the model layer by layer from the output down, and watch the
  maps change. A map that stays the same when the weights it is computed
  from are random explains nothing about what the model learnt.
- `deletion_insertion` (Petsiuk et al., 2018): blur away (or restore) the
  pixels an explanation ranks highest first and record the true-class
  probability. A faithful map makes the deletion curve fall fast and the
  insertion curve rise fast; a random order is the reference.

`faithfulness_section` runs all three for the report. The caller's model is
never modified: interventions run through sub-models of the model's own
flat graph (the same layer objects, the same weights, the layer's own map
computation), and randomisation works on a clone.
"""

import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from explain_attn._graph import flat_graph
from explain_attn.layers import CBAM
from explain_attn.maps import (
    ATTENTION,
    GATE,
    _batches,
    _check_images,
    attention_maps,
    check_images,
    layer_kind,
    resolve_layers,
)

__all__ = [
    "INTERVENTIONS",
    "attention_interventions",
    "deletion_insertion",
    "faithfulness_section",
    "map_similarity",
    "randomization_check",
    "reinitialize_layer",
]

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

FAILURE_THRESHOLD = 0.9
"""A map fails a randomisation check when its median Spearman correlation
with the original stays above this."""

DEFAULT_STEPS = 10
"""Steps of the deletion and insertion curves (fractions 0, 0.1, ..., 1)."""


# ----------------------------------------------------------------- shared


def _probability_function(model):
    """The function turning the model's output into probabilities.

    Models ending in a softmax (a ``Dense(..., activation="softmax")``, a
    ``Softmax`` or an ``Activation("softmax")`` layer) already give
    probabilities: identity. Any other output is taken as logits: softmax.
    """
    from explain_attn.cam import _score_head

    graph = flat_graph(model)
    tensor, _ = _score_head(model, graph)
    return tf.nn.softmax if tensor is graph.outputs[0] else _identity


def _identity(values):
    return values


def _single_input(model):
    graph = flat_graph(model)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError(
            f"Model {model.name!r} has {len(graph.inputs)} inputs and "
            f"{len(graph.outputs)} outputs; the faithfulness checks need "
            "one image input and one class-score output."
        )
    return graph


def _as_labels(labels, count, num_classes):
    labels = np.asarray(labels)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"Labels must be integers. Received: dtype={labels.dtype}"
        )
    if labels.shape != (count,):
        raise ValueError(
            f"Expected one label per image ({count}). Received: "
            f"labels.shape={labels.shape}"
        )
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in [0, {num_classes}). Received: values from "
            f"{labels.min()} to {labels.max()}"
        )
    return labels.astype(np.int32)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _mean(values):
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


# ---------------------------------------------------------- interventions


class _Intervened:
    """One compiled forward pass with a layer's map replaced, batched.

    The flat graph is cut at the layer: ``head`` computes the layer's input
    (for our attention layers) or its output (for a gate, whose output is
    the map), ``tail`` computes the model's output from the images and the
    layer's output. Both are sub-models over the same layer objects, so the
    weights are the model's own and nothing is copied or changed. For one
    batch, every variant of the layer's output is stacked into one call of
    ``tail``: the unmodified output first, then one per intervention.
    """

    def __init__(self, model, path, *, with_mask):
        graph = _single_input(model)
        tap = graph.taps[path]
        self.kind = layer_kind(tap)
        self.layer = tap.layer
        cut = tap.input if self.kind == ATTENTION else tap.output
        self.head = keras.Model(graph.model_inputs, cut)
        self.tail = keras.Model([graph.inputs[0], tap.output], graph.outputs)
        self.probabilities = _probability_function(model)
        self.map_shape = tuple(int(size) for size in tap.output.shape[1:3])
        self.with_mask = with_mask
        self.function = tf.function(self._run, reduce_retracing=True)

    def _attend(self, features):
        """``(attended, map, clean output)`` of the layer for ``features``."""
        if self.kind != ATTENTION:
            return None, features, features
        if isinstance(self.layer, CBAM):
            attended = self.layer.channel_attention(features)
            attention = self.layer.spatial_attention.attention_map(attended)
        else:
            attended = features
            attention = self.layer.attention_map(features)
        return attended, attention, self.layer(features)

    def _run(self, images, permutation, mask):
        features = self.head(images, training=False)
        attended, attention, clean = self._attend(features)
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
        if attended is None:
            variants = [clean, *replacements]
        else:
            variants = [clean, *(attended * r for r in replacements)]
        count = len(variants)
        stacked = tf.concat(variants, axis=0)
        tiled = tf.tile(images, [count, 1, 1, 1])
        outputs = self.tail([tiled, stacked], training=False)
        if isinstance(outputs, list | tuple):
            outputs = outputs[0]
        scores = self.probabilities(tf.cast(outputs, tf.float32))
        return tf.reshape(scores, (count, shape[0], -1))


def _resized_masks(masks, shape):
    """Area-resizes boolean masks to ``shape``: covered fraction per cell."""
    values = tf.image.resize(
        masks[..., None].astype(np.float32), shape, method="area"
    )
    return np.clip(values.numpy(), 0.0, 1.0)


def attention_interventions(
    model,
    dataset,
    *,
    layers=None,
    seed=0,
    batch_size=128,
    confidence=0.95,
    num_resamples=10_000,
):
    """Replaces each attention layer's map at inference; measures the effect.

    For each layer, the map ``m`` (``(h, w)`` per image, the layer's own
    weights) is replaced by each of `INTERVENTIONS`: ``"uniform"`` (every
    position at the image's mean of ``m``, so the total attention is
    kept), ``"shuffled"`` (the values of ``m`` at a seeded random
    permutation of the positions, one per image), ``"inverted"``
    (``1 - m``) and ``"mask"`` (the ground-truth mask area-resized to
    ``(h, w)``: each cell holds the fraction of its pixels on the object;
    only when the data has masks). The layer's output becomes ``x * r``
    with the replacement ``r`` (for `CBAM`, ``x`` after the channel
    attention; for a plain-Keras gate, the gate's output itself is
    replaced). Everything else in the model is unchanged; only one layer is
    intervened on at a time.

    The model is not modified: the intervened forward pass runs through
    sub-models of its flat graph (`explain_attn._graph`) that call the
    model's own layers, compiled once per layer, with every variant of a
    batch stacked into one call.

    Args:
        model: A functional or built Sequential `keras.Model` with one image
            input and one class-score output (probabilities, or logits that
            a softmax turns into probabilities).
        dataset: An `explain_attn.data.Dataset` (or any object with
            ``images`` ``(N, H, W, C)``, ``labels`` ``(N,)`` and ``masks``
            ``(N, H, W)`` bool or ``None``).
        layers: ``None`` for every attention layer, or names, paths or glob
            patterns (see `explain_attn.maps.resolve_layers`). Layers that
            are not attention layers or gates get a note, not an error.
        seed: Seed of the permutations and of the bootstrap intervals.
        batch_size: Images per batch (each call of the model sees up to 5
            times as many).
        confidence: Level of the bootstrap intervals.
        num_resamples: Bootstrap resamples.

    Returns:
        A JSON-ready dict: ``num_images``; ``clean`` (``accuracy`` and
        ``mean_true_class_probability`` of the unmodified model);
        ``layers``, one dict per requested layer with ``layer``, ``kind``,
        ``map_shape``, ``interventions`` (name -> ``accuracy``,
        ``mean_true_class_probability``, ``accuracy_change`` and
        ``probability_change``, each change a
        `explain_attn.metrics.paired_difference` of intervened minus
        unmodified per image, with interval and p-value) and ``notes``;
        and ``notes`` (e.g. why the mask intervention is missing).

    Raises:
        ValueError: For unknown layers, a model without attention layers,
            images that do not match the model, or bad labels.
    """
    from explain_attn.metrics import paired_difference

    _check_positive("batch_size", batch_size)
    graph = _single_input(model)
    paths = resolve_layers(model, layers)
    images = check_images(model, dataset.images)
    num_classes = int(graph.outputs[0].shape[-1])
    labels = _as_labels(dataset.labels, len(images), num_classes)
    masks = getattr(dataset, "masks", None)
    notes = []
    if masks is None:
        notes.append(
            "The data has no foreground masks, so the 'mask' intervention "
            "is left out."
        )
    else:
        masks = np.asarray(masks, dtype=bool)
    rows = []
    clean = None
    for position, path in enumerate(paths):
        kind = layer_kind(graph.taps[path])
        if kind not in (ATTENTION, GATE):
            rows.append(
                {
                    "layer": path,
                    "kind": kind,
                    "map_shape": None,
                    "interventions": {},
                    "notes": [
                        f"Layer {path!r} is not a spatial attention layer or "
                        "a single-channel sigmoid gate, so it has no map to "
                        "replace; no intervention is possible."
                    ],
                }
            )
            continue
        intervened = _Intervened(model, path, with_mask=masks is not None)
        scores = _intervened_scores(
            intervened, images, masks, seed + position, batch_size
        )
        probabilities = scores[:, np.arange(len(images)), labels]
        correct = scores.argmax(axis=-1) == labels[None]
        if clean is None:
            clean = {
                "accuracy": float(correct[0].mean()),
                "mean_true_class_probability": float(probabilities[0].mean()),
            }
        names = [n for n in INTERVENTIONS if n != "mask" or masks is not None]
        results = {}
        for index, name in enumerate(names, start=1):
            results[name] = {
                "accuracy": float(correct[index].mean()),
                "mean_true_class_probability": float(
                    probabilities[index].mean()
                ),
                "accuracy_change": paired_difference(
                    correct[index].astype(float),
                    correct[0].astype(float),
                    seed=seed,
                    confidence=confidence,
                    num_resamples=num_resamples,
                ),
                "probability_change": paired_difference(
                    probabilities[index],
                    probabilities[0],
                    seed=seed,
                    confidence=confidence,
                    num_resamples=num_resamples,
                ),
            }
        layer_notes = []
        if kind == GATE:
            layer_notes.append(
                "A plain-Keras gate: its output (the map) is replaced "
                "wherever the model uses it; 'inverted' and 'mask' assume "
                "it multiplies features, as a sigmoid gate usually does."
            )
        rows.append(
            {
                "layer": path,
                "kind": kind,
                "map_shape": list(intervened.map_shape),
                "interventions": results,
                "notes": layer_notes,
            }
        )
    return {
        "num_images": int(len(images)),
        "clean": clean,
        "layers": rows,
        "notes": notes,
    }


def _intervened_scores(intervened, images, masks, seed, batch_size):
    """``(variants, N, classes)`` probabilities, unmodified first."""
    height, width = intervened.map_shape
    positions = height * width
    rng = np.random.default_rng(seed)
    permutations = rng.permuted(
        np.tile(np.arange(positions, dtype=np.int32), (len(images), 1)),
        axis=1,
    )
    resized = None
    if masks is not None:
        resized = _resized_masks(masks, (height, width))
    chunks = []
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        mask = (
            resized[start:stop]
            if resized is not None
            else np.zeros((stop - start, height, width, 1), np.float32)
        )
        chunks.append(
            intervened.function(
                tf.constant(images[start:stop]),
                tf.constant(permutations[start:stop]),
                tf.constant(mask),
            ).numpy()
        )
    return np.concatenate(chunks, axis=1).astype(np.float64)


# ---------------------------------------------------------- randomisation


def _glorot_limit(shape):
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in = shape[-2] * receptive
    fan_out = shape[-1] * receptive
    return math.sqrt(6.0 / max(fan_in + fan_out, 1))


_ONES = ("gamma", "moving_variance")


def reinitialize_layer(layer, rng):
    """Re-initialises every weight of ``layer`` in place, seeded.

    Kernels (weights of two or more dimensions) are drawn from Glorot
    uniform, Keras' default kernel initializer; one-dimensional weights get
    the values a fresh Keras layer starts with: ones for ``gamma`` and
    ``moving_variance`` (batch normalisation), zeros otherwise (biases,
    ``beta``, ``moving_mean``). Call it on a clone, never on the caller's
    model.

    Args:
        layer: A layer whose weights to overwrite.
        rng: A `numpy.random.Generator`.
    """
    for variable in layer.weights:
        shape = tuple(int(size) for size in variable.shape)
        name = variable.name.split("/")[-1]
        if len(shape) >= 2:
            limit = _glorot_limit(shape)
            values = rng.uniform(-limit, limit, shape)
        elif name in _ONES:
            values = np.ones(shape)
        else:
            values = np.zeros(shape)
        variable.assign(values.astype(variable.dtype))


def _weighted_layers(model):
    """Paths and layers with weights, in call order (nested models opened)."""
    return [
        (tap.path, tap.layer)
        for tap in flat_graph(model).taps.values()
        if tap.layer.weights and not isinstance(tap.layer, keras.Model)
    ]


def _unit_scaled(maps):
    maps = np.asarray(maps, dtype=np.float64)
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    span = high - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)


def map_similarity(original, changed):
    """Spearman correlation and SSIM of two maps of each image.

    Args:
        original: ``(N, H, W)`` maps before the change.
        changed: ``(N, H, W)`` maps after it, same images and size.

    Returns:
        ``(spearman, ssim)``, each ``(N,)`` float64. Spearman is
        `explain_attn.metrics.spearman`, except that a map that became
        constant counts as 0 (it lost all structure: a change); images whose
        *original* map is constant are NaN. SSIM is
        `skimage.metrics.structural_similarity` with ``data_range=1`` on the
        maps min-max scaled to [0, 1] (a constant map scales to zeros), with
        a window of 7 pixels or the largest odd size that fits (NaN below
        3 pixels), averaged over the window positions of each image.
    """
    from skimage.metrics import structural_similarity

    from explain_attn.metrics import spearman

    original = np.asarray(original, dtype=np.float64)
    changed = np.asarray(changed, dtype=np.float64)
    if original.shape != changed.shape or original.ndim != 3:
        raise ValueError(
            "Expected two (N, H, W) arrays of the same shape. Received: "
            f"{original.shape} and {changed.shape}"
        )
    constant_before = np.ptp(original, axis=(1, 2)) == 0
    constant_after = np.ptp(changed, axis=(1, 2)) == 0
    rho = spearman(original, changed)
    rho = np.where(constant_after & ~constant_before, 0.0, rho)
    rho = np.where(constant_before, np.nan, rho)
    size = min(original.shape[1:])
    window = min(7, size if size % 2 else size - 1)
    if window < 3 or len(original) == 0:
        return rho, np.full(len(original), np.nan)
    _, full = structural_similarity(
        np.moveaxis(_unit_scaled(original), 0, -1),
        np.moveaxis(_unit_scaled(changed), 0, -1),
        data_range=1.0,
        channel_axis=-1,
        win_size=window,
        full=True,
    )
    pad = (window - 1) // 2
    cropped = full[pad : full.shape[0] - pad, pad : full.shape[1] - pad]
    return rho, cropped.mean(axis=(0, 1))


def _median(values):
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


def randomization_check(
    model,
    images,
    *,
    layers=None,
    grad_cam_layer=None,
    class_index=None,
    seed=0,
    batch_size=128,
    threshold=FAILURE_THRESHOLD,
    independent=True,
):
    """Model-parameter randomisation test (Adebayo et al., 2018).

    Works on a clone (``keras.models.clone_model`` with the model's
    weights); the caller's model is never changed. On the clone:

    - **cascade:** the layers with weights are re-initialised one at a time
      (`reinitialize_layer`) in reverse call order, from the output layer
      down to the first, cumulatively; after each step every attention map
      and Grad-CAM are computed again and compared with the originals
      (`map_similarity`);
    - **independent:** the clone is reset to the model's weights and one
      attention layer alone is re-initialised, for each attention layer.

    Grad-CAM is taken at ``grad_cam_layer`` for a fixed class per image
    (``class_index``; by default the original model's prediction), so only
    the weights change. All maps are compared at the input resolution
    (bilinear).

    A map **fails** when its median Spearman correlation with the original
    is still above ``threshold`` after every layer has been re-initialised
    (the last cascade step), or, for an attention layer, after its own
    weights alone have been re-initialised: its values do not depend on
    what the model learnt.

    Args:
        model: A functional or built Sequential `keras.Model`.
        images: ``(N, H, W, C)`` images matching the model's input.
        layers: Attention layers to check (``None``: every attention layer;
            a model without one checks Grad-CAM only).
        grad_cam_layer: Layer of Grad-CAM (``None``: the last 4-D layer).
        class_index: Class of Grad-CAM, ``None`` (the original model's
            predicted class per image), an int or an ``(N,)`` int array.
        seed: Seed of the re-initialisation.
        batch_size: Images per forward pass.
        threshold: Median Spearman above which a map fails.
        independent: Also randomise each attention layer on its own.

    Returns:
        A JSON-ready dict: ``maps`` (the names compared: attention layer
        paths, then ``"grad_cam"``); ``cascade`` with ``layers`` (the
        layers re-initialised, in order; step ``k`` of every curve is after
        the first ``k`` of them, step 0 the original model), and per map
        ``spearman_median``, ``ssim_median`` (lists over the steps) and
        ``spearman_per_image`` (the last step's values); ``independent``
        (attention layer -> map -> ``spearman_median`` and
        ``ssim_median``); ``checks``, one per map with ``map``,
        ``final_spearman_median``, ``final_ssim_median``,
        ``independent_spearman_median`` (attention maps) and ``passed``.
    """
    from explain_attn.cam import default_cam_layer, grad_cam

    _check_positive("batch_size", batch_size)
    images = check_images(model, images)
    try:
        paths = resolve_layers(model, layers)
    except ValueError:
        if layers is not None:
            raise
        paths = []
    cam_layer = (
        default_cam_layer(model) if grad_cam_layer is None else grad_cam_layer
    )
    if class_index is None:
        class_index = np.concatenate(
            [
                np.asarray(model(batch, training=False)).argmax(axis=-1)
                for batch in _batches(images, batch_size)
            ]
        )
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())

    def compute():
        result = {}
        if paths:
            result.update(
                attention_maps(
                    clone,
                    images,
                    layers=paths,
                    batch_size=batch_size,
                    resize_to="input",
                )
            )
        result["grad_cam"] = grad_cam(
            clone,
            images,
            layer=cam_layer,
            class_index=class_index,
            batch_size=batch_size,
            resize_to="input",
        )
        return result

    original = compute()
    names = list(original)
    rng = np.random.default_rng(seed)
    weighted = _weighted_layers(clone)
    order = [path for path, _ in weighted][::-1]
    by_path = dict(weighted)
    spearman_curves = {name: [1.0] for name in names}
    ssim_curves = {name: [1.0] for name in names}
    last = {}
    for path in order:
        reinitialize_layer(by_path[path], rng)
        current = compute()
        for name in names:
            rho, ssim = map_similarity(original[name], current[name])
            spearman_curves[name].append(_median(rho))
            ssim_curves[name].append(_median(ssim))
            last[name] = rho
    independent_results = {}
    if independent:
        for path in paths:
            clone.set_weights(model.get_weights())
            reinitialize_layer(by_path[path], rng)
            current = compute()
            row = {}
            for name in names:
                rho, ssim = map_similarity(original[name], current[name])
                row[name] = {
                    "spearman_median": _median(rho),
                    "ssim_median": _median(ssim),
                }
            independent_results[path] = row
    checks = []
    for name in names:
        final = spearman_curves[name][-1]
        own = independent_results.get(name, {}).get(name)
        own_spearman = own["spearman_median"] if own else math.nan
        failed = (math.isfinite(final) and final > threshold) or (
            math.isfinite(own_spearman) and own_spearman > threshold
        )
        checks.append(
            {
                "map": name,
                "final_spearman_median": final,
                "final_ssim_median": ssim_curves[name][-1],
                "independent_spearman_median": own_spearman,
                "passed": not failed,
            }
        )
    return {
        "maps": names,
        "grad_cam_layer": cam_layer,
        "num_images": int(len(images)),
        "threshold": threshold,
        "cascade": {
            "layers": order,
            "spearman_median": spearman_curves,
            "ssim_median": ssim_curves,
            "spearman_per_image": {
                name: np.asarray(last.get(name, []), float).tolist()
                for name in names
            },
        },
        "independent": independent_results,
        "checks": checks,
    }


# ----------------------------------------------------- deletion, insertion


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
    """One compiled call: every order x curve x step of a batch of images."""

    def __init__(self, model):
        self.model = model
        self.probabilities = _probability_function(model)
        self.function = tf.function(self._run, reduce_retracing=True)

    def _run(self, images, blurred, ranks, counts, labels):
        # ranks (K, B, H, W); counts (S,) -> removed (K, S, B, H, W, 1).
        removed = (
            ranks[:, None, ..., None] < counts[None, :, None, None, None, None]
        )
        deleted = tf.where(removed, blurred[None, None], images[None, None])
        inserted = tf.where(removed, images[None, None], blurred[None, None])
        stacked = tf.stack([deleted, inserted], axis=1)
        shape = tf.shape(stacked)
        batch = tf.reshape(stacked, (-1, *images.shape[1:]))
        outputs = self.model(batch, training=False)
        scores = self.probabilities(tf.cast(outputs, tf.float32))
        scores = tf.reshape(scores, (shape[0], 2, shape[2], shape[3], -1))
        chosen = tf.one_hot(labels, tf.shape(scores)[-1], dtype=scores.dtype)
        return tf.reduce_sum(scores * chosen, axis=-1)


def deletion_insertion(
    model,
    images,
    labels,
    maps,
    *,
    steps=DEFAULT_STEPS,
    blur_sigma=None,
    random_order=True,
    seed=0,
    batch_size=512,
):
    """Deletion and insertion curves (Petsiuk et al., 2018), batched.

    For each explanation, the pixels of each image are ordered by the map's
    value (maps upsampled bilinearly to the input size; ties broken at
    random, seeded). At step ``s`` of ``steps``, the first
    ``round(s / steps * H * W)`` pixels are replaced by those of a blurred
    copy of the image (*deletion*, starting from the image) or restored on
    the blurred copy (*insertion*, starting from the blur), and the model's
    probability of the true class is recorded. A faithful explanation
    makes deletion fall and insertion rise early. ``"random"`` is the same
    with a seeded random order per image.

    Every order, both curves and every step of a chunk of images go through
    the model in one call: about ``batch_size`` images per call.

    Args:
        model: A `keras.Model` with one image input and class scores out
            (probabilities, or logits turned into them with a softmax).
        images: ``(N, H, W, C)`` images.
        labels: ``(N,)`` true classes.
        maps: A dict from explanation name to ``(N, h, w)`` maps.
        steps: Number of steps, at least 1 (``steps + 1`` points).
        blur_sigma: Standard deviation in pixels of the Gaussian blur
            (`skimage.filters.gaussian`, per channel); ``None`` for a tenth
            of the smaller image side.
        random_order: Also compute the curves of a random order.
        seed: Seed of the random order and of the tie-breaking.
        batch_size: Images per model call (steps included).

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
    from skimage.filters import gaussian

    _check_positive("steps", steps)
    _check_positive("batch_size", batch_size)
    graph = _single_input(model)
    images = _check_images(images, tuple(graph.inputs[0].shape[1:]))
    num_classes = int(graph.outputs[0].shape[-1])
    labels = _as_labels(labels, len(images), num_classes)
    if not isinstance(maps, dict) or not maps:
        raise TypeError(
            "`maps` must be a non-empty dict from name to (N, h, w) maps. "
            f"Received: {type(maps).__name__}"
        )
    size = images.shape[1:3]
    rng = np.random.default_rng(seed)
    orders = {}
    for name, values in maps.items():
        values = _upsampled(values, size)
        if len(values) != len(images):
            raise ValueError(
                f"Maps {name!r} have {len(values)} images; expected "
                f"{len(images)}."
            )
        orders[name] = _ranks(values, rng)
    if random_order:
        pixels = size[0] * size[1]
        orders["random"] = rng.permuted(
            np.tile(np.arange(pixels, dtype=np.int32), (len(images), 1)),
            axis=1,
        ).reshape(len(images), *size)
    if blur_sigma is None:
        blur_sigma = min(size) / 10.0
    blurred = gaussian(
        images, sigma=(0, blur_sigma, blur_sigma, 0), preserve_range=True
    ).astype(np.float32)
    pixels = size[0] * size[1]
    counts = np.round(np.linspace(0, 1, steps + 1) * pixels).astype(np.int32)
    fractions = counts / pixels
    names = list(orders)
    stacked = np.stack([orders[name] for name in names])  # (K, N, H, W)
    per_image = 2 * len(names) * (steps + 1)
    chunk = max(1, batch_size // per_image)
    curves = _curves(model)
    results = []
    for start in range(0, len(images), chunk):
        stop = min(start + chunk, len(images))
        results.append(
            curves.function(
                tf.constant(images[start:stop]),
                tf.constant(blurred[start:stop]),
                tf.constant(stacked[:, start:stop]),
                tf.constant(counts),
                tf.constant(labels[start:stop]),
            ).numpy()
        )
    # (K, 2, S, N) probabilities of the true class.
    probabilities = np.concatenate(results, axis=-1).astype(np.float64)
    output = {"fractions": fractions, "blur_sigma": float(blur_sigma)}
    for index, name in enumerate(names):
        deletion = probabilities[index, 0].T
        insertion = probabilities[index, 1].T
        output[name] = {
            "deletion": deletion,
            "insertion": insertion,
            "deletion_auc": np.trapezoid(deletion, fractions, axis=1),
            "insertion_auc": np.trapezoid(insertion, fractions, axis=1),
        }
    return output


_CURVES = weakref.WeakKeyDictionary()


def _curves(model):
    if model not in _CURVES:
        _CURVES[model] = _Curves(model)
    return _CURVES[model]


# ---------------------------------------------------------------- report

DEFAULT_MAX_IMAGES = 256
"""Test images of the randomisation checks and the deletion curves.

With the demo models on the sample data (2 CPU cores) the whole section
takes about 12 s against 19 s for the rest of the report: 0.65 times."""

DEFAULT_MAX_INTERVENTION_IMAGES = 1000
"""Test images of the interventions (one forward pass per image and
intervention, so they afford more images and tighter intervals)."""


def _subset(count, limit, seed):
    if count <= limit:
        return np.arange(count)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(count, size=limit, replace=False))


class _Subset:
    def __init__(self, dataset, indices):
        self.images = dataset.images[indices]
        self.labels = np.asarray(dataset.labels)[indices]
        masks = getattr(dataset, "masks", None)
        self.masks = None if masks is None else masks[indices]


def faithfulness_section(
    models,
    explanations,
    test,
    *,
    seed=0,
    batch_size=128,
    max_images=DEFAULT_MAX_IMAGES,
    max_intervention_images=DEFAULT_MAX_INTERVENTION_IMAGES,
    steps=DEFAULT_STEPS,
    verbose=1,
    log=print,
):
    """Runs every faithfulness check on the report's models.

    Args:
        models: The report's models: objects with ``key``, ``role``
            (``"attention"`` or ``"baseline"``), ``name`` and ``model``.
        explanations: The report's explanations: objects with ``id``,
            ``label``, ``model_key``, ``method`` (``"attention"`` or
            ``"grad_cam"``) and ``layer``.
        test: The test `explain_attn.data.Dataset`.
        seed: Seed of the image subsets, permutations, re-initialisation,
            random orders and bootstrap intervals.
        batch_size: Images per forward pass.
        max_images: Test images (a seeded random subset) of the
            randomisation checks and the deletion and insertion curves.
        max_intervention_images: Test images of the interventions.
        steps: Steps of the deletion and insertion curves.
        verbose: 0 for silence.
        log: Where progress messages go.

    Returns:
        A JSON-ready dict (NaN where a value is undefined): ``settings``,
        ``interventions`` (one `attention_interventions` result per
        attention model, with ``model``), ``randomization`` (one
        `randomization_check` result per model, with ``model`` and map
        ``labels``), ``deletion_insertion`` (``fractions`` and ``rows``,
        one per explanation and one random order per model, with mean
        curves, AUC summaries and the paired difference to the random
        order), ``flags`` (sentences naming each map that fails a check)
        and ``notes``.
    """
    import time

    from explain_attn import metrics
    from explain_attn.cam import grad_cam

    _check_positive("max_images", max_images)
    _check_positive("max_intervention_images", max_intervention_images)
    say = log if verbose else _silent
    labels_of = {e.id: e.label for e in explanations}
    count = len(test.labels)
    check_indices = _subset(count, max_images, seed)
    checked = _Subset(test, check_indices)
    intervention_indices = _subset(count, max_intervention_images, seed)
    notes = []
    flags = []

    started = time.perf_counter()
    interventions = []
    for entry in models:
        own = [
            e.layer
            for e in explanations
            if e.model_key == entry.key and e.method == "attention"
        ]
        if not own:
            continue
        result = attention_interventions(
            entry.model,
            _Subset(test, intervention_indices),
            layers=own,
            seed=seed,
            batch_size=batch_size,
        )
        for row in result["layers"]:
            row["id"] = f"{entry.key}:{row['layer']}"
            row["label"] = labels_of.get(row["id"], row["layer"])
        interventions.append({"model": entry.key, "name": entry.name, **result})
    for note in dict.fromkeys(
        note for result in interventions for note in result["notes"]
    ):
        notes.append(note)
    say(f"Faithfulness: interventions ({time.perf_counter() - started:.1f} s)")

    started = time.perf_counter()
    randomization = []
    for entry in models:
        own = [e for e in explanations if e.model_key == entry.key]
        layers = [e.layer for e in own if e.method == "attention"]
        cam = next((e for e in own if e.method == "grad_cam"), None)
        if cam is None and not layers:
            continue
        result = randomization_check(
            entry.model,
            checked.images,
            layers=layers or None,
            grad_cam_layer=None if cam is None else cam.layer,
            seed=seed,
            batch_size=batch_size,
        )
        names = {
            name: labels_of.get(f"{entry.key}:{name}", name)
            for name in result["maps"]
        }
        for check in result["checks"]:
            check["id"] = f"{entry.key}:{check['map']}"
            check["label"] = names[check["map"]]
            if not check["passed"]:
                flags.append(_failure_sentence(check, result["threshold"]))
        randomization.append(
            {"model": entry.key, "name": entry.name, "labels": names, **result}
        )
    say(f"Faithfulness: randomisation ({time.perf_counter() - started:.1f} s)")

    started = time.perf_counter()
    rows = []
    fractions = None
    for entry in models:
        own = [e for e in explanations if e.model_key == entry.key]
        if not own:
            continue
        maps = {}
        attention = [e.layer for e in own if e.method == "attention"]
        if attention:
            found = attention_maps(
                entry.model,
                checked.images,
                layers=attention,
                batch_size=batch_size,
            )
        for explanation in own:
            if explanation.method == "attention":
                maps[explanation.id] = found[explanation.layer]
            else:
                maps[explanation.id] = grad_cam(
                    entry.model,
                    checked.images,
                    layer=explanation.layer,
                    class_index=checked.labels,
                    batch_size=batch_size,
                )
        curves = deletion_insertion(
            entry.model,
            checked.images,
            checked.labels,
            maps,
            steps=steps,
            seed=seed,
            batch_size=4 * batch_size,
        )
        fractions = curves["fractions"].tolist()
        random = curves["random"]
        for name in [*maps, "random"]:
            values = curves[name]
            row = {
                "id": name if name != "random" else f"{entry.key}:random",
                "label": labels_of.get(name, f"{entry.name} · random order"),
                "model": entry.key,
                "random": name == "random",
                "deletion_curve": values["deletion"].mean(axis=0).tolist(),
                "insertion_curve": values["insertion"].mean(axis=0).tolist(),
            }
            for curve in ("deletion", "insertion"):
                auc = values[f"{curve}_auc"]
                row[f"{curve}_auc"] = metrics.summarize(auc, seed=seed)
                row[f"{curve}_vs_random"] = (
                    None
                    if name == "random"
                    else metrics.paired_difference(
                        auc, random[f"{curve}_auc"], seed=seed
                    )
                )
            rows.append(row)
    say(
        "Faithfulness: deletion and insertion "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return {
        "settings": {
            "num_images": int(len(check_indices)),
            "num_intervention_images": int(len(intervention_indices)),
            "steps": steps,
            "threshold": FAILURE_THRESHOLD,
            "mask_resize": "area",
            "blur_sigma_pixels": float(min(test.images.shape[1:3]) / 10.0),
            "seed": seed,
        },
        "definitions": dict(INTERVENTIONS),
        "interventions": interventions,
        "randomization": randomization,
        "deletion_insertion": {"fractions": fractions, "rows": rows},
        "flags": flags,
        "notes": notes,
    }


def _silent(*args, **kwargs):
    return None


def _failure_sentence(check, threshold):
    parts = []
    final = check["final_spearman_median"]
    own = check["independent_spearman_median"]
    if math.isfinite(final) and final > threshold:
        parts.append(
            f"median Spearman {final:.2f} with the original after every "
            "layer was re-initialised"
        )
    if math.isfinite(own) and own > threshold:
        parts.append(
            f"median Spearman {own:.2f} after its own weights alone were "
            "re-initialised"
        )
    return (
        f"{check['label']} fails the randomisation check: "
        + " and ".join(parts)
        + f" (threshold {threshold}). The map does not depend on what the "
        "model learnt."
    )
