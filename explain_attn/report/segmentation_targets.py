"""The targets of a segmentation report: label maps from masks and labels.

A data set holds one class label and one foreground mask per image (the
bundled shapes; a folder's ``masks/``). For a segmentation model with ``K``
outputs per pixel the true label map is:

- ``K = 1`` (a sigmoid) or ``K = 2`` with more than one data class: the
  mask itself, 1 on the object (foreground against background);
- ``K = len(class_names) + 1``: ``label + 1`` on the mask, 0 elsewhere
  (class 0 is the background, class ``k + 1`` the data's class ``k``).

With multi-class masks (``mask_labels``: ``masks/labels.txt``, see
`explain_attn.data.folders`) the masks are the label maps themselves, with
the mask labels as classes: ``K = len(mask_labels) + 1`` scores each class,
``K = 1`` or ``2`` the foreground (any class) against the background.

Anything else cannot be scored and is refused before any work.
"""

import numpy as np

__all__ = ["TargetEncoding", "target_encoding"]


class TargetEncoding:
    """How masks and labels become label maps for a model's outputs.

    Attributes:
        num_outputs: ``K``, the model's channels per pixel.
        num_labels: Labels of the label maps, background included.
        label_names: Their names, background first.
    """

    def __init__(self, num_outputs, class_names, mask_labels=None):
        self.num_outputs = int(num_outputs)
        self.mask_labels = mask_labels
        if mask_labels is not None:
            class_names = tuple(mask_labels)
        self.per_class = self.num_outputs == len(class_names) + 1
        if self.per_class:
            self.label_names = ("background", *class_names)
        else:
            self.label_names = ("background", "object")
        self.num_labels = len(self.label_names)
        self.num_classes = len(class_names)

    def __call__(self, labels, masks):
        """``(B, H, W)`` int64 true label maps of one chunk."""
        if self.mask_labels is not None and self.per_class:
            return np.asarray(masks, np.int64)
        masks = np.asarray(masks, bool)
        if not self.per_class or self.mask_labels is not None:
            return masks.astype(np.int64)
        labels = np.asarray(labels, np.int64)
        return np.where(masks, labels[:, None, None] + 1, 0)

    def predicted(self, outputs):
        """``(B, H, W)`` int64 predicted label maps from the model's
        ``(B, H, W, K)`` probabilities (a sigmoid above 0.5)."""
        outputs = np.asarray(outputs)
        if self.num_outputs == 1:
            return (outputs[..., 0] > 0.5).astype(np.int64)
        return np.argmax(outputs, axis=-1).astype(np.int64)


def target_encoding(model, test):
    """The `TargetEncoding` of ``model`` on ``test``, checked.

    Raises:
        ValueError: If the data has no masks, its masks do not have the
            output's size, or the model's outputs match neither encoding
            (a label value would fall outside its classes).
    """
    if not test.has_masks:
        raise ValueError(
            f"The data {test.name!r} has no masks, and a segmentation model "
            "is scored against them (its targets). Give data with a masks/ "
            "folder (masks/<class>/<name>.png beside images/)."
        )
    output = tuple(model.outputs[0].shape[1:])
    if tuple(test.image_shape[:2]) != output[:2]:
        raise ValueError(
            f"Model {model.name!r} predicts {output[0]}x{output[1]} pixels "
            f"but the masks are {test.image_shape[0]}x{test.image_shape[1]}; "
            "they must match. Resize the data with --image-size "
            f"{output[0]}x{output[1]}."
        )
    names = test.mask_labels or test.class_names
    classes = len(names)
    if output[-1] not in (1, 2, classes + 1):
        raise ValueError(
            f"Model {model.name!r} has {output[-1]} classes per pixel, but "
            f"the data's labels run to {classes} (its {classes} classes and "
            "the background): a label value would fall outside the model's "
            f"classes. Use a model with {classes + 1} classes (background "
            "first), 2 or 1 (foreground against background)."
        )
    return TargetEncoding(output[-1], test.class_names, test.mask_labels)
