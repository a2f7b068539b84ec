"""The ``explain-attn`` command line: a thin layer over the Python API.

Each command parses its arguments, calls the library and prints. Library
errors (`ValueError`, `TypeError`) become one line on stderr and exit code 2.
"""

import functools

import click

from explain_attn import __version__


def _user_errors(function):
    """Turns library input errors into a one-line click usage error."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ValueError, TypeError) as error:
            message = " ".join(str(error).split())
            raise click.UsageError(message) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="explain-attn")
def main():
    """Attention maps, Grad-CAM and shareable reports for Keras ConvNets."""


# Commands are registered below, one function each.
