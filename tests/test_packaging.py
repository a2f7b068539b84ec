"""The templates are found from a wheel install and from a source checkout.

The top-level ``templates/`` folder ships inside the package as
``explain_attn/templates``; a source checkout (and an editable install)
finds it at ``<repo>/templates`` instead.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Build outputs, caches and local artefacts that a build must not see.
_ANYWHERE = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".venv",
    ".pytest_cache",
    ".ruff_cache",
)
_AT_THE_ROOT = {"models", "report.html", "report.json"}  # the demo's outputs


def _NOT_SOURCES(folder, names):
    ignored = set(_ANYWHERE(folder, names))
    if Path(folder) == REPO:
        ignored |= _AT_THE_ROOT & set(names)
    return ignored


def _run(command, *, cwd, timeout=180):
    # Drop PYTHONPATH so that nothing but the environment under test counts.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the checkout (never built in place)."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCES)
    output = root / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(output),
        ],
        cwd=root,
    )
    (path,) = output.glob("explain_attn-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_names(wheel):
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_ships_the_templates_inside_the_package(wheel_names):
    assert "explain_attn/templates/base.html" in wheel_names
    assert "explain_attn/templates/_explorer.html" in wheel_names
    assert "explain_attn/report/report.schema.json" in wheel_names
    shipped = [n for n in wheel_names if "/report/demo_models/" in n]
    assert len(shipped) == 6  # two demo models, with records and metadata
    assert not any(name.startswith("templates/") for name in wheel_names)


def test_wheel_ships_the_package_and_nothing_else(wheel_names):
    assert "explain_attn/__init__.py" in wheel_names
    assert "explain_attn/cli/__init__.py" in wheel_names
    top_level = {name.split("/")[0] for name in wheel_names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {
        "explain_attn"
    }
    assert not any("tests/" in name for name in wheel_names)


def test_wheel_metadata_declares_script_and_dependencies(wheel, wheel_names):
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = (
            archive.read(name).decode()
            for name in wheel_names
            if name.endswith(".dist-info/entry_points.txt")
        )
        (metadata,) = (
            archive.read(name).decode()
            for name in wheel_names
            if name.endswith(".dist-info/METADATA")
        )
    assert "explain-attn = explain_attn.cli:main" in entry_points
    requirements = [
        line.split(": ", 1)[1]
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ")
    ]
    for requirement in (
        "tensorflow>=2.18",
        "numpy",
        "scipy",
        "click",
        "jinja2",
    ):
        assert any(r.startswith(requirement) for r in requirements), (
            requirement,
            requirements,
        )


def test_non_editable_install_finds_the_templates(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    # The dependencies come from the environment running the tests, added
    # to the new one's path after its own site-packages; its .pth files (an
    # editable install of explain-attn among them) are not processed, so
    # only the wheel's explain_attn can be imported.
    own = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
         "['purelib'])"],
        cwd=tmp_path,
    ).strip()  # fmt: skip
    paths = dict.fromkeys(
        sysconfig.get_paths()[key] for key in ("purelib", "platlib")
    )
    (Path(own) / "_dependencies.pth").write_text("\n".join(paths) + "\n")
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--ignore-installed",
            "--no-index",
            str(wheel),
        ],
        cwd=tmp_path,
    )
    script = textwrap.dedent(
        """
        import json

        import explain_attn
        from explain_attn.report import render as rendering

        folder = rendering.template_directory()
        print(json.dumps({
            "package": explain_attn.__file__,
            "templates": str(folder),
            "names": sorted(p.name for p in folder.iterdir()),
            "version": explain_attn.__version__,
        }))
        """
    )
    # From a folder outside the checkout, so that it cannot be imported.
    found = json.loads(
        _run([str(python), "-c", script], cwd=tmp_path).splitlines()[-1]
    )
    site = venv.resolve()
    assert Path(found["package"]).resolve().is_relative_to(site)
    templates = Path(found["templates"]).resolve()
    assert templates.is_relative_to(site)
    assert templates.parts[-2:] == ("explain_attn", "templates")
    assert "base.html" in found["names"]
    assert found["version"] != "0+unknown"

    script_file = venv / "bin" / "explain-attn"
    assert "from explain_attn.cli import main" in script_file.read_text()


def test_source_checkout_finds_the_repository_templates():
    # Load report/render.py straight from the checkout, as a source tree would.
    spec = importlib.util.spec_from_file_location(
        "_checkout_rendering", REPO / "explain_attn" / "report" / "render.py"
    )
    rendering = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rendering)

    folder = rendering.template_directory()
    assert folder == REPO / "templates"
    assert (folder / "base.html").is_file()
    assert rendering.template_environment().get_template("base.html")


def test_imported_package_finds_its_templates():
    from explain_attn.report import render as rendering

    folder = rendering.template_directory()
    assert (folder / "base.html").is_file()
    package = Path(rendering.__file__).resolve().parents[1]
    if package.parent == REPO:  # A source checkout or an editable install.
        assert folder == REPO / "templates"
    else:  # A regular install.
        assert folder == package / "templates"
