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


def test_the_plot_is_written_as_every_output_is(tmp_path):
    link = tmp_path / "lr.png"
    link.symlink_to(tmp_path / "plots" / "lr-2026.png")  # dangling, into a missing folder
    plot_log_x(link, [1e-5, 1e-3, 1e-1], [3.0, 2.0, 2.5], "LR range test", "learning rate",
               "loss")
    assert link.is_symlink()
    with Image.open(tmp_path / "plots" / "lr-2026.png") as img:
        assert img.format == "PNG" and img.size == (800, 500)
