"""OpenVINO, imported once and quietly: the module, its release, the process's one Core.

OpenVINO sends anonymous usage data to Google Analytics by default, from ``import openvino``
on, and writes a client id under ``~/intel``. memo sends nothing anywhere: it imports
OpenVINO through :func:`import_openvino`, which hides the telemetry package so that OpenVINO
falls back to its own no-op stub. Torch-free; :mod:`memocli.engines` decides when OpenVINO
runs, :mod:`memocli.ov_network` and :mod:`memocli.ov_store` use it from here.
"""

from __future__ import annotations

import functools
import importlib.util
import sys


def import_openvino():
    """The ``openvino`` module, imported with its usage telemetry off (see above)."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # import fails -> OpenVINO's stub
    import openvino

    return openvino


@functools.cache
def openvino_core():
    """The process's one OpenVINO ``Core``, shared by every converted network: OpenVINO
    expects one per application, and a Core per model has crashed processes that load many
    (openvinotoolkit/openvino#35338, ultralytics/ultralytics#25864)."""
    return import_openvino().Core()


def openvino_version() -> str:
    """``'2026.4.1'``: the installed OpenVINO's release, without its build tag."""
    return import_openvino().__version__.split("-")[0]


def openvino_installed() -> bool:
    """True when the ``openvino`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("openvino") is not None
