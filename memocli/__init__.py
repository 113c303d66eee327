"""memo: rank photos by predicted memorability with V-Net (ResNet + LSTM).

Heavy modules (torch) load lazily so that ``memo --help`` stays instant;
``from memocli import VNet`` still works.
"""

__version__ = "0.1.0"
__all__ = ["MemoError", "VNet", "__version__"]

from .errors import MemoError


def __getattr__(name: str):
    if name == "VNet":
        from .model import VNet

        return VNet
    raise AttributeError(f"module 'memocli' has no attribute {name!r}")
