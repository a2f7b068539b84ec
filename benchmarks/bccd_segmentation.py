"""BCCD whole smears as a segmentation benchmark: U-Net against Attention U-Net.

The photographs (``../shared/data/bccd``, MIT licence) are written, resized
to ``width x height`` (default 128x96, divisible by 4 for the U-Nets), into
explain-attn's folder layout, with one class ``smear`` and the boxes of one
cell type (default WBC, the white cells: about one per smear) filled in as a
coarse mask::

    DEST/data/train/images/smear/<photo>.png  (ImageSets train + val)
    DEST/data/train/masks/smear/<photo>.png
    DEST/data/test/...                         (ImageSets test)

Each pixel's target is then that cell type (1) or not (0): boxes are
coarse masks, so Dice measures box overlap, not cell outlines. Other cell
types are background; ``--cell RBC`` or ``Platelets`` for the others.

``--cell all``: every cell type at once, as multi-class label masks (grey
PNGs, ``masks/labels.txt`` = RBC, WBC, Platelets, values 1, 2, 3; where boxes
overlap, the rarer type is drawn last and wins: RBC, then Platelets, then
WBC). The U-Nets then have 4 outputs and the report scores each type.

Then ``explain-attn train --task segmentation`` trains ``attention_unet``
and its control (``--control``: ``unet``), ``explain-attn report`` compares
them on the test smears, and one JSON line gives the figures: Dice and IoU
with intervals, the paired difference, pixel accuracy against the majority
label, each gate's and each Seg-Grad-CAM's mass in mask next to the flat
and centre maps, the gate interventions, and each command's seconds::

    python -m benchmarks.bccd_segmentation DEST [--epochs 20] [--cell WBC]
        [--loss dice|cross_entropy]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.bccd import default_source, read_objects

SPLITS = {"train": ("train", "val"), "test": ("test",)}
CELLS = ("RBC", "WBC", "Platelets")
"""The label values of ``--cell all`` (1, 2, 3), in labels.txt order."""
DRAWN = ("RBC", "Platelets", "WBC")
"""The drawing order of ``--cell all``: the last wins where boxes overlap."""


def _mask(objects, photo, cells, scale, size):
    """The photo's mask: 255 on its boxes of one cell type, or each type's
    label value (``len(cells) > 1``)."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    for cell in DRAWN if len(cells) > 1 else cells:
        value = CELLS.index(cell) + 1 if len(cells) > 1 else 255
        for box in [b for p, n, b in objects if p == photo and n == cell]:
            left, top = int(box[0] * scale[0]), int(box[1] * scale[1])
            right = int(np.ceil(box[2] * scale[0]))
            bottom = int(np.ceil(box[3] * scale[1]))
            mask[top:bottom, left:right] = value
    return mask


def write_smears(destination, *, source=None, cell="WBC", size=(128, 96)):
    """Writes the resized smears and their box masks; returns the counts."""
    source = Path(source or default_source())
    cells = CELLS if cell == "all" else (cell,)
    counts = {}
    for split, image_sets in SPLITS.items():
        objects = read_objects(source, image_sets)
        photos = sorted({photo for photo, _, _ in objects})
        images = Path(destination) / split / "images" / "smear"
        masks = Path(destination) / split / "masks" / "smear"
        images.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        if len(cells) > 1:
            (masks.parent / "labels.txt").write_text("\n".join(CELLS) + "\n")
        for photo in photos:
            picture = Image.open(source / "JPEGImages" / f"{photo}.jpg")
            scale = (size[0] / picture.width, size[1] / picture.height)
            mask = _mask(objects, photo, cells, scale, size)
            resized = picture.convert("RGB").resize(size, Image.LANCZOS)
            resized.save(images / f"{photo}.png")
            Image.fromarray(mask).save(masks / f"{photo}.png")
        counts[split] = len(photos)
    return counts


def _timed(command):
    """Runs ``command`` (a list), failing loudly; returns its seconds."""
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return round(time.perf_counter() - start, 1)


def _round(value):
    """4 decimals; ``None`` (NaN in JSON: undefined) stays ``None``."""
    return None if value is None else round(value, 4)


def _summary(summary):
    return [_round(summary[k]) for k in ("mean", "ci_low", "ci_high")]


def figures(data):
    """The benchmark's figures from ``report.json``."""
    difference = data["differences"][0]
    result = {
        "models": {
            row["name"]: {
                "dice": _summary(row["dice"]),
                "iou": _summary(row["iou"]),
                "pixel_accuracy": _summary(row["pixel_accuracy"]),
            }
            for row in data["models"]
        },
        "dice_difference": [
            _round(difference["dice"][k])
            for k in ("mean_difference", "ci_low", "ci_high")
        ],
        "majority_pixel_accuracy": _round(data["majority"]["pixel_accuracy"]),
        "per_class_dice": {
            row["name"]: {
                item["label"]: _summary(item["dice"])
                for item in row["per_class"]
            }
            for row in data["models"]
        },
        "mass_in_mask": {
            row["label"]: _summary(row["mass_in_mask"]) for row in data["maps"]
        },
    }
    if data.get("faithfulness"):
        result["interventions"] = {
            f"{row['name']}:{gate['layer']}": {
                name: _round(effect["dice_change"]["mean_difference"])
                for name, effect in gate["interventions"].items()
            }
            for row in data["faithfulness"]["models"]
            for gate in row["gates"]
        }
    return result


def run(
    destination, *, source=None, epochs=20, cell="WBC", seed=0, loss="dice"
):
    """Writes the data, trains both U-Nets, reports; returns the figures."""
    destination = Path(destination)
    data = destination / "data"
    counts = write_smears(data, source=source, cell=cell)
    command = [sys.executable, "-m", "explain_attn"]
    seconds = {}
    for name, extra in (("attention", []), ("baseline", ["--control"])):
        seconds[f"train_{name}"] = _timed(
            [
                *command,
                "train",
                "--task",
                "segmentation",
                "--data",
                str(data),
                "--architecture",
                "attention_unet",
                *extra,
                "--epochs",
                str(epochs),
                "--seed",
                str(seed),
                "--batch-size",
                "8",
                "--loss",
                loss,
                "--output",
                str(destination / f"{name}.keras"),
            ]
        )
    seconds["report"] = _timed(
        [
            *command,
            "report",
            "--data",
            str(data),
            "--attention-model",
            str(destination / "attention.keras"),
            "--baseline-model",
            str(destination / "baseline.keras"),
            "--seed",
            str(seed),
            "--output",
            str(destination / "report.html"),
        ]
    )
    report = json.loads((destination / "report.json").read_text())
    return {
        "cell": cell,
        "photos": counts,
        "epochs": epochs,
        "loss": loss,
        "seconds": seconds,
        **figures(report),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination")
    parser.add_argument("--source", default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--cell", default="WBC", choices=("WBC", "RBC", "Platelets", "all")
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--loss", default="dice", choices=("dice", "cross_entropy")
    )
    arguments = parser.parse_args(argv)
    result = run(
        arguments.destination,
        source=arguments.source,
        epochs=arguments.epochs,
        cell=arguments.cell,
        seed=arguments.seed,
        loss=arguments.loss,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
