"""The exceptions library code raises for what a user should be told in one line."""


class MemoError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits 1."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, carrying a one-line summary of what was saved (the CLI prints it, exits 130)."""
