"""Data in: image folders, ``.npz`` files, the sample data, CIFAR-10.

- `source`: `Source`, the one interface of every image collection (length,
  labels, class names, image shape, masks, read by index, batches, a
  subset, fingerprint), and `ArraySource` (arrays in memory).
- `adapter`: `as_source`, the one way in: arrays, ``(images, labels)``, a
  path, ``"sample"``, a ``tf.data.Dataset``, a list of files or a
  generator become a `Source`.
- `pipeline`: `fit_pipeline`, the one ``tf.data`` pipeline that feeds
  Keras (training, validation, prediction), in memory or streamed.
- `loaders`: `load_dataset` and the `Dataset` it returns (images, labels,
  optional foreground masks), `open_source` (the same data, streamed),
  splits, and `tf.data` pipelines.
- `stream`: folders and ``.npz`` files read lazily in batches by
  `tf.data` (`FolderSource`, `NpzSource`), with the fingerprint computed on
  the way.
- `folders`: the folder layout: images by class, and the foreground of
  each from masks, Pascal VOC annotations or ``boxes.csv``.
- `images`: image and mask files decoded as they come (16-bit, palette,
  RGBA, EXIF orientation, large JPEGs at reduced size), and resizing.
- `annotations`: bounding boxes (VOC XML, CSV) rasterised into masks.
- `synthetic`: the generator of the bundled sample data (shapes on
  cluttered backgrounds, with exact masks).
"""

from explain_attn.data.adapter import as_source
from explain_attn.data.images import AlphaDroppedWarning
from explain_attn.data.loaders import (
    IMAGE_SUFFIXES,
    Dataset,
    load_dataset,
    open_source,
    sample_data_directory,
    split_dataset,
    tf_dataset,
    train_test_datasets,
)
from explain_attn.data.source import ArraySource, Source

__all__ = [
    "IMAGE_SUFFIXES",
    "AlphaDroppedWarning",
    "ArraySource",
    "Dataset",
    "Source",
    "as_source",
    "load_dataset",
    "open_source",
    "sample_data_directory",
    "split_dataset",
    "tf_dataset",
    "train_test_datasets",
]
