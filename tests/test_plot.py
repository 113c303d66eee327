"""The lr-find plot: title, axis labels and tick labels each in a place of their own."""

import numpy as np
from PIL import Image

from memocli.plot import plot_log_x


def dark(pixels: np.ndarray) -> np.ndarray:
    return pixels.min(axis=-1) < 128


def test_title_and_axis_labels_do_not_overlap(tmp_path):
    path = tmp_path / "lr.png"
    xs = [10 ** (-6 + 6 * i / 99) for i in range(100)]
    plot_log_x(path, xs, [1 / (1 + i) for i in range(100)], "LR range test", "learning rate",
               "loss (smoothed)")
    ink = dark(np.asarray(Image.open(path).convert("RGB")))
    h, w = ink.shape
    title_rows = ink[:32]
    assert title_rows[:, w // 3: 2 * w // 3].any()  # the title, centred over the plot
    assert not title_rows[:, :w // 4].any()  # nothing else up there on the left
    y_label = ink[h // 4: 3 * h // 4, :20]  # the y label reads upwards in its own strip
    assert y_label.any() and y_label.sum(axis=0).max() > y_label.sum(axis=1).max()
