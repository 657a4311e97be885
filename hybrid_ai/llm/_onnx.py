"""The encoder on ONNX Runtime: the same weights, exported once, run without torch's overhead.

Usage: ``Encoder(runtime="onnx").encode(["Where is my card?"])`` (``"auto"`` picks it when
``onnxruntime`` is installed and the device is the CPU).

The export happens locally from the model directory the encoder already uses (nothing is
downloaded), once per model and torch version, into ``$HYBRID_AI_CACHE_DIR/onnx`` (default
``~/.cache/hybrid-ai/onnx``). Every export is checked against torch on a padded probe batch
before it is kept, so a graph that disagrees with the model is never used silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hybrid_ai._errors import ConfigError, MissingDependencyError
from hybrid_ai.llm._cache import cache_root
from hybrid_ai.llm._quiet import import_backend, load_local

__all__ = ["OnnxModel", "have_onnxruntime", "load_onnx"]

_log = logging.getLogger(__name__)

_OPSET = 17
# Largest difference in any hidden-state value the export may show on the probe batch; float32
# graph rewrites (fused attention, layer norm) stay around 1e-6.
_TOLERANCE = 1e-4
_PROBE = ["a short probe", "a somewhat longer probe sentence, padded against the short one"]
_INSTALL = "pip install 'hybrid-ai[llm]'  (onnxruntime and onnx)"
_LOCK = threading.Lock()


def have_onnxruntime() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` import: ``runtime="auto"`` uses them when they do."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX Runtime session over one exported encoder; safe to call from many threads."""

    session: Any
    inputs: tuple[str, ...]
    path: Path

    def hidden(self, arrays: dict[str, NDArray[np.int64]]) -> NDArray[np.float32]:
        """The last hidden state, (batch, tokens, dim), for padded token arrays."""
        feed = {name: arrays[name] for name in self.inputs}
        out: NDArray[np.float32] = self.session.run(None, feed)[0]
        return out


def load_onnx(model_dir: Path, num_threads: int) -> OnnxModel:
    """Export ``model_dir`` (or reuse its earlier export) and open a session on it."""
    ort = _import_onnxruntime()
    torch, _ = import_backend()
    key = f"{_export_key(model_dir)}-torch{torch.__version__}-opset{_OPSET}"
    target = cache_root() / "onnx" / f"{model_dir.name}-{key}.onnx"
    with _LOCK:
        if not target.is_file():
            _export(model_dir, target)
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ConfigError(
            f"onnxruntime could not open {target}: {exc}; delete the file to export it again, "
            "or use runtime='torch'"
        ) from exc
    names = tuple(i.name for i in session.get_inputs())
    return OnnxModel(session, names, target)


def _export_key(model_dir: Path) -> str:
    """Which files, where, and when written: a re-saved (say, re-tuned) model gets a new export.

    Content hashes of the config alone would not do: a tuned copy of a model has the same
    config and file sizes as its base.
    """
    digest = hashlib.sha256(str(model_dir.resolve()).encode())
    for file in sorted(model_dir.iterdir()):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}={stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def _import_onnxruntime() -> Any:
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime and onnx for runtime='onnx'", _INSTALL) from exc
    return onnxruntime


def _export(model_dir: Path, target: Path) -> None:
    """Export from a private copy of the model, check it, then move it into place atomically."""
    torch, _ = import_backend()
    # Eager attention traces to plain ops; SDPA bakes trace-time shapes into its masks.
    tokenizer, model = load_local(model_dir, "AutoModel", what="an encoder to export",
                                  attn_implementation="eager")
    model = model.to(dtype=torch.float32).eval()
    probe = dict(tokenizer(_PROBE, padding=True, return_tensors="pt"))
    expected = _torch_hidden(torch, model, probe)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        _trace(torch, model, probe, Path(tmp))
        _verify(Path(tmp), probe, expected, model_dir)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _log.info("exported %s to %s", model_dir, target)


def _torch_hidden(torch: Any, model: Any, probe: dict[str, Any]) -> NDArray[np.float32]:
    with torch.inference_mode():
        out: NDArray[np.float32] = model(**probe).last_hidden_state.numpy()
    return out


def _positional(torch: Any, model: Any, names: list[str]) -> Any:
    """The model behind one positional tensor per named input, which is what the tracer feeds."""

    class Wrapper(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(**dict(zip(names, tensors, strict=True))).last_hidden_state

    return Wrapper().eval()


def _trace(torch: Any, model: Any, probe: dict[str, Any], path: Path) -> None:
    names = list(probe)
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    module = _positional(torch, model, names)
    try:
        with torch.inference_mode(False), torch.no_grad(), _quiet_export():
            torch.onnx.export(
                module, tuple(probe[n] for n in names), str(path), input_names=names,
                output_names=["last_hidden_state"], dynamic_axes=axes,
                opset_version=_OPSET, dynamo=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types
        raise ConfigError(
            f"could not export the encoder to ONNX: {exc}; use runtime='torch' for this model"
        ) from exc


@contextlib.contextmanager
def _quiet_export() -> Any:
    """The tracer warns about every Python-level branch it freezes; none matter here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _verify(path: Path, probe: dict[str, Any], expected: NDArray[np.float32],
            model_dir: Path) -> None:
    ort = _import_onnxruntime()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {i.name: probe[i.name].numpy().astype(np.int64) for i in session.get_inputs()}
    got = session.run(None, feed)[0]
    mask = probe["attention_mask"].numpy()[..., None].astype(bool)
    gap = float(np.abs(np.where(mask, got - expected, 0.0)).max())
    if not np.isfinite(gap) or gap > _TOLERANCE:
        raise ConfigError(
            f"the ONNX export of {model_dir} disagrees with torch by {gap:.2e} (limit "
            f"{_TOLERANCE:.0e}) on a probe batch; use runtime='torch' for this model"
        )
