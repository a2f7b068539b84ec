"""The demo's two models, trained once and shipped in the package.

A fresh install's first ``explain-attn report`` would otherwise train the
demo pair (minutes on a laptop). The package carries both as cache entries
(``model.keras`` without the optimizer's state, ``record.npz``,
``meta.json``) in ``explain_attn/report/demo_models/``, made from the
seeded recipe by ``python -m benchmarks.make_demo_models``. On a cache
miss, an entry whose training settings equal the run's (library and Keras
versions aside: a ``.keras`` file loads in the Keras that saved it and in
later ones, not always in earlier ones: Keras 3.11 cannot deserialize the
3.15 files, so an older Keras trains anew) is copied into the
cache (`explain_attn.report.cache`), which then works as before; any
other setting (epochs, seed, another data set, a changed generator)
trains anew, as does ``--retrain``.
"""

import json
from pathlib import Path

__all__ = ["SHIPPED_DIRECTORY", "find_shipped", "portable"]

SHIPPED_DIRECTORY = Path(__file__).resolve().parent / "demo_models"
"""Where the package keeps the shipped entries."""
_VERSIONS = ("explain_attn", "keras")


def portable(settings):
    """``settings`` without the library versions."""
    return {k: v for k, v in settings.items() if k not in _VERSIONS}


def find_shipped(architecture, settings, *, directory=SHIPPED_DIRECTORY):
    """The shipped entry trained with ``settings``, or ``None``.

    Args:
        architecture: The architecture's name (entries are named after it).
        settings: What determines the trained weights
            (`explain_attn.report.cache` computes them).
        directory: Where to look.
    """
    wanted = portable(settings)
    for folder in sorted(Path(directory).glob(f"{architecture}-*")):
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        shipped = meta.get("settings", {})
        loadable = _release(settings.get("keras")) >= _release(
            shipped.get("keras")
        )
        if loadable and portable(shipped) == wanted:
            return folder
    return None


def _release(version):
    """``(major, minor)`` of a version string; ``(0, 0)`` when unknown."""
    try:
        return tuple(int(part) for part in str(version).split(".")[:2])
    except ValueError:
        return (0, 0)
