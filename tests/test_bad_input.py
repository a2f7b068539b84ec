"""The bad-input catalogue: every command, every kind of bad input.

Each case must give exit code 2, exactly one line on stderr naming the
problem (and, in the message, the fix), no Python traceback, and no output
file; an output file that already existed is left untouched.
"""

import os
import struct
import subprocess
import sys
import warnings
import zlib

import keras
import numpy as np
import pytest
from catalogue import assert_bad_input
from skimage import io as skio

from explain_attn import build_model, save_model

SHAPE = (16, 16, 3)


def _png_header_only(path, width, height):
    """A PNG that declares a huge size but holds almost no data."""

    def chunk(kind, data):
        body = kind + data
        return (
            struct.pack(">I", len(data))
            + body
            + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def _folder(root, name, files):
    """Writes ``{relative path: array or bytes}`` under ``root/name``."""
    base = root / name
    for relative, content in files.items():
        path = base / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            skio.imsave(path, content, check_contrast=False)
    base.mkdir(exist_ok=True)
    return base


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    paths = {}

    keras.utils.set_random_seed(3)
    for name, architecture in (
        ("attention", "small_attention"),
        ("baseline", "small_convnet"),
    ):
        paths[name] = root / f"{name}.keras"
        save_model(
            build_model(architecture, input_shape=SHAPE, num_classes=2),
            paths[name],
        )
    inputs = keras.Input(SHAPE)
    flat = keras.layers.Dense(2)(keras.layers.Flatten()(inputs))
    paths["no_4d"] = root / "no_4d.keras"
    save_model(keras.Model(inputs, flat), paths["no_4d"])
    lambda_output = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    paths["lambda"] = root / "lambda.keras"
    save_model(keras.Model(inputs, lambda_output), paths["lambda"])

    class Unregistered(keras.layers.Layer):
        def call(self, x):
            return x + 1.0

    paths["custom_h5"] = root / "custom.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that .h5 is legacy.
        keras.Model(inputs, Unregistered()(inputs)).save(paths["custom_h5"])
    paths["text"] = root / "text.keras"
    paths["text"].write_text("not a model\n")
    paths["empty"] = root / "empty.keras"
    paths["empty"].write_bytes(b"")
    whole = paths["attention"].read_bytes()
    paths["truncated"] = root / "truncated.keras"
    paths["truncated"].write_bytes(whole[: len(whole) // 2])
    paths["savedmodel"] = root / "savedmodel"
    (paths["savedmodel"] / "variables").mkdir(parents=True)
    (paths["savedmodel"] / "saved_model.pb").write_bytes(b"\x08\x01")
    paths["onnx"] = root / "model.onnx"
    paths["onnx"].write_bytes(b"onnx")

    def image(size=16, channels=3):
        return (rng.random((size, size, channels)) * 255).astype(np.uint8)

    def mask(size=16):
        values = np.zeros((size, size), np.uint8)
        values[4:10, 4:10] = 255
        return values

    good = {"images/a/x.png": image(), "images/b/y.png": image()}
    paths["empty_dir"] = _folder(root, "empty_dir", {})
    paths["no_classes"] = _folder(root, "no_classes", {"images/x.png": image()})
    paths["mixed"] = _folder(
        root,
        "mixed",
        {
            **good,
            "images/a/big.png": image(24),
            "images/b/gray.png": image()[..., 0],
        },
    )
    paths["not_image"] = _folder(
        root, "not_image", {**good, "images/a/notes.png": b"hello, world\n"}
    )
    paths["zero_byte"] = _folder(
        root, "zero_byte", {**good, "images/b/empty.png": b""}
    )
    encoded = (root / "zero_byte/images/a/x.png").read_bytes()
    paths["truncated_png"] = _folder(
        root, "truncated_png", {**good, "images/a/cut.png": encoded[:40]}
    )
    paths["orphan_mask"] = _folder(
        root,
        "orphan_mask",
        {
            **good,
            "masks/a/x.png": mask(),
            "masks/b/y.png": mask(),
            "masks/b/ghost.png": mask(),
        },
    )
    paths["mask_size"] = _folder(
        root,
        "mask_size",
        {**good, "masks/a/x.png": mask(), "masks/b/y.png": mask(8)},
    )

    def voc(box):
        corners = "".join(
            f"<{tag}>{value}</{tag}>"
            for tag, value in zip(
                ("xmin", "ymin", "xmax", "ymax"), box, strict=True
            )
        )
        return (
            f"<annotation><object><bndbox>{corners}</bndbox></object>"
            "</annotation>"
        ).encode()

    def boxed(name, bad_xml):
        return _folder(
            root,
            name,
            {
                **good,
                "annotations/a/x.xml": voc((2, 2, 9, 9)),
                "annotations/b/y.xml": bad_xml,
            },
        )

    paths["voc_malformed"] = boxed("voc_malformed", b"<annotation><object>")
    paths["voc_entity"] = boxed(
        "voc_entity",
        b'<!DOCTYPE a [<!ENTITY e "x">]><annotation>&e;</annotation>',
    )
    paths["voc_inverted"] = boxed("voc_inverted", voc((9, 2, 2, 9)))
    paths["voc_outside"] = boxed("voc_outside", voc((20, 20, 30, 30)))
    header = b"file,x_min,y_min,x_max,y_max\n"
    for name, rows in (
        ("csv_columns", b"file,x_min,y_min\na/x.png,1,1\n"),
        ("csv_number", header + b"a/x.png,1,1,2,2\nb/y.png,1,1,2,x\n"),
        ("csv_unknown", header + b"a/x.png,1,1,2,2\nb/ghost.png,1,1,2,2\n"),
        ("csv_missing", header + b"a/x.png,1,1,2,2\n"),
    ):
        paths[name] = _folder(root, name, {**good, "boxes.csv": rows})
    paths["bomb"] = _folder(root, "bomb", good)
    _png_header_only(paths["bomb"] / "images/a/bomb.png", 60000, 60000)
    paths["missing_arrays"] = root / "missing.npz"
    np.savez(paths["missing_arrays"], images=np.zeros((2, *SHAPE)))
    paths["mismatched"] = root / "mismatched.npz"
    np.savez(
        paths["mismatched"],
        images=np.zeros((3, *SHAPE)),
        labels=np.zeros(2, int),
        class_names=np.array(["a", "b"]),
    )
    paths["bad_labels"] = root / "bad_labels.npz"
    np.savez(
        paths["bad_labels"],
        images=np.zeros((2, *SHAPE)),
        labels=np.array([0, 5]),
        class_names=np.array(["a", "b"]),
    )
    paths["good16"] = root / "good16.npz"
    np.savez(
        paths["good16"],
        images=rng.random((4, *SHAPE)),
        labels=np.array([0, 1, 0, 1]),
        class_names=np.array(["a", "b"]),
    )
    paths["missing"] = root / "does-not-exist.keras"
    paths["missing_data"] = root / "no-such-data"
    paths["root"] = root
    return paths


# (id, command line with {placeholders}, text the message must contain)
CASES = [
    # Model files, through `layers`.
    ("layers-missing", "layers {missing}", "Model file not found"),
    ("layers-text", "layers {text}", "not a Keras archive"),
    ("layers-empty", "layers {empty}", "not a Keras archive"),
    ("layers-truncated", "layers {truncated}", "not a Keras archive"),
    ("layers-savedmodel", "layers {savedmodel}", "is a directory"),
    ("layers-suffix", "layers {onnx}", "expected a '.keras' file"),
    ("layers-custom-h5", "layers {custom_h5}", "custom layer"),
    ("layers-lambda", "layers {lambda}", "--unsafe-load"),
    # Data and options, through `maps`.
    (
        "maps-unknown-layer",
        "maps {attention} --data {good16} --layer gaet --output {out}.npz",
        "No layer named 'gaet'",
    ),
    (
        "maps-shape",
        "maps {attention} --data sample --limit 8 --output {out}.npz",
        "(32, 32, 3)",
    ),
    (
        "maps-limit-zero",
        "maps {attention} --data {good16} --limit 0 --output {out}.npz",
        "--limit",
    ),
    (
        "maps-batch-zero",
        "maps {attention} --data {good16} --batch-size 0 --output {out}.npz",
        "--batch-size",
    ),
    (
        "maps-missing-data",
        "maps {attention} --data {missing_data} --output {out}.npz",
        "no-such-data",
    ),
    (
        "maps-empty-dir",
        "maps {attention} --data {empty_dir} --output {out}.npz",
        "empty_dir",
    ),
    (
        "maps-no-classes",
        "maps {attention} --data {no_classes} --output {out}.npz",
        "class",
    ),
    (
        "maps-mixed-sizes",
        "maps {attention} --data {mixed} --output {out}.npz",
        "different sizes",
    ),
    (
        "maps-not-image",
        "maps {attention} --data {not_image} --output {out}.npz",
        "notes.png",
    ),
    (
        "maps-zero-byte",
        "maps {attention} --data {zero_byte} --output {out}.npz",
        "empty.png",
    ),
    (
        "maps-truncated-image",
        "maps {attention} --data {truncated_png} --output {out}.npz",
        "cut.png",
    ),
    (
        "maps-orphan-mask",
        "maps {attention} --data {orphan_mask} --output {out}.npz",
        "ghost",
    ),
    (
        "maps-mask-size",
        "maps {attention} --data {mask_size} --output {out}.npz",
        "y.png",
    ),
    (
        "maps-voc-malformed",
        "maps {attention} --data {voc_malformed} --output {out}.npz",
        "y.xml' is not well-formed XML",
    ),
    (
        "maps-voc-entity",
        "maps {attention} --data {voc_entity} --output {out}.npz",
        "DOCTYPE or ENTITY",
    ),
    (
        "maps-voc-inverted",
        "maps {attention} --data {voc_inverted} --output {out}.npz",
        "inverted",
    ),
    (
        "maps-voc-outside",
        "maps {attention} --data {voc_outside} --output {out}.npz",
        "outside the 16x16 image",
    ),
    (
        "maps-csv-columns",
        "maps {attention} --data {csv_columns} --output {out}.npz",
        "lacks the column(s) x_max, y_max",
    ),
    (
        "maps-csv-number",
        "maps {attention} --data {csv_number} --output {out}.npz",
        "y_max must be a number",
    ),
    (
        "maps-csv-unknown-file",
        "maps {attention} --data {csv_unknown} --output {out}.npz",
        "ghost.png",
    ),
    (
        "maps-boxes-missing",
        "maps {attention} --data {csv_missing} --output {out}.npz",
        "have no mask or boxes",
    ),
    (
        "maps-bomb",
        "maps {attention} --data {bomb} --output {out}.npz",
        "bomb.png",
    ),
    (
        "maps-npz-missing",
        "maps {attention} --data {missing_arrays} --output {out}.npz",
        "labels",
    ),
    (
        "maps-npz-lengths",
        "maps {attention} --data {mismatched} --output {out}.npz",
        "mismatched.npz",
    ),
    (
        "maps-npz-labels",
        "maps {attention} --data {bad_labels} --output {out}.npz",
        "labels",
    ),
    (
        "maps-output-dir",
        "maps {attention} --data {good16} --output {root}/nowhere/m.npz",
        "does not exist",
    ),
    (
        "maps-output-readonly",
        "maps {attention} --data {good16} --output /sys/m.npz",
        "not writable",
    ),
    (
        "maps-output-suffix",
        "maps {attention} --data {good16} --output {out}.txt",
        "'.npz'",
    ),
    # The report.
    (
        "report-examples-zero",
        "report --data {good16} --attention-model "
        "{attention} --baseline-model {baseline} --num-examples 0 "
        "--output {out}.html",
        "--num-examples",
    ),
    (
        "report-examples-negative",
        "report --data {good16} --attention-model "
        "{attention} --baseline-model {baseline} --num-examples -3 "
        "--output {out}.html",
        "--num-examples",
    ),
    ("report-epochs-zero", "report --epochs 0 --output {out}.html", "--epochs"),
    (
        "report-no-attention",
        "report --data {good16} --attention-model "
        "{baseline} --baseline-model {baseline} --output {out}.html",
        "explain-attn layers",
    ),
    (
        "report-baseline-no-4d",
        "report --data {good16} --attention-model "
        "{attention} --baseline-model {no_4d} --output {out}.html",
        "no layer with a 4-D output",
    ),
    (
        "report-lambda",
        "report --data {good16} --attention-model {lambda} "
        "--baseline-model {baseline} --output {out}.html",
        "--unsafe-load",
    ),
    (
        "report-unknown-layer",
        "report --data {good16} --attention-model "
        "{attention} --baseline-model {baseline} --layer nope "
        "--output {out}.html",
        "No layer named 'nope'",
    ),
    (
        "report-shape",
        "report --data sample --attention-model {attention} "
        "--baseline-model {baseline} --output {out}.html",
        "(16, 16, 3)",
    ),
    (
        "report-only-attention",
        "report --data {good16} --attention-model "
        "{attention} --output {out}.html",
        "--baseline-model",
    ),
    (
        "report-output-dir",
        "report --output {root}/nowhere/r.html",
        "does not exist",
    ),
    ("report-output-readonly", "report --output /sys/r.html", "not writable"),
    # Explanation methods.
    (
        "maps-unknown-method",
        "maps {attention} --data {good16} --method gradcam --output {out}.npz",
        "Unknown explanation method 'gradcam'",
    ),
    (
        "maps-method-not-a-cam",
        "maps {attention} --data {good16} --method attention "
        "--output {out}.npz",
        "not a CAM method",
    ),
    (
        "maps-no-attention-no-method",
        "maps {baseline} --data {good16} --output {out}.npz",
        "has no attention layer",
    ),
    (
        "maps-cam-on-dense-layer",
        "maps {baseline} --data {good16} --method layer_cam "
        "--cam-layer predictions --output {out}.npz",
        "needs a 4-D output",
    ),
    (
        "report-unknown-method",
        "report --data {good16} --attention-model {attention} "
        "--baseline-model {baseline} --method nope --output {out}.html",
        "Unknown explanation method 'nope'",
    ),
    (
        "report-method-not-a-cam",
        "report --data {good16} --attention-model {attention} "
        "--baseline-model {baseline} --method attention --output {out}.html",
        "not a CAM method",
    ),
    # Training.
    (
        "train-architecture",
        "train --architecture nope --data {good16} --output {out}.keras",
        "nope",
    ),
    (
        "train-epochs-zero",
        "train --architecture small_convnet --data "
        "{good16} --epochs 0 --output {out}.keras",
        "--epochs",
    ),
    (
        "train-missing-data",
        "train --architecture small_convnet --data "
        "{missing_data} --output {out}.keras",
        "no-such-data",
    ),
    (
        "train-output-suffix",
        "train --architecture small_convnet --data {good16} --output {out}.h5",
        ".keras",
    ),
    (
        "train-output-dir",
        "train --architecture small_convnet --data "
        "{good16} --output {root}/nowhere/m.keras",
        "does not exist",
    ),
]


def _arguments(template, bad, output):
    values = {key: str(value) for key, value in bad.items()}
    return template.format(out=output, **values).split()


@pytest.mark.parametrize(
    ("template", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_in_process(bad, tmp_path, template, message):
    output = tmp_path / "result"
    assert_bad_input(
        _arguments(template, bad, output), message, output, tmp_path
    )


SUBPROCESS_CASES = [
    "layers-truncated",
    "maps-bomb",
    "report-lambda",
    "train-epochs-zero",
]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(bad, tmp_path, case_id):
    template, message = next(c[1:] for c in CASES if c[0] == case_id)
    output = tmp_path / "result"
    existing = {}
    for suffix in (".npz", ".html", ".keras", ".json"):
        path = output.with_name(output.name + suffix)
        path.write_text("previous run\n")
        existing[path] = path.read_text()
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "explain_attn",
            *_arguments(template, bad, output),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert message in lines[0]
    for path, text in existing.items():
        assert path.read_text() == text
    assert sorted(tmp_path.iterdir()) == sorted(existing)
