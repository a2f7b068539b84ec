"""Makes the demo models the package ships (`explain_attn.report.shipped`).

Trains the demo pair with the seeded recipe into a cache folder (or takes
the entries already there: ``--cache-dir`` of an earlier demo run with the
same settings), then writes each entry to
``explain_attn/report/demo_models/<architecture>-<key>/``: the model
without its optimizer's state (the report never trains it), the attention
record, and ``meta.json`` with the files' new SHA-256. Run after a change
to the demo's data, architectures or recipe (``tests/test_shipped.py``
fails until then):

    python -m benchmarks.make_demo_models
"""

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

__all__ = ["make_demo_models"]


def _without_optimizer(source, target):
    """Saves the model at ``source`` to ``target``, uncompiled."""
    import keras

    from explain_attn.models.saving import load_model, save_model

    model = load_model(source)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    save_model(copy, target)


def _ship(entry, directory):
    """Writes the cache ``entry`` as a shipped entry in ``directory``."""
    target = directory / entry.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    _without_optimizer(entry / "model.keras", target / "model.keras")
    shutil.copyfile(entry / "record.npz", target / "record.npz")
    meta = json.loads((entry / "meta.json").read_text())
    for name in ("model", "record"):
        path = next(target.glob(f"{name}.*"))
        meta[f"{name}_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (target / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return target


def make_demo_models(cache_dir, directory, *, retrain=False):
    """Trains (or loads) the demo pair in ``cache_dir``; ships it to
    ``directory``, replacing what was there. Returns the entries.

    A cold cache takes the shipped models when they match the recipe
    (then nothing changes); ``retrain`` trains them anew regardless."""
    from explain_attn.report.demo import demo_data, demo_models

    train, test = demo_data(
        "sample", image_size=None, seed=0, spurious_correlation=None
    )
    models = demo_models(
        train, test, epochs=None, seed=0, cache_dir=cache_dir, verbose=1,
        say=print, retrain=retrain,
    )  # fmt: skip
    keys = {
        entry.architecture: entry.training["record_file"] for entry in models
    }
    for old in directory.glob("*-*"):
        shutil.rmtree(old)
    return [_ship(Path(record).parent, directory) for record in keys.values()]


def main():
    from explain_attn.report.shipped import SHIPPED_DIRECTORY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--output", default=str(SHIPPED_DIRECTORY))
    parser.add_argument("--retrain", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for target in make_demo_models(
            Path(arguments.cache_dir or scratch),
            Path(arguments.output),
            retrain=arguments.retrain,
        ):
            size = sum(f.stat().st_size for f in target.iterdir())
            print(f"{target}: {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
