"""Models and data of a segmentation report: the user's, or the demo pair.

`report_task` decides whether a report is about segmentation (the models'
outputs, or ``--task``); `segmentation_demo` trains (or loads from the
cache) the U-Net pair (`explain_attn.models.unet`) on the bundled shapes,
whose masks are the targets: each pixel is the background (0) or the
object (1).
"""

import json

import keras
import numpy as np

from explain_attn.data.loaders import Dataset
from explain_attn.data.synthetic import (
    CLASS_NAMES,
    DEFAULT_CLUTTER,
    SAMPLE_SEED,
    generate,
)
from explain_attn.models.architectures import build_model
from explain_attn.models.saving import atomic_path
from explain_attn.models.segmentation_training import train_segmentation
from explain_attn.models.task import CLASSIFICATION, check_task
from explain_attn.report.cache import cache_directory, cache_key
from explain_attn.report.models import ReportModel
from explain_attn.report.segmentation_targets import TargetEncoding

__all__ = [
    "SEGMENTATION_DEMO",
    "report_task",
    "segmentation_demo",
]

SEGMENTATION_DEMO = {
    "epochs": 6,
    "train_images": 4000,
    "batch_size": 32,
    "loss": "dice",
    "learning_rate": 3e-3,
    "num_outputs": 2,
}
"""The demo's training: a subset of the shapes' training split, each pixel
the object (1) or the background (0). (With one class per shape, 5
outputs, the small U-Nets reached a Dice of only 0.09 after 3 epochs on
2,000 images, against 0.68 for object against background.)"""


def report_task(models, task):
    """The task of the report's models (all the same), checked against
    ``task``; ``task`` itself (default classification) without models."""
    if not models:
        return task or CLASSIFICATION
    found = {check_task(entry.state, task) for entry in models}
    if len(found) > 1:
        raise ValueError(
            "The models do not share a task: some predict one class per "
            "image, some one per pixel. Compare models of one kind."
        )
    return found.pop()


def _train_one(architecture, train, encoding, settings, seed, say):
    model = build_model(
        architecture,
        input_shape=tuple(train.image_shape),
        num_classes=encoding.num_outputs,
    )
    targets = encoding(train.labels, train.masks)
    info = train_segmentation(
        model,
        train.images,
        targets,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        loss=settings["loss"],
        learning_rate=settings["learning_rate"],
        seed=seed,
    )
    say(
        f"{architecture}: trained ({settings['epochs']} epochs, "
        f"{len(targets)} images, {info['seconds_per_epoch']:.1f} s per epoch)"
    )
    return model, info


def _cached(architecture, train, encoding, settings, seed, folder, say):
    key = cache_key(
        {
            "architecture": architecture,
            "seed": seed,
            "version": 2,
            "data": train.fingerprint(),
            **settings,
        }
    )
    path = folder / f"segmentation-{architecture}-{key}.keras"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        say(f"{architecture}: loaded from cache (key {key})")
        info = json.loads(meta.read_text(encoding="utf-8"))
        model = keras.saving.load_model(path, compile=False)
        return model, {**info, "source": "cache"}
    model, info = _train_one(architecture, train, encoding, settings, seed, say)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        model.save(temporary)
    with atomic_path(meta) as temporary:
        temporary.write_text(json.dumps(info), encoding="utf-8")
    return model, {**info, "source": "trained"}


def _training_subset(train, count):
    """The first ``count`` images of the shapes' training stream, as a
    `Dataset` (``train``: ``"sample"``, or a `Dataset` with masks)."""
    if isinstance(train, Dataset):
        return train.take(range(min(count, len(train.labels))))
    images, labels, masks = generate(
        count,
        split="train",
        seed=SAMPLE_SEED,
        image_size=32,
        clutter=DEFAULT_CLUTTER,
        spurious_correlation=0.0,
    )
    return Dataset(
        images / np.float32(255), labels, masks, CLASS_NAMES, name="sample"
    )


def segmentation_demo(train, *, epochs=None, seed=0, cache_dir=None, say):
    """The demo's U-Net pair trained on ``train``'s masks, or loaded.

    Args:
        train: ``"sample"`` (the shapes' training stream) or a `Dataset`
            with masks.
        epochs: Training epochs (default: `SEGMENTATION_DEMO`'s).
        seed: Training seed.
        cache_dir: The model cache (default: `cache_directory`).
        say: Where progress lines go.

    Returns:
        ``[attention ReportModel, baseline ReportModel]``.
    """
    settings = dict(
        SEGMENTATION_DEMO, epochs=epochs or SEGMENTATION_DEMO["epochs"]
    )
    subset = _training_subset(train, settings["train_images"])
    encoding = TargetEncoding(settings["num_outputs"], subset.class_names)
    folder = cache_dir or cache_directory()
    models = []
    for role, architecture in (
        ("attention", "attention_unet"),
        ("baseline", "unet"),
    ):
        model, info = _cached(
            architecture, subset, encoding, settings, seed, folder, say
        )
        models.append(
            ReportModel(
                key=role,
                role=role,
                name=architecture,
                model=model,
                architecture=architecture,
                training=info,
            )
        )
    return models
