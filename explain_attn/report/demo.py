"""The demo: train (or load from the cache) a ConvNet and its attention twin.

`explain-attn report` without models trains the pair `DEMO_ARCHITECTURES`
on the training split of the data and reports on its test split. Training
lives here, apart from `explain_attn.report.build.build_report`, which
takes trained models and data.
"""

import dataclasses
import hashlib
import inspect
import json

from explain_attn.data import load_dataset, synthetic, train_test_datasets
from explain_attn.models import training
from explain_attn.report.cache import train_or_load
from explain_attn.report.models import ReportModel

__all__ = [
    "DEMO_ARCHITECTURES",
    "TrainingSplit",
    "demo_data",
    "demo_models",
]

DEMO_ARCHITECTURES = {
    "baseline": "small_convnet",
    "attention": "small_attention",
}
"""What the demo trains: a plain ConvNet and the same network with spatial
attention after blocks 2 and 3. The baseline is exactly the attention
network with its attention layers removed, so it is also the
capacity-matched ablation."""


@dataclasses.dataclass(frozen=True)
class TrainingSplit:
    """A training split that is only built when a model must be trained.

    Attributes:
        load: Returns the `explain_attn.data.Dataset`.
        key: Identifies the data for the model cache, in place of
            ``Dataset.fingerprint()``.
        count: Number of images.
    """

    load: object
    key: str
    count: int


def _sample_training_split(image_size, spurious_correlation):
    """The sample data's generated training split, keyed by its recipe.

    The key holds every generator setting and a hash of the generator's
    source, so a change to the generator retrains cached models.
    """
    recipe = {
        "source": "sample",
        "count": synthetic.DEMO_TRAIN_SIZE,
        "seed": synthetic.SAMPLE_SEED,
        "clutter": synthetic.DEFAULT_CLUTTER,
        "spurious_correlation": spurious_correlation or 0.0,
        "image_size": image_size,
        "generator": hashlib.sha256(
            inspect.getsource(synthetic).encode()
        ).hexdigest(),
    }
    return TrainingSplit(
        load=lambda: load_dataset(
            "sample",
            split="train",
            image_size=image_size,
            spurious_correlation=spurious_correlation,
        ),
        key=json.dumps(recipe, sort_keys=True),
        count=synthetic.DEMO_TRAIN_SIZE,
    )


def demo_data(data, *, image_size, seed, spurious_correlation):
    """``(train, test)`` for the demo: a `TrainingSplit` or a `Dataset`.

    The sample data's training split is generated on demand (a warm run,
    with cached models, never needs it); other data is split with
    `explain_attn.data.train_test_datasets`.
    """
    if data == "sample":
        test = load_dataset(data, split="test", image_size=image_size)
        return _sample_training_split(image_size, spurious_correlation), test
    return train_test_datasets(
        data,
        image_size=image_size,
        seed=seed,
        spurious_correlation=spurious_correlation,
    )


def _count(train):
    return train.count if isinstance(train, TrainingSplit) else len(train)


def demo_models(
    train,
    test,
    *,
    epochs,
    seed,
    cache_dir,
    verbose,
    say,
    strategy=None,
    retrain=False,
):
    """Trains the demo pair on ``train`` (or loads it from the cache).

    ``retrain`` trains anew, where a cache miss otherwise takes the
    models the package ships (`explain_attn.report.shipped`). With a
    ``strategy`` (`explain_attn.devices.make_strategy`) the models
    are loaded or trained in its scope (see `train_or_load`).

    Returns:
        A list of `ReportModel`: the attention model, then the baseline.
    """
    epochs = epochs or training.DEMO_EPOCHS
    options = {"validation_data": test, "epochs": epochs, "seed": seed}
    options |= {"cache_dir": cache_dir, "verbose": verbose, "say": say}
    options |= {"strategy": strategy, "retrain": retrain}
    models = []
    for role in ("baseline", "attention"):
        architecture = DEMO_ARCHITECTURES[role]
        model, info = train_or_load(
            architecture,
            train,
            batch_size=training.DEMO_BATCH_SIZE,
            learning_rate=training.DEMO_LEARNING_RATE,
            **options,
        )
        verb = "loaded from cache" if info["source"] == "cache" else "trained"
        say(
            f"{role.capitalize()} model {architecture}: {verb} "
            f"({epochs} epochs, {_count(train)} training images, "
            f"{info['seconds_per_epoch']:.1f} s per epoch; key {info['key']})"
        )
        info = {**info, "epochs": epochs, "training_images": _count(train)}
        models.append(_report_model(role, architecture, model, info))
    return models[::-1]  # attention first, baseline last


def _report_model(role, architecture, model, info):
    """The `ReportModel` of one demo model ``train_or_load`` returned."""
    trained = {
        "source": info["source"],
        "epochs": info["epochs"],
        "training_images": info["training_images"],
        "seconds_per_epoch": info["seconds_per_epoch"],
        "history": info["history"],
        "check": info.get("check"),
        "record_file": info.get("record_file"),
    }
    return ReportModel(
        key=role,
        role=role,
        name=architecture,
        model=model,
        architecture=architecture,
        training=trained,
    )
