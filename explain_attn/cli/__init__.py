"""The ``explain-attn`` command line: a thin layer over the Python API.

Each command parses its arguments, calls the library and prints. Bad input,
whether caught by click or raised by the library as `ValueError` or
`TypeError`, becomes one line on stderr, ``Error: <what and how to fix>``,
and exit code 2, without a traceback.

One module per command; `common` holds what they share. A new command is a
`click.command` in its own module, added to `main` below.
"""

import click

from explain_attn import __version__
from explain_attn.cli.common import InputError, OneLineErrors
from explain_attn.cli.compare import compare_command
from explain_attn.cli.layers import layers_command
from explain_attn.cli.maps import maps_command
from explain_attn.cli.merge import merge_command
from explain_attn.cli.report import report_command
from explain_attn.cli.train import train_command

__all__ = ["InputError", "main"]


@click.group(
    cls=OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="explain-attn")
def main():
    """Attention maps, Grad-CAM and shareable reports for Keras ConvNets."""


for _command in (
    compare_command,
    layers_command,
    maps_command,
    merge_command,
    report_command,
    train_command,
):
    main.add_command(_command)
