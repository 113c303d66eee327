"""Named memo models: which checkpoint files memo knows by name, and where it finds them.

A model is found by file name in, in order: the user's model folder
(:func:`memocli.folders.user_weights_dir`, for opt-in models), the folder installed with the
package (``memocli/weights``, holding the default model), and the repository checkout's
``weights/`` (an editable install or a ``PYTHONPATH`` run). Torch-free: nothing here opens a checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import MemoError
from .folders import user_weights_dir

_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class NamedModel:
    """A model memo knows by name.

    Attributes:
        name: what ``--weights`` accepts, e.g. ``r152``.
        filename: the checkpoint's file name in any of :func:`search_dirs`.
        about: one line saying what it is.
        arch: its architecture (:data:`memocli.registry.MODELS`): ``memo train`` fine-tunes
            from it by default when training that architecture.
    """

    name: str
    filename: str
    about: str
    arch: str


CATALOG: tuple[NamedModel, ...] = (
    NamedModel("r50", "memo-vnet-r50.pt",
               "V-Net ResNet-50, the default: natural scenes and photos of every kind; "
               "installed with memo", "vnet_r50"),
    NamedModel("r152", "memo-vnet-r152.pt",
               "V-Net ResNet-152, opt-in: more accurate on natural scenes, untaught on other "
               "photos, ~3x slower; not in the wheel "
               "(see weights/MODEL_CARD.md)", "vnet_r152"),
    NamedModel("accurate", "memo-accurate.json",
               "ensemble of r50 and r152 (a manifest, no weights of its own): the most "
               "accurate on natural scenes, ~2.5x r50's time; needs r152 installed", "ensemble"),
    NamedModel("stable", "memo-stable.json",
               "r50 averaged with its mirror image (a manifest): scores that small crops, "
               "re-saves and mirroring move less, at twice r50's time; installed with memo",
               "ensemble"),
)
DEFAULT_NAME = "r50"


def bundled_weights_dir() -> Path:
    """The models shipped with memo: ``memocli/weights`` when installed from a wheel or
    sdist, else the repository checkout's ``weights/``."""
    installed = _PACKAGE_DIR / "weights"
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / "weights"


def search_dirs() -> list[Path]:
    """The folders a model name is looked up in, first match wins."""
    return [user_weights_dir(), bundled_weights_dir()]


def named(name: str) -> NamedModel | None:
    """The catalogue entry called ``name`` (any case), or None."""
    for model in CATALOG:
        if model.name == name.lower():
            return model
    return None


def locate(model: NamedModel) -> Path | None:
    """The first file of ``model`` in :func:`search_dirs`, or None when it is not installed."""
    for folder in search_dirs():
        candidate = folder / model.filename
        if candidate.is_file():
            return candidate
    return None


def installed_model_of(arch: str) -> Path | None:
    """The installed named model of architecture ``arch`` (what ``memo train`` fine-tunes
    from when given no backbone), or None."""
    for model in CATALOG:
        if model.arch == arch:
            return locate(model)
    return None


def resolve_weights(value: str | os.PathLike | None) -> Path:
    """The checkpoint file that ``--weights VALUE`` means.

    None: ``$MEMO_WEIGHTS`` (a name or a path), else the default model. A catalogue name
    (``r152``) that is not also an existing file: its installed file. Anything else: a path,
    returned as given (the checkpoint loader says what is wrong with it).

    Raises:
        MemoError: a named model that is not installed, saying where to put it.
    """
    if value is None:
        value = os.environ.get("MEMO_WEIGHTS") or DEFAULT_NAME
    path = Path(value)
    model = named(os.fspath(value))
    if model is None or path.exists():
        return path
    found = locate(model)
    if found is None:
        if model.name == DEFAULT_NAME:
            raise MemoError(
                f"the default model {model.filename} is missing from "
                f"{bundled_weights_dir()}: reinstall memo, or pass --weights CHECKPOINT")
        raise MemoError(
            f"model '{model.name}' is not installed: put {model.filename} into "
            f"{user_weights_dir()} (or pass its path to --weights); see `memo models`")
    return found
