"""BCCD blood-cell crops in explain-attn's folder layout, boxes as VOC XML.

BCCD (MIT licence, Shenggan/BCCD_Dataset) holds 364 photographs of blood
smears, 640x480 JPEGs, with Pascal VOC boxes of three cell types: RBC, WBC
and Platelets. It lives outside the repository, in ``../shared/data/bccd``
beside the clone; this recipe never copies a photograph into the
repository, it writes crops into a folder of your choice::

    DEST/train/images/<class>/<photo>_<k>.png       from train + val photos
    DEST/train/annotations/<class>/<photo>_<k>.xml  (or DEST/train/boxes.csv)
    DEST/test/...                                   from test photos

so that ``load_dataset(DEST)`` reads them with their boxes as foreground
masks, and ``explain-attn report --data DEST`` compares explanations with
the cells.

The recipe:

- **Splits by photograph.** ``train`` takes the photographs listed in
  ``ImageSets/Main/train.txt`` and ``val.txt``, ``test`` those in
  ``test.txt``: no photograph gives crops to both.
- **One crop per box, centred on it.** A square of side ``(1 + 2 *
  margin)`` times the box's longer side (at most the photograph's height),
  shifted inside the photograph where the box is near an edge (the box
  stays whole inside), resized to ``crop_size x crop_size`` (Lanczos).
  Boxes shorter than ``min_box`` pixels on a side are skipped.
- **The crop's foreground is its own box,** scaled to the crop and written
  1-based inclusive (VOC), or 0-based inclusive in ``boxes.csv``; the
  other cells in the crop are background. The class is the box's cell type.
- **Balanced and seeded.** Each split takes at most ``per_class`` boxes of
  every class, drawn without replacement by `numpy.random.default_rng`
  with ``seed``; equal arguments write identical files.

Command line, from the repository root::

    python -m benchmarks.bccd DEST [--source DIR] [--crop-size 96]
        [--train-per-class 200] [--test-per-class 100] [--csv]

Training (issue 16): ``python -m benchmarks.bccd train DEST [--epochs 12]
[--image-size 64]`` writes the crops of the issue (560 per class for
training, 138 for testing: 1,153 and 278 crops, because BCCD has fewer
platelets and white cells) unless ``DEST`` has them, then trains
``small_convnet`` and ``small_attention`` with the old recipe (raw inputs,
BatchNormalization moving averages as Keras leaves them) and the current
one (`explain_attn.models.training`: standardised inputs, recalibrated
statistics), and prints one JSON line per run: test accuracy, training
accuracy in training and inference mode, the majority rate, and
``block1_bn``'s moving variance next to the variance of its inputs.

Report (issue 12): ``python -m benchmarks.bccd report DEST [--epochs 12]
[--image-size 64]`` writes the same crops into ``DEST/crops`` unless they
are there, trains ``small_attention`` and ``small_convnet`` with the
current recipe through ``explain-attn train`` (``DEST/attention.keras``,
``DEST/baseline.keras``), runs ``explain-attn report`` on the test crops
(``DEST/report.html`` and ``report.json``) and prints, from
``report.json``: both test accuracies with their intervals, the majority
rate, mass in mask, pointing game and ROC AUC of every explanation next to
the flat map and the centre prior, the findings, the warnings and the
wall-clock seconds of each command.
"""

import argparse
import math
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "default_source",
    "read_objects",
    "report_run",
    "report_summary",
    "train_runs",
    "write_crops",
]

CLASS_NAMES = ("Platelets", "RBC", "WBC")
SPLITS = {"train": ("train", "val"), "test": ("test",)}


def default_source():
    """``../shared/data/bccd`` beside the repository (may not exist)."""
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd"


def read_objects(source, image_sets):
    """The boxes of the photographs listed in ``ImageSets/Main``.

    Args:
        source: The BCCD folder (``Annotations/``, ``JPEGImages/``,
            ``ImageSets/Main/``).
        image_sets: Names of lists in ``ImageSets/Main``, e.g.
            ``("train", "val")``.

    Returns:
        A list of ``(photo, class_name, (xmin, ymin, xmax, ymax))``, VOC
        1-based inclusive coordinates, in file order.
    """
    source = Path(source)
    photos = []
    for name in image_sets:
        listing = source / "ImageSets" / "Main" / f"{name}.txt"
        photos += [line.strip() for line in listing.read_text().split()]
    objects = []
    for photo in sorted(set(photos)):
        root = ElementTree.parse(source / "Annotations" / f"{photo}.xml")
        for element in root.getroot().findall("object"):
            class_name = element.findtext("name", "").strip()
            if class_name not in CLASS_NAMES:
                continue
            box = tuple(
                float(element.findtext(f"bndbox/{tag}"))
                for tag in ("xmin", "ymin", "xmax", "ymax")
            )
            objects.append((photo, class_name, box))
    return objects


def write_crops(
    source,
    destination,
    *,
    crop_size=96,
    margin=0.25,
    train_per_class=200,
    test_per_class=100,
    min_box=8,
    seed=0,
    box_format="voc",
):
    """Writes balanced square crops of BCCD cells with their boxes.

    Args:
        source: The BCCD folder.
        destination: The folder to write ``train/`` and ``test/`` into.
        crop_size: Side of the written crops, in pixels.
        margin: Context on each side of a box, as a fraction of its longer
            side.
        train_per_class: At most this many crops per class in ``train``.
        test_per_class: At most this many crops per class in ``test``.
        min_box: Boxes shorter than this (pixels) on a side are skipped.
        seed: Seed of the draw of boxes.
        box_format: ``"voc"`` (``annotations/<class>/<name>.xml``) or
            ``"csv"`` (``boxes.csv``).

    Returns:
        ``{split: {class_name: count}}`` of the crops written.

    Raises:
        ValueError: For an unknown ``box_format`` or a missing ``source``.
    """
    if box_format not in ("voc", "csv"):
        raise ValueError(
            "`box_format` must be 'voc' or 'csv'. Received: "
            f"box_format={box_format!r}"
        )
    source, destination = Path(source), Path(destination)
    if not (source / "Annotations").is_dir():
        raise ValueError(
            f"No BCCD data in {str(source)!r}: expected Annotations/, "
            "JPEGImages/ and ImageSets/Main/ there."
        )
    rng = np.random.default_rng(seed)
    counts = {}
    for split, image_sets in SPLITS.items():
        cap = train_per_class if split == "train" else test_per_class
        chosen = _draw(read_objects(source, image_sets), cap, min_box, rng)
        rows = _write_split(
            source, destination / split, chosen, crop_size, margin, box_format
        )
        counts[split] = {
            name: sum(1 for _, c, _ in chosen if c == name)
            for name in CLASS_NAMES
        }
        if box_format == "csv":
            lines = ["file,x_min,y_min,x_max,y_max", *rows]
            (destination / split / "boxes.csv").write_text(
                "\n".join(lines) + "\n", encoding="utf-8"
            )
    return counts


def _draw(objects, cap, min_box, rng):
    """At most ``cap`` objects per class, drawn; in file order."""
    chosen = []
    for class_name in CLASS_NAMES:
        members = [
            index
            for index, (_, name, (x0, y0, x1, y1)) in enumerate(objects)
            if name == class_name and min(x1 - x0 + 1, y1 - y0 + 1) >= min_box
        ]
        picked = rng.permutation(len(members))[:cap]
        chosen += [members[i] for i in picked]
    return [objects[i] for i in sorted(chosen)]


def _write_split(source, folder, chosen, crop_size, margin, box_format):
    from PIL import Image

    rows, counter = [], {}
    by_photo = {}
    for photo, class_name, box in chosen:
        by_photo.setdefault(photo, []).append((class_name, box))
    for photo, items in by_photo.items():
        with Image.open(source / "JPEGImages" / f"{photo}.jpg") as image:
            image = image.convert("RGB")
            for class_name, box in items:
                crop, voc_box = _crop(image, box, crop_size, margin)
                index = counter.setdefault(photo, 0)
                counter[photo] += 1
                name = f"{photo}_{index}"
                path = folder / "images" / class_name / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                crop.save(path)
                if box_format == "voc":
                    _write_voc(
                        folder / "annotations" / class_name / f"{name}.xml",
                        path.name,
                        class_name,
                        voc_box,
                        crop_size,
                    )
                else:
                    zero_based = ",".join(str(v - 1) for v in voc_box)
                    rows.append(f"{class_name}/{path.name},{zero_based}")
    return rows


def _crop(image, box, crop_size, margin):
    """The square crop around a VOC box and the box in its coordinates."""
    from PIL import Image

    x0, y0, x1, y1 = box[0] - 1, box[1] - 1, box[2], box[3]  # Pixel edges.
    longer = max(x1 - x0, y1 - y0)
    side = min(round(longer * (1 + 2 * margin)), image.width, image.height)
    left = round((x0 + x1 - side) / 2)
    top = round((y0 + y1 - side) / 2)
    left = min(max(left, 0), image.width - side)
    top = min(max(top, 0), image.height - side)
    crop = image.crop((left, top, left + side, top + side)).resize(
        (crop_size, crop_size), Image.Resampling.LANCZOS
    )
    scale = crop_size / side
    edges = [
        (x0 - left) * scale,
        (y0 - top) * scale,
        (x1 - left) * scale,
        (y1 - top) * scale,
    ]
    # Edges -> 1-based inclusive pixels: the pixels the edges touch.
    voc_box = (
        max(math.floor(edges[0]) + 1, 1),
        max(math.floor(edges[1]) + 1, 1),
        min(math.ceil(edges[2]), crop_size),
        min(math.ceil(edges[3]), crop_size),
    )
    return crop, voc_box


def _write_voc(path, filename, class_name, voc_box, crop_size):
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "filename").text = filename
    size = ElementTree.SubElement(root, "size")
    for tag, value in (("width", crop_size), ("height", crop_size)):
        ElementTree.SubElement(size, tag).text = str(value)
    ElementTree.SubElement(size, "depth").text = "3"
    element = ElementTree.SubElement(root, "object")
    ElementTree.SubElement(element, "name").text = class_name
    bndbox = ElementTree.SubElement(element, "bndbox")
    for tag, value in zip(
        ("xmin", "ymin", "xmax", "ymax"), voc_box, strict=True
    ):
        ElementTree.SubElement(bndbox, tag).text = str(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(root).write(
        path, encoding="utf-8", xml_declaration=True
    )


ISSUE_TRAIN_PER_CLASS, ISSUE_TEST_PER_CLASS = 560, 138


def _block1_variance(model, images):
    """``(moving, actual)``: mean over channels of ``block1_bn``'s moving
    variance and of the variance of its inputs over ``images``."""
    import keras

    layer = model.get_layer("block1_bn")
    inputs = keras.Model(model.inputs, layer.input).predict(images, verbose=0)
    actual = inputs.reshape(-1, inputs.shape[-1]).var(axis=0)
    moving = layer.moving_variance.numpy()
    return float(moving.mean()), float(actual.mean())


def train_runs(destination, *, source=None, epochs=12, image_size=64, seed=0):
    """Trains the demo pair with the old and the current recipe.

    Returns:
        A list of dicts, one per (architecture, recipe).
    """
    import time
    import warnings

    from explain_attn.data import train_test_datasets
    from explain_attn.models import training

    destination = Path(destination)
    if not (destination / "train" / "images").is_dir():
        write_crops(
            source or default_source(), destination,
            train_per_class=ISSUE_TRAIN_PER_CLASS,
            test_per_class=ISSUE_TEST_PER_CLASS, seed=seed,
        )  # fmt: skip
    train, test = train_test_datasets(destination, image_size=image_size)
    runs = []
    for architecture in ("small_convnet", "small_attention"):
        for recipe, current in (("before", False), ("after", True)):
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model, history = training.train_architecture(
                    architecture, train, epochs=epochs, seed=seed,
                    verbose=0, standardize=current, recalibrate=current,
                )  # fmt: skip
            moving, actual = _block1_variance(model, train.images)
            check = history.check
            runs.append({
                "architecture": architecture, "recipe": recipe,
                "epochs": epochs, "image_size": image_size,
                "train_images": len(train), "test_images": len(test),
                "test_accuracy": training.evaluate(model, test),
                "test_majority_rate": training.majority_rate(test.labels),
                "train_accuracy_training_mode": check.training_mode_accuracy,
                "train_accuracy_inference": check.inference_accuracy,
                "warned": len(caught) > 0,
                "block1_bn_moving_variance": moving,
                "block1_bn_input_variance": actual,
                "seconds": round(time.perf_counter() - start, 1),
            })  # fmt: skip
    return runs


def main(argv=None):
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return _train_main(argv[1:])
    if argv[:1] == ["report"]:
        return _report_main(argv[1:])
    return _crops_main(argv)


def _train_main(argv):
    import json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bccd train")
    parser.add_argument("destination", type=Path)
    parser.add_argument("--source", type=Path, default=default_source())
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    for run in train_runs(
        arguments.destination, source=arguments.source,
        epochs=arguments.epochs,
        image_size=arguments.image_size, seed=arguments.seed,
    ):  # fmt: skip
        print(json.dumps(run), flush=True)


REPORT_METRICS = ("mass_in_mask", "pointing_game", "roc_auc")


def _timed(command):
    """Runs ``command`` (a list), failing loudly; returns its seconds."""
    import subprocess
    import time

    start = time.perf_counter()
    subprocess.run(command, check=True)
    return round(time.perf_counter() - start, 1)


def report_run(destination, *, source=None, epochs=12, image_size=64, seed=0):
    """Trains the demo pair through the CLI and reports on BCCD crops.

    Returns:
        ``(report_json_path, seconds)``: ``seconds`` maps ``"train
        <architecture>"`` and ``"report"`` to wall-clock seconds.
    """
    import sys

    destination = Path(destination)
    crops = destination / "crops"
    if not (crops / "train" / "images").is_dir():
        write_crops(
            source or default_source(), crops,
            train_per_class=ISSUE_TRAIN_PER_CLASS,
            test_per_class=ISSUE_TEST_PER_CLASS, seed=seed,
        )  # fmt: skip
    cli = [sys.executable, "-m", "explain_attn"]
    common = ["--data", str(crops), "--image-size", str(image_size)]
    common += ["--seed", str(seed)]
    seconds, files = {}, {}
    for role, architecture in (
        ("attention", "small_attention"), ("baseline", "small_convnet"),
    ):  # fmt: skip
        files[role] = destination / f"{role}.keras"
        seconds[f"train {architecture}"] = _timed(
            cli + ["train", "--architecture", architecture, *common]
            + ["--epochs", str(epochs), "--output", str(files[role])]
        )  # fmt: skip
    output = destination / "report.html"
    seconds["report"] = _timed(
        cli + ["report", *common, "--attention-model", str(files["attention"])]
        + ["--baseline-model", str(files["baseline"])]
        + ["--output", str(output)]
    )  # fmt: skip
    return output.with_suffix(".json"), seconds


def _percent(row):
    return (
        f"{100 * row['accuracy']:.1f} % "
        f"[{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"
    )


def _value(summary):
    if summary is None or summary.get("mean") is None:
        return "n/a"
    return (
        f"{summary['mean']:.3f} [{summary['ci_low']:.3f}, "
        f"{summary['ci_high']:.3f}]"
    )


def report_summary(data):
    """The lines printed by the ``report`` step, from ``report.json``."""
    labels = np.asarray(data["per_image"]["labels"])
    counts = np.bincount(labels, minlength=len(data["dataset"]["class_names"]))
    lines = [
        f"test images: {labels.size}, majority class "
        f"{data['dataset']['class_names'][int(np.argmax(counts))]}: "
        f"{100 * counts.max() / labels.size:.1f} %"
    ]
    for model in data["models"]:
        lines.append(f"accuracy {model['name']}: {_percent(model['accuracy'])}")
    lines += [f"comparison: {c['sentence']}" for c in data["comparisons"]]
    rows = [(r["label"], r["summary"]["all"]) for r in data["explanations"]]
    rows += [
        (r["label"], r["summary"]["all"]) for r in data.get("baselines", [])
    ]
    lines.append("explanation: " + ", ".join(REPORT_METRICS) + " (mean [95 %])")
    for label, summary in rows:
        values = "; ".join(_value(summary.get(m)) for m in REPORT_METRICS)
        lines.append(f"  {label}: {values}")
    lines += [f"finding: {f['text']}" for f in data.get("findings", [])]
    warnings = [f"warning: {w['text']}" for w in data.get("warnings", [])]
    lines += warnings or ["warnings: none"]
    return lines


def _report_main(argv):
    import json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bccd report")
    parser.add_argument("destination", type=Path)
    parser.add_argument("--source", type=Path, default=default_source())
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    path, seconds = report_run(
        arguments.destination, source=arguments.source,
        epochs=arguments.epochs, image_size=arguments.image_size,
        seed=arguments.seed,
    )  # fmt: skip
    data = json.loads(path.read_text(encoding="utf-8"))
    for line in report_summary(data):
        print(line)
    for step, value in seconds.items():
        print(f"seconds {step}: {value}")


def _crops_main(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bccd",
        description="Write balanced BCCD cell crops with their boxes in "
        "explain-attn's folder layout.",
    )
    parser.add_argument("destination", type=Path)
    parser.add_argument("--source", type=Path, default=default_source())
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--margin", type=float, default=0.25)
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csv", action="store_true", help="boxes.csv")
    arguments = parser.parse_args(argv)
    counts = write_crops(
        arguments.source,
        arguments.destination,
        crop_size=arguments.crop_size,
        margin=arguments.margin,
        train_per_class=arguments.train_per_class,
        test_per_class=arguments.test_per_class,
        seed=arguments.seed,
        box_format="csv" if arguments.csv else "voc",
    )
    for split, by_class in counts.items():
        print(split, ", ".join(f"{k}: {v}" for k, v in by_class.items()))


if __name__ == "__main__":
    main()
