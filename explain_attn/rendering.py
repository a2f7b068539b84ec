"""The jinja2 environment that renders every HTML page of explain-attn."""

import functools
from pathlib import Path

import jinja2

__all__ = ["template_directory", "template_environment"]


def template_directory():
    """Returns the folder holding the HTML templates.

    An installed package carries them as ``explain_attn/templates``; an
    editable install or a source checkout has them in ``<repo>/templates``.
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "base.html").is_file():
            return candidate
    raise FileNotFoundError(
        f"explain-attn's templates are missing: looked in {package} and its "
        "parent. Reinstall the package."
    )


@functools.cache
def template_environment():
    """Returns the shared environment: autoescape on, undefined is an error."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_directory()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
