"""examples/market-sentiment-monitor: sentiment, companies and sectors, and stream alerts."""

from __future__ import annotations

import json
from typing import Any

from hybrid_ai import Engine, Result

from .conftest import EXAMPLES


def _stream() -> list[dict[str, Any]]:
    path = EXAMPLES / "market-sentiment-monitor" / "stream.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _reset(engine: Engine) -> None:
    for node in engine.graph.stages():
        reset = getattr(node.stage, "reset", None)
        if reset is not None:
            reset()


def _replay(engine: Engine, concurrency: int) -> dict[str, Result]:
    _reset(engine)
    return {r.case.id: r for r in engine.run_batch(_stream(), concurrency=concurrency)}


def test_companies_link_to_their_sector_in_the_graph(monitor: Engine) -> None:
    result = monitor.run({"text": "Stora Enso cut 300 jobs at its Finnish mills .",
                          "fields": {"ts": "2026-01-05T10:00:00"}})
    knowledge = result.of("knowledge")[-1].data
    assert knowledge["label"] == "Stora Enso"
    assert knowledge["properties"]["inSector"] == "Forest and paper"
    assert result.of("sentiment")[-1].data["label"] in {"negative", "neutral", "positive"}


def test_a_sector_surge_raises_one_alert_with_its_evidence(monitor: Engine) -> None:
    results = _replay(monitor, concurrency=1)
    surge = [r for r in results.values()
             if r.decision_fact is not None and r.decision_fact.data.get("rule")
             == "sector_negative_surge"]
    assert [r.case.id for r in surge] == ["news-19"]
    final = surge[0].decision_fact
    assert final is not None and final.data["sector"] == "Airlines and shipping"
    assert final.data["evidence"] == ["news-19", "news-17", "news-15"]
    assert "negative news about Airlines and shipping surged" in surge[0].explain().text()
    distress = results["news-27"].decision_fact
    assert distress is not None and distress.data["strength"] == "veto"


def test_concurrent_replay_still_raises_the_alert_once(monitor: Engine) -> None:
    results = _replay(monitor, concurrency=4)
    surge = [r.case.id for r in results.values() if r.decision_fact is not None
             and r.decision_fact.data.get("rule") == "sector_negative_surge"]
    assert len(surge) == 1 and surge[0] in {"news-15", "news-17", "news-19"}
