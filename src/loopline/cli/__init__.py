"""The ``loopline`` command. ``main.py`` builds its Typer app from one module per group."""

from loopline.cli.main import app, main

__all__ = ["app", "main"]
