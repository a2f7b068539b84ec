"""`fit_pipeline`: the one ``tf.data`` pipeline that feeds Keras.

``model.fit`` (training batches and validation), ``model.predict`` in
`explain_attn.models.training.evaluate`, the input standardisation's
``adapt`` and `explain_attn.data.tf_dataset` all read a
`explain_attn.data.source.Source` through it: a ``tf.data.Dataset`` of
image positions (in any order: the seeded epoch orders of training, a
shuffle, or ``0..N-1``) becomes batches of ``(images, labels)``.

- Arrays in memory are indexed batch by batch in NumPy (never copied
  whole into TensorFlow).
- A streamed source (`explain_attn.data.stream.ImageSource`: a folder, an
  ``.npz``) is decoded image by image, in parallel and in order, as the
  batches are needed (`ImageSource.decode`): memory stays flat in the
  number of images, as for maps.
"""

import numpy as np

from explain_attn.data.source import ArraySource
from explain_attn.data.stream import ImageSource
from explain_attn.options import check_positive_int

__all__ = ["fit_pipeline", "positions"]


def positions(count, *, shuffle=False, seed=0):
    """A ``tf.data.Dataset`` of ``0..count-1``, reshuffled every epoch
    with ``shuffle`` (all positions in the buffer; equal seeds, equal
    orders)."""
    import tensorflow as tf

    order = tf.data.Dataset.range(count)
    if shuffle:
        order = order.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return order


def fit_pipeline(source, order, batch_size, *, prefetch=True):
    """Batches of ``(images, labels)`` of ``source`` in ``order``.

    Args:
        source: An `ArraySource` (a `Dataset`, ``(images, labels)``) or
            an `ImageSource` with labels.
        order: A ``tf.data.Dataset`` of scalar int64 positions.
        batch_size: Positive; the last batch may be smaller.
        prefetch: Prefetch batches (``tf.data.AUTOTUNE``).

    Returns:
        A ``tf.data.Dataset`` of ``float32 (B, H, W, C)`` and
        ``int64 (B,)``.

    Raises:
        TypeError: For a source that cannot be read by index (a stream of
            batches) or has no labels.
    """
    import tensorflow as tf

    check_positive_int("batch_size", batch_size)
    if source.labels is None or not isinstance(
        source, ArraySource | ImageSource
    ):
        raise TypeError(
            f"{source.name!r} cannot feed training: it needs labels and "
            "images read by index (a Dataset, (images, labels), a folder or "
            f"an .npz). Received: {type(source).__name__}"
        )
    labels = tf.constant(np.asarray(source.labels, dtype=np.int64))
    if isinstance(source, ArraySource):
        pipeline = order.batch(batch_size).map(
            lambda batch: (_rows(source, batch), tf.gather(labels, batch))
        )
    else:
        load = source.reader()
        pipeline = order.map(
            lambda position: (load(position)[0], tf.gather(labels, position)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        ).batch(batch_size)
    return pipeline.prefetch(tf.data.AUTOTUNE) if prefetch else pipeline


def _rows(source, batch):
    """The images at the positions ``batch`` of an in-memory source, taken
    from its NumPy array batch by batch (never copied whole into
    TensorFlow)."""
    import tensorflow as tf

    images = np.asarray(source.images, dtype=np.float32)
    rows = tf.numpy_function(
        lambda positions: images[positions], [batch], tf.float32, stateful=False
    )
    rows.set_shape((None, *images.shape[1:]))
    return rows
