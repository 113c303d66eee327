"""The ``memo`` command-line app: Click only (parse, call the library, print)."""

from .main import cli

__all__ = ["cli"]
