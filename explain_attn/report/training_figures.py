"""The "Attention during training" figures (`explain_attn.report.
training_record`): a filmstrip of the probe images' maps across epochs,
and the curves of accuracy and of the attention metrics. Drawn from arrays
and numbers, without TensorFlow (`explain_attn.report.drawing`).
"""

import numpy as np
from matplotlib.figure import Figure
from skimage.segmentation import find_boundaries

from explain_attn.overlays import OVERLAY_COLORMAP
from explain_attn.report.figures import to_data_uri

__all__ = ["FILMSTRIP_COLUMNS", "FILMSTRIP_IMAGES", "curves", "filmstrip"]

FILMSTRIP_IMAGES = 4
FILMSTRIP_COLUMNS = 6


def _columns(count):
    """Up to `FILMSTRIP_COLUMNS` record indices, first and last included."""
    if count <= FILMSTRIP_COLUMNS:
        return list(range(count))
    return sorted(
        {int(round(i)) for i in np.linspace(0, count - 1, FILMSTRIP_COLUMNS)}
    )


def filmstrip(images, masks, maps, epochs):
    """The probe images (objects outlined) and one module's maps over the
    recorded epochs, as a PNG data URI.

    Args:
        images: ``(P, H, W, C)`` probe images (the first
            `FILMSTRIP_IMAGES` are shown).
        masks: ``(P, H, W)`` their masks, or ``None``.
        maps: ``(E, P, h, w)`` the module's maps at each recorded epoch.
        epochs: ``(E,)`` the epochs (up to `FILMSTRIP_COLUMNS` shown,
            first and last included).
    """
    rows = min(FILMSTRIP_IMAGES, len(images))
    columns = _columns(len(epochs))
    figure = Figure(figsize=(1.4 * (len(columns) + 1), 1.4 * rows))
    axes = figure.subplots(rows, len(columns) + 1, squeeze=False)
    for row in range(rows):
        _probe(axes[row, 0], images[row], None if masks is None else masks[row])
        for column, index in enumerate(columns, start=1):
            axes[row, column].imshow(
                maps[index, row], cmap=OVERLAY_COLORMAP, vmin=0, vmax=1
            )
            if row == 0:
                axes[row, column].set_title(
                    f"epoch {epochs[index]:g}", fontsize=8
                )
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    return to_data_uri(figure)


def _probe(axis, image, mask):
    """A probe image scaled to [0, 1], its object outlined."""
    shown = image[..., 0] if image.shape[-1] == 1 else image
    low, high = float(shown.min()), float(shown.max())
    shown = (shown - low) / (high - low) if high > low else shown * 0
    axis.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    if mask is not None:
        outline = find_boundaries(mask, mode="inner")
        axis.contour(outline, levels=[0.5], colors="cyan")


def curves(section, metric_names):
    """Accuracy and the attention metrics per epoch, every recorded model
    (``section``: ``report.json``'s ``training_record``)."""
    figure = Figure(figsize=(10, 3))
    accuracy_axis, metric_axis = figure.subplots(1, 2)
    for row in section["models"]:
        log = row["accuracy_log"]
        values = row["logs"].get(log, row["probe_accuracy"])
        accuracy_axis.plot(row["epochs"], values, marker=".", label=row["name"])
        for layer in row["layers"]:
            for name in metric_names:
                if name in layer["metrics"]:
                    metric_axis.plot(
                        row["epochs"],
                        [
                            np.nan if v is None else v
                            for v in layer["metrics"][name]
                        ],
                        marker=".",
                        label=f"{row['name']} {layer['path']} {name}",
                    )
    accuracy_axis.set_title("accuracy (validation where recorded)", fontsize=10)
    metric_axis.set_title("attention metrics, mean over probe", fontsize=10)
    for axis in (accuracy_axis, metric_axis):
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=6)
    figure.tight_layout()
    return to_data_uri(figure)
