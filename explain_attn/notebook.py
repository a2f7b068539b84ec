"""Reports and maps inline in Jupyter, rendered by the report's templates.

`explain_attn.report.Report` has ``_repr_html_`` (the whole report in an
``<iframe srcdoc>``, so that its styles and script stay apart from the
notebook's); `overlay` returns an object that Jupyter shows as an image
with a map overlaid, as the report's gallery draws it.

Example:

>>> from explain_attn.notebook import overlay
>>> overlay(image, attention_map, mask=mask, title="block2_attention")
"""

import dataclasses

import numpy as np

from explain_attn.report.figures import example_figure
from explain_attn.report.render import (
    FRAME_HEIGHT,
    report_frame,
    template_environment,
)

__all__ = ["FRAME_HEIGHT", "Overlay", "overlay", "report_frame"]


@dataclasses.dataclass
class Overlay:
    """An image with a map overlaid; Jupyter shows it inline.

    Attributes:
        figure: The figure as a PNG ``data:`` URI.
        title: The caption.
    """

    figure: str
    title: str

    def _repr_html_(self):
        template = template_environment().get_template("notebook_overlay.html")
        return template.render(figure=self.figure, title=self.title)


def overlay(image, attention_map, *, mask=None, title="map"):
    """An image with ``attention_map`` overlaid, for a notebook cell.

    Args:
        image: ``(H, W, 3)`` float in [0, 1].
        attention_map: ``(h, w)`` map, any non-negative range; resized
            bilinearly to ``(H, W)`` and scaled to its own [min, max].
        mask: Optional ``(H, W)`` bool mask, drawn as an outline.
        title: The map's name.

    Returns:
        An `Overlay`.
    """
    from skimage.transform import resize

    image = np.asarray(image, np.float32)
    values = np.asarray(attention_map, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"`image` must be (H, W, 3). Received: image.shape={image.shape}"
        )
    if values.ndim != 2:
        raise ValueError(
            "`attention_map` must be (h, w). Received: "
            f"attention_map.shape={values.shape}"
        )
    if values.shape != image.shape[:2]:
        values = resize(values, image.shape[:2], order=1, mode="edge")
    figure = example_figure(image, mask, [values], [title])
    return Overlay(figure=figure, title=title)
