"""`to_data_uri` draws once and writes the PNG matplotlib's tight box does."""

import base64
import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from explain_attn.report.figures import to_data_uri


def _tight_png(figure, dpi):
    """The PNG of ``savefig(bbox_inches="tight")``: matplotlib's own way."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _figure(kind):
    rng = np.random.default_rng(0)
    figure = Figure(figsize=(6, 2.5))
    if kind == "panels":
        axes = figure.subplots(2, 5)
        for index, axis in enumerate(axes.flat):
            image = axis.imshow(rng.random((12, 20)), cmap="magma")
            axis.set_title(f"layer {index}\nstep {index * 3}", fontsize=7)
            axis.set_xticks([])
            axis.set_yticks([])
        figure.colorbar(image, ax=axes, shrink=0.8)
    elif kind == "constrained":
        figure.set_layout_engine("constrained")
        for axis in figure.subplots(1, 3):
            axis.imshow(rng.random((8, 8)))
            axis.set_title("a title")
    else:
        axis = figure.subplots()
        for name in ("deletion", "insertion"):
            axis.plot(np.linspace(0, 1, 11), rng.random(11), label=name)
        axis.set_xlabel("fraction of pixels")
        axis.set_title("a long title that reaches past the axes' right edge")
        axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        figure.tight_layout()
    return figure


@pytest.mark.parametrize("kind", ["panels", "curves", "constrained"])
@pytest.mark.parametrize("dpi", [90, 100])
def test_data_uri_is_the_tight_png(kind, dpi):
    expected = _tight_png(_figure(kind), dpi)
    uri = to_data_uri(_figure(kind), dpi=dpi)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == expected
