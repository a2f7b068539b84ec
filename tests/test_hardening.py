"""Hardening: hostile names, no network, determinism, interruptions."""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from explain_attn import SpatialAttention, save_model
from explain_attn.cli import main
from explain_attn.report import figures as figures_module
from explain_attn.report import render_html, report_from_sources

SHAPE = (16, 16, 3)
# TensorFlow allows only [A-Za-z0-9_.\\/>-] in layer names: ">" is the
# markup character a layer name can carry.
LAYER_PAYLOAD = "attention>b-c"
ATTRIBUTE_PAYLOAD = 'x" onerror="alert(2)'
URL_PAYLOAD = "javascript:alert(3)"
FILE_PAYLOAD = '"><svg onload=alert(4)>'


def _npz(path, rng, count=12, class_names=("a", "b")):
    images = rng.random((count, *SHAPE), dtype=np.float32)
    masks = np.zeros((count, 16, 16), bool)
    masks[:, 4:10, 4:10] = True
    np.savez(
        path,
        images=images,
        labels=np.arange(count) % 2,
        masks=masks,
        class_names=np.array(class_names),
    )
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A model, file, layer and classes whose names carry HTML/JS payloads."""
    folder = tmp_path_factory.mktemp("hostile")
    keras.utils.set_random_seed(11)
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = SpatialAttention(3, name=LAYER_PAYLOAD)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    attention = folder / f"{FILE_PAYLOAD}.keras"
    save_model(keras.Model(inputs, outputs, name="m"), attention)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    baseline = folder / "baseline.keras"
    save_model(
        keras.Model(inputs, keras.layers.Dense(2, name="head")(x)), baseline
    )
    data = _npz(
        folder / "data.npz",
        np.random.default_rng(12),
        class_names=(URL_PAYLOAD, ATTRIBUTE_PAYLOAD),
    )
    report = report_from_sources(
        str(data),
        attention_models=[str(attention)],
        baseline_model=str(baseline),
        num_examples=2,
        verbose=0,
    )
    html_path = folder / "report.html"
    render_html(report, html_path)
    return html_path


_EXPLORER_DATA = re.compile(
    r'<script type="application/json" id="explorer-data">(.*?)</script>',
    re.S,
)


def test_hostile_names_are_text_not_markup(hostile):
    html = hostile.read_text(encoding="utf-8")
    # The explorer's data is JSON in a script element: no "<" can end it
    # early, and its strings are data, never markup.
    (payload,) = _EXPLORER_DATA.findall(html)
    assert "<" not in payload and ">" not in payload
    html = _EXPLORER_DATA.sub("", html)
    for payload in (LAYER_PAYLOAD, ATTRIBUTE_PAYLOAD, FILE_PAYLOAD):
        assert payload not in html
    assert "attention&gt;b-c" in html
    assert "x&#34; onerror=&#34;alert(2)" in html
    assert "&#34;&gt;&lt;svg onload=alert(4)&gt;.keras" in html
    assert "javascript:alert(3)" in html  # shown as text ...
    assert 'href="javascript' not in html  # ... never as a link
    assert "onerror=" not in html.replace("onerror=&#34;alert(2)", "")


def test_hostile_names_run_no_script_in_chromium(hostile):
    from test_browser import _sync_playwright

    sync_playwright = _sync_playwright()
    dialogs = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
            ],
        )
        try:
            page = browser.new_page()
            page.on(
                "dialog", lambda d: (dialogs.append(d.message), d.dismiss())
            )
            page.goto(hostile.as_uri())
            page.wait_for_load_state("load")
            text = page.inner_text("body")
            scripts = page.eval_on_selector_all(
                "script:not(#explorer-data):not(#explorer-code)",
                "s => s.length",
            )
            svg = page.eval_on_selector_all("svg", "s => s.length")
        finally:
            browser.close()
    assert dialogs == []
    assert scripts == 0 and svg == 0
    assert LAYER_PAYLOAD in text and FILE_PAYLOAD in text


@pytest.fixture
def no_network(monkeypatch):
    """Fails any attempt to open a network connection; records attempts."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_demo_path_and_user_folder_make_no_connection(
    no_network, report_inputs, tmp_path
):
    from skimage import io as skio

    folder = tmp_path / "folder"
    rng = np.random.default_rng(13)
    for index in range(8):
        label = "ab"[index % 2]
        for kind in ("images", "masks"):
            (folder / kind / label).mkdir(parents=True, exist_ok=True)
        image = (rng.random(SHAPE) * 255).astype(np.uint8)
        mask = np.zeros((16, 16), np.uint8)
        mask[3:9, 3:9] = 255
        skio.imsave(folder / "images" / label / f"{index}.png", image)
        skio.imsave(
            folder / "masks" / label / f"{index}.png",
            mask,
            check_contrast=False,
        )
    given = report_from_sources(
        str(folder),
        attention_models=[str(report_inputs["attention"])],
        baseline_model=str(report_inputs["baseline"]),
        num_examples=2,
        verbose=0,
    )
    trained = report_from_sources(
        str(_npz(tmp_path / "train.npz", rng, count=40)),
        epochs=1,
        num_examples=2,
        cache_dir=tmp_path / "cache",
        verbose=0,
    )
    assert given.data["dataset"]["num_images"] == 8
    assert {m["training"]["source"] for m in trained.data["models"]} == {
        "trained"
    }
    assert no_network == []


def test_same_command_twice_gives_the_same_json(report_command, tmp_path):
    arguments = [
        *report_command,
        "--num-examples",
        "2",
        "--seed",
        "5",
    ]
    written = []
    for run in ("first", "second"):
        output = tmp_path / f"{run}.html"
        result = CliRunner().invoke(main, [*arguments, "--output", str(output)])
        assert result.exit_code == 0, result.output
        written.append(output.with_suffix(".json").read_bytes())
    assert written[0] == written[1]
    assert json.loads(written[0])["settings"]["seed"] == 5


def test_interrupted_rendering_writes_nothing(
    report_command, tmp_path, monkeypatch
):
    output = tmp_path / "report.html"
    output.write_text("previous report\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures_module, "example_figure", interrupted)
    result = CliRunner().invoke(
        main,
        [
            *report_command,
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 130
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Interrupted (Ctrl-C) during rendering the report.")
    numbers = output.with_suffix(".json")
    assert line.endswith(
        f"Kept: the earlier {output}, unchanged; no {numbers}."
    )
    assert output.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_killed_during_training_leaves_nothing_trusted(tmp_path):
    data = _npz(tmp_path / "data.npz", np.random.default_rng(14), count=60)
    cache = tmp_path / "cache"
    env = {**os.environ, "EXPLAIN_ATTN_CACHE_DIR": str(cache)}
    command = [
        sys.executable,
        "-m",
        "explain_attn",
        "report",
        "--data",
        str(data),
        "--epochs",
        "400",
        "--num-examples",
        "2",
        "--output",
        str(tmp_path / "report.html"),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        seen = b""
        while b"Epoch 3/" not in seen:
            chunk = process.stdout.read1(4096)
            assert chunk, "the run ended before training"
            seen += chunk
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=60)
        process.stdout.close()

    assert not (tmp_path / "report.html").exists()
    assert not (tmp_path / "report.json").exists()
    assert list(cache.rglob("meta.json")) == []

    # The next run trusts nothing half-made: it trains and caches anew.
    report = report_from_sources(
        str(data), epochs=2, num_examples=2, cache_dir=cache, verbose=0
    )
    assert {m["training"]["source"] for m in report.data["models"]} == {
        "trained"
    }
    again = report_from_sources(
        str(data), epochs=2, num_examples=2, cache_dir=cache, verbose=0
    )
    assert {m["training"]["source"] for m in again.data["models"]} == {"cache"}


@pytest.mark.parametrize("damage", ["truncate", "alter", "no_meta"])
def test_damaged_cache_entries_are_retrained(tmp_path, damage):
    from explain_attn.data import load_dataset
    from explain_attn.report.cache import train_or_load

    data = load_dataset(
        str(_npz(tmp_path / "d.npz", np.random.default_rng(15), count=20))
    )
    settings = {
        "epochs": 1,
        "seed": 0,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "cache_dir": tmp_path / "cache",
        "verbose": 0,
    }
    _, first = train_or_load("small_convnet", data, **settings)
    (entry,) = (tmp_path / "cache").iterdir()
    model_file = entry / "model.keras"
    if damage == "truncate":
        model_file.write_bytes(model_file.read_bytes()[:1000])
    elif damage == "alter":
        content = bytearray(model_file.read_bytes())
        content[-100] ^= 0xFF
        model_file.write_bytes(bytes(content))
    else:
        (entry / "meta.json").unlink()

    model, second = train_or_load("small_convnet", data, **settings)
    _, third = train_or_load("small_convnet", data, **settings)

    assert first["source"] == "trained"
    assert second["source"] == "trained"
    assert third["source"] == "cache"
    assert model.count_params() > 0
