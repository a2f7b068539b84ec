"""Item 1: `attention_maps` against the hardware limit and the tutorial.

Three sides, interleaved round by round on the same untrained model:

- ``attention_maps``: `explain_attn.attention_maps` over ``N`` images
  (every attention layer of the model, default batch size);
- ``forward``: one compiled forward pass of the same model over the same
  batches, ``tf.function(lambda x: model(x, training=False))``, outputs
  copied to NumPy like the maps are;
- ``tutorial``: the tutorial's extraction as written, a new
  ``keras.Model(model.input, model.layers[2].output)`` and ``predict`` for
  every image, timed on a sample of images and scaled to ``N``.
"""

import keras
import numpy as np
import tensorflow as tf

from benchmarks.common import Row, interleaved, spread
from explain_attn import attention_maps, build_model

__all__ = ["ARCHITECTURES", "run"]

ARCHITECTURES = ("attention", "residual", "small_attention")
"""The models with attention layers: the tutorial's two and the demo's."""

BATCH_SIZE = 128
"""`attention_maps`' default batch size, used for the forward pass too."""


def tutorial_attention_map(model, image):
    """The tutorial's ``get_attention_map``, as written (no progress bar).

    Builds a new sub-model ending at ``model.layers[2]`` and calls
    ``predict`` on one image. The tutorial leaves ``predict``'s progress bar
    on; it is turned off here, which only helps the tutorial's time.
    """
    output = model.layers[2].output
    intermediate_model = keras.Model(inputs=model.input, outputs=output)
    prediction = intermediate_model.predict(
        np.expand_dims(image, axis=0), verbose=0
    )
    return prediction[0]


def compiled_forward(model):
    """One compiled forward pass of ``model``: images -> outputs."""
    shape = (None, *model.input_shape[1:])
    return tf.function(
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec(shape, tf.float32)],
    )


def _forward_all(forward, images, batch_size):
    for start in range(0, len(images), batch_size):
        batch = tf.constant(images[start : start + batch_size])
        forward(batch).numpy()


def run(*, num_images, sample, rounds, seed=0, architectures=ARCHITECTURES):
    """Runs item 1 and returns its table rows.

    Args:
        num_images: ``N``, the images per call of the batched sides.
        sample: Images the tutorial's per-image way is timed on (its time
            is scaled by ``num_images / sample``).
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
        forward = compiled_forward(model)
        sample_images = images[:sample]
        layer_name = model.layers[2].name

        def maps(model=model):
            attention_maps(model, images, batch_size=BATCH_SIZE)

        def limit(forward=forward):
            _forward_all(forward, images, BATCH_SIZE)

        def tutorial(model=model, sample_images=sample_images):
            for image in sample_images:
                tutorial_attention_map(model, image)

        result = interleaved(
            {"maps": maps, "forward": limit, "tutorial": tutorial},
            rounds=rounds,
        )
        median, low, high = spread(result.ratio("maps", "forward"))
        seconds = spread(result.seconds["maps"])[0]
        rows.append(
            Row(
                item="1 maps",
                subject=architecture,
                measure="attention_maps / compiled forward",
                median=median,
                low=low,
                high=high,
                unit="x",
                goal="<= 1.0x",
                met=median <= 1.0,
                note=(
                    f"N={num_images}, batch {BATCH_SIZE}; attention_maps "
                    f"median {seconds:.2f} s"
                ),
            )
        )
        scale = num_images / len(sample_images)
        speedups = [
            scale * tutorial_seconds / maps_seconds
            for tutorial_seconds, maps_seconds in zip(
                result.seconds["tutorial"], result.seconds["maps"], strict=True
            )
        ]
        median, low, high = spread(speedups)
        per_image = spread(result.seconds["tutorial"])[0] / len(sample_images)
        rows.append(
            Row(
                item="1 maps",
                subject=architecture,
                measure="tutorial per-image / attention_maps",
                median=median,
                low=low,
                high=high,
                unit="x",
                goal=">= 300x",
                met=median >= 300,
                note=(
                    f"tutorial timed on {len(sample_images)} images, scaled "
                    f"to N; {per_image * 1e3:.0f} ms per image; its "
                    f"layers[2] is {layer_name!r}, not the attention map"
                ),
            )
        )
    rows.append(
        Row(
            item="1 maps",
            subject="baseline",
            measure="(no attention layer)",
            median=float("nan"),
            low=float("nan"),
            high=float("nan"),
            unit="x",
            note=(
                "the tutorial's baseline has no attention layer: "
                "attention_maps raises ValueError, nothing to time"
            ),
        )
    )
    return rows
