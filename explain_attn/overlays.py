"""Maps drawn over images: one colouring for the report, the notebook and
the training trackers (`explain_attn.models.sinks`).

Pure NumPy, plus matplotlib's colormap table and scikit-image's boundaries.
"""

import matplotlib
import numpy as np
from skimage.segmentation import find_boundaries
from skimage.transform import resize

__all__ = ["OVERLAY_COLORMAP", "mask_outline", "overlay_rgb"]

OVERLAY_COLORMAP = "inferno"


def overlay_rgb(image, values):
    """``(H, W, 3)`` RGB in [0, 1]: ``values`` in the overlay colormap over
    the gray image.

    Args:
        image: ``(H, W, C)`` in [0, 1], C = 1 or 3.
        values: ``(h, w)`` map, any range; resized bilinearly to
            ``(H, W)`` when its size differs, then scaled to its own
            [min, max] (a constant map shows as the colormap's lowest
            colour).
    """
    values = np.asarray(values, np.float32)
    if values.shape != image.shape[:2]:
        values = resize(values, image.shape[:2], order=1, mode="edge")
    gray = np.clip(image, 0, 1).mean(axis=-1)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else values * 0
    colormap = matplotlib.colormaps[OVERLAY_COLORMAP]
    blend = 0.45 * gray[..., None] + 0.55 * colormap(scaled)[..., :3]
    return np.clip(blend, 0, 1)


def mask_outline(image, mask, *, colour=(0.0, 1.0, 0.2)):
    """``image`` as RGB with the inner boundary of ``mask`` drawn in
    ``colour``; ``mask`` ``None`` leaves the image as it is (gray becomes
    RGB)."""
    image = np.clip(image, 0, 1)
    if image.shape[-1] == 1:  # Gray: shown as RGB so the outline is green.
        image = np.repeat(image, 3, axis=-1)
    outlined = image.copy()
    if mask is not None:
        outlined[find_boundaries(mask, mode="inner")] = colour
    return outlined
