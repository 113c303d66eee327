"""The one exception type library code raises for problems a user can fix."""


class MemoError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits 1."""
