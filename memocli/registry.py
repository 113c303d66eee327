"""Named V-Net configurations: the one place that says what each architecture is.

Preprocessing (input size, normalisation) is built from a :class:`ModelConfig`, never
hard-coded at call sites, and every checkpoint stores the config it was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .errors import MemoError

#: The version of the decoding and resizing every model shares (:func:`memocli.decode.load_image`,
#: :func:`memocli.data.eval_transform`). It is part of every scoring model id, so bump it
#: whenever either changes what the network sees: cached scores are then recomputed, never
#: mixed (``tests/test_preprocessing_version.py`` fails on a change without a bump). 1 was
#: the unversioned ids (``name-digest``) before it existed.
PREPROCESSING_VERSION = 2

#: The ResNet stages of every V-Net backbone, in forward order (torchvision's names).
STAGES = ("layer1", "layer2", "layer3", "layer4")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Training augmentations (``--augment``, see :func:`memocli.data.train_transform`):
#: ``flip`` shows each image or its mirror (the two views the activation cache holds),
#: ``crop`` resizes 1.14x larger, crops at random and mirrors at random, ``reframe`` crops
#: a little off at random (a person's re-crop, at the scale scoring sees) and mirrors at
#: random.
AUGMENTATIONS = ("flip", "crop", "reframe")
#: What the two views of ``--consistency`` are: two independent draws of the augmentation,
#: or one reframe and the same frame nudged by a few pixels (:class:`memocli.data.NudgedViews`).
CONSISTENCY_VIEWS = ("independent", "nudged")

#: The widest input low-pass a model may ask for (``ModelConfig.input_blur``), in pixels.
MAX_INPUT_BLUR = 4.0


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a V-Net and feed it correctly.

    Attributes:
        name: registry name, e.g. ``vnet_r50``.
        backbone: torchvision ResNet constructor name, or ``tiny`` (a one-block-per-stage
            bottleneck ResNet used by tests).
        input_size: side of the square network input in pixels.
        mean: per-channel mean subtracted from [0, 1] RGB input.
        std: per-channel std the input is divided by.
        proj_channels: channels of each block's 1x1 projection (the paper's 128).
        lstm_hidden: size of the LSTM hidden state.
        stage_blocks: residual blocks per ResNet stage.
        heads: names of the V-Net heads over the one backbone (one per training source, or
            ensemble members); several heads are combined by a mixer.
        mixer_domains: how many gated domains the mixer of a multi-head model has.
        input_blur: sigma, in network-input pixels, of a Gaussian low-pass the network
            applies before its stem (whose first convolution is strided); 0 for none.
        blur_strides: low-pass (binomial 3x3) the input of every strided convolution of the
            residual stages, blur-then-subsample as in Zhang 2019 ("Making convolutional
            networks shift-invariant again"). With ``input_blur`` it damps the aliasing
            that makes a crop of a few pixels move a score (docs/scoring.md).
    """

    name: str
    backbone: str
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    proj_channels: int = 128
    lstm_hidden: int = 128
    stage_blocks: tuple[int, ...] = field(default=(3, 4, 6, 3))
    heads: tuple[str, ...] = ("score",)
    mixer_domains: int = 1
    input_blur: float = 0.0
    blur_strides: bool = False

    def to_dict(self) -> dict:
        """Plain-data form for checkpoints (lists, not tuples)."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise MemoError(f"unknown model config fields: {', '.join(sorted(unknown))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def with_normalisation(self, mean, std) -> ModelConfig:
        """The same architecture fed with another input normalisation."""
        return replace(self, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))

    def with_heads(self, heads: tuple[str, ...], mixer_domains: int = 1) -> ModelConfig:
        """The same backbone and preprocessing with other heads."""
        if not heads or len(set(heads)) != len(heads):
            raise MemoError(f"head names must be distinct and non-empty: {list(heads)}")
        return replace(self, heads=tuple(heads), mixer_domains=mixer_domains)

    def with_antialias(self, input_blur: float, blur_strides: bool) -> ModelConfig:
        """The same weights' architecture with other low-passes (see the attributes)."""
        if not 0 <= input_blur <= MAX_INPUT_BLUR:
            raise MemoError(f"input blur must be between 0 and {MAX_INPUT_BLUR:g} pixels, "
                            f"not {input_blur:g}")
        return replace(self, input_blur=float(input_blur), blur_strides=bool(blur_strides))


MODELS: dict[str, ModelConfig] = {
    "vnet_r50": ModelConfig("vnet_r50", "resnet50", stage_blocks=(3, 4, 6, 3)),
    "vnet_r101": ModelConfig("vnet_r101", "resnet101", stage_blocks=(3, 4, 23, 3)),
    "vnet_r152": ModelConfig("vnet_r152", "resnet152", stage_blocks=(3, 8, 36, 3)),
    "vnet_tiny": ModelConfig(
        "vnet_tiny", "tiny", input_size=64, proj_channels=16, lstm_hidden=16,
        stage_blocks=(1, 1, 1, 1),
    ),
}
DEFAULT_MODEL = "vnet_r50"


def get_config(name: str) -> ModelConfig:
    """Look up a registered architecture by name."""
    try:
        return MODELS[name]
    except KeyError:
        raise MemoError(
            f"unknown model '{name}'; choose one of: {', '.join(MODELS)}"
        ) from None
