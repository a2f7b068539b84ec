"""Training segmentation models: masks are the targets.

`train_segmentation` fits a model whose output is one softmax per pixel on
``(images, label maps)``, with a soft Dice loss or pixel-wise
cross-entropy, seeded and deterministic in its data order.
"""

import time

import keras
import numpy as np
import tensorflow as tf

__all__ = ["LOSSES", "dice_loss", "train_segmentation"]

LOSSES = ("dice", "cross_entropy")


@keras.saving.register_keras_serializable(package="explain_attn")
def dice_loss(targets, probabilities):
    """Soft Dice loss over the foreground classes, pooled over the batch.

    Args:
        targets: ``(B, H, W)`` int label maps (0 the background).
        probabilities: ``(B, H, W, K)`` softmax outputs (or ``K = 1``
            sigmoid outputs).

    Returns:
        A scalar: ``1 - mean_k (2 sum p t + 1) / (sum p + sum t + 1)``, the
        sums over the batch's pixels, ``k`` over the foreground classes
        (``k >= 1``; the single channel when ``K = 1``). Pooling over the
        batch keeps a class absent from one image from rewarding an empty
        prediction (per-image Dice with smoothing collapses to the
        background when each image holds one of several classes).
    """
    num_classes = probabilities.shape[-1]
    targets = tf.cast(targets, tf.int32)
    if num_classes == 1:
        truth = tf.cast(targets, probabilities.dtype)[..., None]
        kept = probabilities
    else:
        truth = tf.one_hot(targets, num_classes, dtype=probabilities.dtype)
        truth, kept = truth[..., 1:], probabilities[..., 1:]
    axes = (0, 1, 2)
    overlap = tf.reduce_sum(truth * kept, axis=axes)
    total = tf.reduce_sum(truth, axis=axes) + tf.reduce_sum(kept, axis=axes)
    return 1.0 - tf.reduce_mean((2.0 * overlap + 1.0) / (total + 1.0))


def _loss(name, num_outputs):
    if name not in LOSSES:
        raise ValueError(
            f"`loss` must be one of {', '.join(LOSSES)}. Received: "
            f"loss={name!r}"
        )
    if name == "dice":
        return dice_loss
    if num_outputs == 1:
        return lambda targets, outputs: keras.losses.binary_crossentropy(
            tf.cast(targets, outputs.dtype)[..., None], outputs
        )
    return keras.losses.SparseCategoricalCrossentropy()


def train_segmentation(
    model,
    images,
    targets,
    *,
    epochs=5,
    batch_size=32,
    loss="dice",
    learning_rate=3e-3,
    seed=0,
    verbose=0,
    callbacks=(),
):
    """Trains ``model`` in place on label maps.

    Args:
        model: A segmentation model (output ``(N, H, W, K)``).
        images: ``(N, H, W, C)`` float32 in the model's scale.
        targets: ``(N, H, W)`` int label maps.
        epochs, batch_size, learning_rate, seed: Training settings.
        loss: ``"dice"`` or ``"cross_entropy"``.
        verbose: Keras' progress.
        callbacks: Keras callbacks (e.g. an `AttentionRecorder`).

    Returns:
        A JSON-ready dict: ``loss`` per epoch, ``seconds_per_epoch``,
        ``epochs``, ``loss_name``, ``train_images``.
    """
    function = _loss(loss, model.outputs[0].shape[-1])
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=function)
    order = np.random.default_rng(seed).permutation(len(images))
    started = time.perf_counter()
    history = model.fit(
        np.asarray(images, np.float32)[order],
        np.asarray(targets, np.int64)[order],
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=verbose,
        callbacks=list(callbacks),
    )
    seconds = time.perf_counter() - started
    return {
        "loss_name": loss,
        "loss": [float(v) for v in history.history["loss"]],
        "epochs": epochs,
        "train_images": int(len(images)),
        "seconds_per_epoch": seconds / max(epochs, 1),
    }
