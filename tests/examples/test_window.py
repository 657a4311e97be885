"""The ``window`` stage (hybrid_ai.stream): keyed sliding windows across cases."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from hybrid_ai import Engine, PipelineError, read_pipeline, serial, stage
from hybrid_ai.stream import WindowStage
from hybrid_ai.testing import check_stage


def _case(n: int, sector: Any, tone: str = "negative", ts: Any = None) -> dict[str, Any]:
    fields = {"sector": sector, "tone": tone}
    if ts is not None:
        fields["ts"] = ts
    return {"id": f"c{n}", "text": f"news {n}", "fields": fields}


def _windows(result: Any) -> list[dict[str, Any]]:
    return [dict(f.data) for f in result.of("window")]


def _engine(**params: Any) -> tuple[Engine, WindowStage]:
    window = WindowStage(key="fields.sector", when="fields.tone == 'negative'", **params)
    return Engine(serial(stage(window, id="w"))), window


def test_count_window_keeps_the_last_n_events_per_key() -> None:
    engine, _ = _engine(size=3, evidence=2)
    tones = ["negative", "neutral", "negative", "negative", "neutral"]
    results = [engine.run(_case(i, "banks", t)) for i, t in enumerate(tones)]
    engine.run(_case(9, "mining"))
    last = _windows(results[-1])[0]
    assert (last["count"], last["hits"], last["key"]) == (3, 2, "banks")
    assert last["rate"] == pytest.approx(2 / 3)
    assert (last["previous_count"], last["previous_hits"]) == (3, 2)
    assert [e["case"] for e in last["evidence"]] == ["c3", "c2"]  # newest first, at most 2
    assert _windows(results[2])[0]["previous_hits"] == 1


def test_a_list_key_counts_the_case_once_per_key_and_null_adds_nothing() -> None:
    engine, window = _engine(size=5)
    result = engine.run(_case(1, ["banks", "insurers", "banks"]))
    assert sorted(w["key"] for w in _windows(result)) == ["banks", "insurers"]
    assert _windows(engine.run(_case(2, None))) == []
    assert set(window.snapshot()) == {"banks", "insurers"}


def test_time_window_counts_the_last_seconds_and_late_cases_complete_it() -> None:
    engine, _ = _engine(seconds=600, time="fields.ts")
    engine.run(_case(1, "banks", ts="2026-03-02T09:00:00"))
    engine.run(_case(2, "banks", ts="2026-03-02T09:20:00"))  # the 09:00 event has expired
    late = _windows(engine.run(_case(3, "banks", ts="2026-03-02T09:15:00")))[0]
    assert (late["count"], late["hits"], late["late"], late["counted"]) == (2, 2, True, True)
    too_old = _windows(engine.run(_case(4, "banks", ts="2026-03-02T09:01:00")))[0]
    assert (too_old["counted"], too_old["count"]) == (False, 2)
    epoch = _windows(engine.run(_case(5, "mining", ts=1_700_000_000)))[0]
    assert epoch["end"] == 1_700_000_000


def test_a_case_without_a_usable_time_fails_with_a_clear_error() -> None:
    engine, _ = _engine(seconds=60, time="fields.ts")
    result = engine.run(_case(1, "banks", ts="yesterday"), errors="return")
    assert not result.ok and "no usable time" in str(result.error)


def test_reset_forgets_every_window_or_one_key() -> None:
    engine, window = _engine(size=10)
    for i in range(3):
        engine.run(_case(i, "banks"))
    engine.run(_case(5, "mining"))
    window.reset("banks")
    assert set(window.snapshot()) == {"mining"}
    window.reset()
    assert window.snapshot() == {}


def test_updates_from_many_threads_are_never_lost() -> None:
    engine, window = _engine(size=10_000)

    def feed(worker: int) -> None:
        for i in range(40):
            engine.run(_case(worker * 100 + i, "banks" if i % 2 else "mining"))

    threads = [threading.Thread(target=feed, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = window.snapshot()
    assert snapshot["banks"]["count"] == snapshot["mining"]["count"] == 120


@pytest.mark.parametrize("params", [
    {"size": 3, "seconds": 60, "time": "fields.ts"}, {}, {"size": 0},
    {"seconds": 60}, {"size": 3, "time": "fields.ts"}])
def test_bad_shapes_are_wiring_errors(params: dict[str, Any]) -> None:
    spec = {"key": "fields.sector", **params}
    with pytest.raises(PipelineError, match="window"):
        Engine(serial(stage("window", **spec)))


def test_the_stage_meets_the_plugin_contract() -> None:
    report = check_stage(WindowStage, params={"key": "fields.sector", "size": 5},
                         fields={"sector": "banks"})
    assert report.output[0].data["key"] == "banks"


def test_rules_read_the_window_and_the_alert_carries_its_evidence(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: surge\n"
        "    when: window.hit and window.hits >= 3\n"
        "    then:\n"
        "      decision: {label: alert, sector: '=window.key',\n"
        "                 evidence: \"=pluck(window.evidence, 'case')\"}\n"
        "      strength: override\n"
        "      reason: '{window.hits} negative items about {window.key}'\n")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "pipeline:\n  serial:\n"
        "    - {stage: window, with: {key: fields.sector, when: \"fields.tone == 'negative'\", "
        "size: 5}}\n"
        f"    - {{stage: rules, with: {{path: {rules.name}}}}}\n"
        "    - stage: decide\n")
    engine = Engine(read_pipeline(pipeline))
    tones = ["negative", "neutral", "negative", "negative"]
    results = engine.run_batch([_case(i, "banks", t) for i, t in enumerate(tones)],
                               concurrency=1)
    assert [r.decision for r in results[:3]] != ["alert"] * 3
    final = results[-1].decision_fact
    assert results[-1].decision == "alert" and final is not None
    assert final.data["evidence"] == ["c3", "c2", "c0"]
    assert "3 negative items about banks" in results[-1].explain().text()
