"""``memo score``, ``memo export`` and ``memo cache``."""

COMMANDS: list = []
