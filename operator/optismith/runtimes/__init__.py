"""Runtime registry. Heavy imports (TensorFlow, LiteRT, ONNX Runtime, OpenVINO) happen inside each
runtime's methods, so importing this package stays cheap."""

from __future__ import annotations

from optismith.runtimes.base import IOSpec, Runtime, Session

_REGISTRY: dict[str, type[Runtime]] = {}
_builtin_loaded = False


def register(runtime: type[Runtime]) -> type[Runtime]:
    _REGISTRY[runtime.name] = runtime
    return runtime


def get_runtime(name: str) -> type[Runtime]:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown runtime {name!r}; known: {sorted(_REGISTRY)}") from None


def all_runtimes() -> dict[str, type[Runtime]]:
    _load_builtin()
    return dict(_REGISTRY)


def _load_builtin() -> None:
    # A flag, not "is the registry empty": importing one runtime module directly registers it alone.
    global _builtin_loaded
    if _builtin_loaded:
        return
    from optismith.runtimes import onnx, openvino, tf, tflite  # noqa: F401 - registration side effect

    _builtin_loaded = True


__all__ = ["IOSpec", "Runtime", "Session", "all_runtimes", "get_runtime", "register"]
