"""The ``forgetwatch`` command line, one module per command; ``main`` is the entry point."""

from forgetwatch.cli.main import main

__all__ = ["main"]
