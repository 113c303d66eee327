"""``memo explain``: Grad-CAM heatmaps."""

COMMANDS: list = []
