"""Runs the command line interface: ``python -m explain_attn``."""

from explain_attn.cli import main

if __name__ == "__main__":
    main()
