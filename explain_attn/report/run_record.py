"""The run's record: the data, the settings, the library versions and,
for merged parts, the shards (the page's "Run" table and its notes)."""

import platform
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np

from explain_attn import __version__
from explain_attn.report.section import Section

__all__ = ["RunRecord", "RunSection", "dataset_name", "library_versions"]


class RunRecord(TypedDict):
    """The run section's result: its keys of ``report.json``."""

    dataset: dict
    """`dataset_record`: name, source, split, counts, shape, classes,
    masks and fingerprint."""
    settings: dict
    """`build_report`'s arguments as given (`Run.recorded`)."""
    versions: dict
    """`library_versions`."""
    shards: NotRequired[list]
    """For merged parts: one row per shard."""


def dataset_name(test, source):
    """The data's name: its folder's name, not its split folder's.

    ``DATA/test/images/...`` is named ``DATA``, not ``test``.
    """
    if source is not None and Path(str(source)).is_dir():
        folder = Path(str(source)).resolve()
        if folder.name != test.name and (folder / test.name).is_dir():
            return folder.name
    return test.name


def dataset_record(test, source):
    """The data's record; a streamed source's fingerprint was computed
    during the evaluation's pass."""
    return {
        "name": dataset_name(test, source),
        "source": str(source),
        "split": "test",
        "num_images": int(len(test.labels)),
        "image_shape": [int(n) for n in test.image_shape],
        "class_names": list(test.class_names),
        "has_masks": bool(test.has_masks),
        "fingerprint": test.fingerprint(),
    }


def library_versions():
    """The versions of this package and of the libraries it computes with."""
    import keras
    import tensorflow as tf

    return {
        "explain_attn": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


class RunSection(Section):
    """``dataset``, ``settings`` (`Run.recorded`), ``versions`` and, for
    merged parts, ``shards``."""

    name = "run"
    partial = "_header.html"

    def compute(self, run, observed, data):
        merged = run.merged
        return RunRecord(
            dataset=dataset_record(run.test, run.source),
            settings=run.recorded,
            versions=library_versions(),
            **({} if merged is None else {"shards": merged.record()}),
        )

    def keys(self, result, data):
        return dict(result)
