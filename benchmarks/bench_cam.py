"""Item 2: `grad_cam` against the hardware limit and tf-keras-vis.

Three sides, interleaved round by round on the same untrained model, the
same images, the same layer (`explain_attn.explanations.default_cam_layer`), the
same classes (each image's predicted class, given explicitly) and the same
batch size:

- ``grad_cam``: `explain_attn.grad_cam`;
- ``limit``: a hand-written `tf.function` with a `tf.GradientTape` that
  computes the gradient of the pre-softmax class score with respect to the
  layer's activations, and nothing else;
- ``tf-keras-vis``: ``tf_keras_vis.gradcam.Gradcam`` with
  ``ReplaceToLinear`` (so its score is the logit too), the layer given by
  name, no resizing (``expand_cam=False``) and its per-image min-max
  normalisation, which is ours up to its ``1e-7`` in the denominator.

Before timing, the maps of `grad_cam` and tf-keras-vis are compared: the
median over images of their Pearson correlation must be at least 0.99.
"""

import keras
import numpy as np
import tensorflow as tf

from benchmarks.common import Row, interleaved, spread
from explain_attn import build_model, grad_cam
from explain_attn.explanations import default_cam_layer

__all__ = ["ARCHITECTURES", "run"]

ARCHITECTURES = ("baseline", "attention", "residual", "small_attention")
"""The tutorial's three models and the demo attention model."""

BATCH_SIZE = 64
"""`grad_cam`'s default batch size, used by every side."""

MIN_AGREEMENT = 0.99
"""Median Pearson r between our maps and tf-keras-vis' required to time."""


def gradient_limit(model, layer):
    """The forward+backward limit: images, classes -> gradients.

    A hand-written, compiled function: the gradient of the logit of each
    image's class with respect to ``layer``'s activations. The models built
    by `explain_attn.build_model` end in ``Dense(activation="softmax")``
    named ``"predictions"``; its logits are recomputed from its input with
    its own weights.
    """
    dense = model.get_layer("predictions")
    features_model = keras.Model(
        model.inputs, [model.get_layer(layer).output, dense.input]
    )

    def gradients(images, classes):
        with tf.GradientTape() as tape:
            activations, features = features_model(images, training=False)
            logits = tf.matmul(features, dense.kernel) + dense.bias
            scores = tf.gather(logits, classes, axis=1, batch_dims=1)
        return tape.gradient(scores, activations)

    return tf.function(
        gradients,
        input_signature=[
            tf.TensorSpec((None, *model.input_shape[1:]), tf.float32),
            tf.TensorSpec((None,), tf.int32),
        ],
    )


def tf_keras_vis_gradcam(model):
    """tf-keras-vis' ``Gradcam`` on a copy of ``model`` with linear output.

    Returns ``None`` when tf-keras-vis is not installed.
    """
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    except ImportError:
        return None
    return Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)


def _tf_keras_vis_maps(gradcam, images, classes, layer, batch_size):
    from tf_keras_vis.utils.scores import CategoricalScore

    chunks = []
    for start in range(0, len(images), batch_size):
        stop = start + batch_size
        cam = gradcam(
            CategoricalScore(classes[start:stop].tolist()),
            images[start:stop],
            penultimate_layer=layer,
            seek_penultimate_conv_layer=False,
            expand_cam=False,
            normalize_cam=True,
        )
        chunks.append(np.asarray(cam))
    return np.concatenate(chunks)


def pearson_per_image(maps_a, maps_b):
    """Pearson r of each pair of maps; NaN where either map is constant."""
    flat_a = maps_a.reshape(len(maps_a), -1).astype(np.float64)
    flat_b = maps_b.reshape(len(maps_b), -1).astype(np.float64)
    flat_a -= flat_a.mean(axis=1, keepdims=True)
    flat_b -= flat_b.mean(axis=1, keepdims=True)
    numerator = (flat_a * flat_b).sum(axis=1)
    denominator = np.sqrt((flat_a**2).sum(axis=1) * (flat_b**2).sum(axis=1))
    result = np.full(len(flat_a), np.nan)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def run(*, num_images, rounds, seed=0, architectures=ARCHITECTURES):
    """Runs item 2 and returns its table rows.

    Args:
        num_images: Images per call of every side.
        rounds: Timed rounds after one warm-up round.
        seed: Seed of the weights and images.
        architectures: `explain_attn.models.ARCHITECTURES` keys to run.

    Returns:
        A list of `benchmarks.common.Row`.
    """
    rng = np.random.default_rng(seed)
    images = rng.random((num_images, 32, 32, 3), dtype=np.float32)
    rows = []
    for architecture in architectures:
        keras.utils.set_random_seed(seed)
        model = build_model(architecture)
        layer = default_cam_layer(model)
        classes = model.predict(images, verbose=0).argmax(-1).astype(np.int32)
        limit_function = gradient_limit(model, layer)
        vis = tf_keras_vis_gradcam(model)

        def ours(model=model, layer=layer, classes=classes):
            return grad_cam(
                model,
                images,
                layer=layer,
                class_index=classes,
                batch_size=BATCH_SIZE,
            )

        def limit(function=limit_function, classes=classes):
            for start in range(0, num_images, BATCH_SIZE):
                stop = start + BATCH_SIZE
                function(
                    tf.constant(images[start:stop]),
                    tf.constant(classes[start:stop]),
                ).numpy()

        sides = {"grad_cam": ours, "limit": limit}
        agreement = None
        if vis is not None:
            theirs = _tf_keras_vis_maps(vis, images, classes, layer, BATCH_SIZE)
            agreement = pearson_per_image(ours(), theirs)
            defined = agreement[~np.isnan(agreement)]
            median_r = float(np.median(defined)) if defined.size else np.nan
            rows.append(
                Row(
                    item="2 grad_cam",
                    subject=architecture,
                    measure="Pearson r, grad_cam vs tf-keras-vis",
                    median=median_r,
                    low=float(defined.min()) if defined.size else np.nan,
                    high=float(defined.max()) if defined.size else np.nan,
                    unit="r",
                    goal=f">= {MIN_AGREEMENT}",
                    met=bool(median_r >= MIN_AGREEMENT),
                    note=(
                        f"layer {layer!r}; {defined.size} of {num_images} "
                        "images with both maps non-constant"
                    ),
                )
            )
            if median_r >= MIN_AGREEMENT:
                sides["tf-keras-vis"] = (
                    lambda vis=vis, classes=classes, layer=layer: (
                        _tf_keras_vis_maps(
                            vis, images, classes, layer, BATCH_SIZE
                        )
                    )
                )
        result = interleaved(sides, rounds=rounds)
        median, low, high = spread(result.ratio("grad_cam", "limit"))
        seconds = spread(result.seconds["grad_cam"])[0]
        rows.append(
            Row(
                item="2 grad_cam",
                subject=architecture,
                measure="grad_cam / forward+backward",
                median=median,
                low=low,
                high=high,
                unit="x",
                goal="<= 1.2x",
                met=median <= 1.2,
                note=(
                    f"N={num_images}, batch {BATCH_SIZE}, layer {layer!r}; "
                    f"grad_cam median {seconds:.2f} s"
                ),
            )
        )
        if "tf-keras-vis" in sides:
            median, low, high = spread(result.ratio("tf-keras-vis", "grad_cam"))
            rows.append(
                Row(
                    item="2 grad_cam",
                    subject=architecture,
                    measure="tf-keras-vis Gradcam / grad_cam",
                    median=median,
                    low=low,
                    high=high,
                    unit="x",
                    goal=">= 8x",
                    met=median >= 8,
                    note=f"same batches of {BATCH_SIZE}, classes and layer",
                )
            )
        elif vis is None:
            rows.append(
                Row(
                    item="2 grad_cam",
                    subject=architecture,
                    measure="tf-keras-vis Gradcam / grad_cam",
                    median=np.nan,
                    low=np.nan,
                    high=np.nan,
                    unit="x",
                    goal=">= 8x",
                    note="tf-keras-vis not installed: pip install tf-keras-vis",
                )
            )
    return rows
