"""The report's figures drawn in a helper process (`explain_attn.report.
drawing`): the same page, no TensorFlow there, and what a lost helper or
a failing figure leaves."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import tiny_report_arguments

from explain_attn.report.drawing import Drawer, Drawing, drawing_process
from explain_attn.report.figures import example_figure

IMPORTED = "sorted(__import__('sys').modules)"
"""What the helper has imported (`eval` there: a builtin, so the helper
imports nothing of the tests to run it)."""


def _example():
    rng = np.random.default_rng(0)
    image = rng.random((16, 16, 3), dtype=np.float32)
    mask = np.zeros((16, 16), bool)
    mask[4:10, 5:12] = True
    overlays = [rng.random((16, 16), dtype=np.float32) for _ in range(2)]
    return Drawing(example_figure, (image, mask, overlays, ["1 a", "2 b"]))


def test_the_helper_draws_what_this_process_draws_without_tensorflow():
    drawing = _example()
    with drawing_process() as drawer:
        drawer.submit("gallery", {"0": drawing})
        drawer.submit(
            "probe",
            {"modules": Drawing(eval, (IMPORTED,)), "pid": Drawing(os.getpid)},
        )
        figures = drawer.figures()
        drawn, modules = figures["gallery"]["0"], figures["probe"]["modules"]
        assert figures["probe"]["pid"] != os.getpid()  # drawn there
    assert drawn.startswith("data:image/png;base64,")
    assert drawn == drawing()
    assert "matplotlib" in modules
    assert "explain_attn.report.figures" in modules
    assert not {"tensorflow", "keras"} & set(modules)


def test_without_a_helper_each_figure_is_drawn_once_when_read():
    calls = []

    def counted():
        calls.append(1)
        return "uri"

    drawer = Drawer()
    drawer.submit("section", {"figure": Drawing(counted)})
    figures = drawer.figures()["section"]
    assert calls == []
    assert figures["figure"] == figures.get("figure") == "uri"
    assert calls == [1]
    assert "figure" in figures and figures.get("other") is None


def test_a_lost_helper_leaves_its_figures_to_this_process():
    drawing = _example()
    with drawing_process() as drawer:
        drawer.submit("helper", {"pid": Drawing(os.getpid)})
        pid = drawer.figures()["helper"]["pid"]
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        drawer.submit("gallery", {"0": drawing})
        drawn = drawer.figures()["gallery"]["0"]
    assert drawn == drawing()


def test_a_figure_s_own_error_is_raised_as_it_would_be_here():
    with drawing_process() as drawer:
        drawer.submit("section", {"figure": Drawing(int, ("not a number",))})
        figures = drawer.figures()["section"]
        with pytest.raises(ValueError, match="invalid literal for int"):
            figures["figure"]


def test_an_interrupted_block_ends_the_helper_quietly(capfd):
    with pytest.raises(KeyboardInterrupt):
        with drawing_process() as drawer:
            drawer.submit("helper", {"pid": Drawing(os.getpid)})
            pid = drawer.figures()["helper"]["pid"]
            os.kill(pid, signal.SIGINT)  # Ctrl-C reaches the helper too.
            raise KeyboardInterrupt
    for _ in range(100):
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid)
    assert "Traceback" not in capfd.readouterr().err


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = re.sub(r"^.*\) ", "", stat.read()).split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # A zombie has ended; its parent reaps it later.


def test_a_report_drawn_by_the_helper_is_the_same_page(
    report_inputs, tiny_report
):
    from explain_attn.report import report_from_sources, report_html

    report = tiny_report[0]
    with drawing_process() as drawer:
        arguments = tiny_report_arguments(report_inputs)
        helped = report_from_sources(**arguments, drawer=drawer)
        page = report_html(helped)
    assert page.count("data:image/png;base64,") >= 6
    assert page.replace(helped.created, report.created) == report_html(report)


def test_where_no_process_starts_the_figures_are_drawn_here(monkeypatch):
    import concurrent.futures

    def refused(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refused)
    drawing = _example()
    with drawing_process() as drawer:
        assert drawer.executor is None
        drawer.submit("gallery", {"0": drawing})
        assert drawer.figures()["gallery"]["0"] == drawing()


KILLED = """
import os, time
from explain_attn.report.drawing import Drawing, drawing_process
with drawing_process() as drawer:
    drawer.submit("helper", {"pid": Drawing(os.getpid)})
    print(drawer.figures()["helper"]["pid"], flush=True)
    time.sleep(120)
"""


def test_the_helper_ends_when_the_command_is_killed():
    with subprocess.Popen(
        [sys.executable, "-c", KILLED], stdout=subprocess.PIPE, text=True
    ) as command:
        try:
            pid = int(command.stdout.readline())
            assert pid != command.pid and _alive(pid)
        finally:
            command.kill()
    for _ in range(100):
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid)


def test_a_drawing_the_helper_cannot_get_is_drawn_here():
    def local():  # pickle cannot name a function defined in another
        return os.getpid()

    with drawing_process() as drawer:
        drawer.submit("section", {"here": Drawing(local)})
        assert drawer.figures()["section"]["here"] == os.getpid()


def test_ctrl_c_while_the_page_waits_for_the_helper_writes_nothing(
    report_command, tmp_path, monkeypatch
):
    from click.testing import CliRunner

    from explain_attn.cli import main
    from explain_attn.report import drawing

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(drawing._Pending, "result", interrupted)
    output = tmp_path / "report.html"
    output.write_text("previous report\n")
    result = CliRunner().invoke(main, [*report_command, "--output", output])
    assert result.exit_code == 130
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Interrupted (Ctrl-C) during rendering the report.")
    assert output.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
