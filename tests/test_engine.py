"""The engine end to end with tiny model-free stages: composition, per-stage policies, caching,
async stages, batches, deadlines, cancellation, threads and observation hooks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pydantic
import pytest

from hybrid_ai import (
    BaseStage,
    BranchOutcome,
    Case,
    CaseTimeoutError,
    Engine,
    Fact,
    FactView,
    HybridAIError,
    NewFact,
    PipelineSpec,
    Result,
    StageError,
    StageOutput,
    StageOutputError,
    StageTimeoutError,
    cascade,
    hookimpl,
    parallel,
    read_pipeline,
    route,
    serial,
    stage,
)

# --- stages -----------------------------------------------------------------------------------


class Predict(BaseStage):
    """A ``prediction`` with a fixed label and confidence; counts its calls."""

    produces = ("prediction",)

    def __init__(self, label: str = "a", conf: float | None = 0.9) -> None:
        super().__init__(label=label, conf=conf)
        self.label, self.conf = label, conf
        self.calls = 0

    def process(self, view: FactView) -> list[NewFact]:
        self.calls += 1
        root = view.last("input")
        return [NewFact("prediction", {"label": self.label}, confidence=self.conf,
                        derived_from=[root] if root else [])]


class Nothing(BaseStage):
    produces = ("prediction",)

    def process(self, view: FactView) -> None:
        return None


class Upper(BaseStage):
    """Reads the newest prediction and writes its label upper-cased."""

    requires = ("prediction",)
    produces = ("upper",)

    def process(self, view: FactView) -> StageOutput:
        pred = view.last("prediction")
        assert pred is not None
        return StageOutput([NewFact("upper", {"label": str(pred.data["label"]).upper()},
                                    derived_from=[pred])], confidence=0.42)


class Flaky(BaseStage):
    """Fails ``fails`` times, then succeeds."""

    produces = ("prediction",)

    def __init__(self, fails: int) -> None:
        super().__init__(fails=fails)
        self.fails, self.calls = fails, 0

    def process(self, view: FactView) -> list[NewFact]:
        self.calls += 1
        if self.calls <= self.fails:
            raise RuntimeError(f"transient failure {self.calls}")
        return [NewFact("prediction", {"label": "recovered"}, confidence=0.5)]


class Sleepy(BaseStage):
    """A blocking stage that sleeps far past its timeout."""

    produces = ("prediction",)
    blocking = True

    def process(self, view: FactView) -> list[NewFact]:
        time.sleep(0.5)
        return [NewFact("prediction", {"label": "too late"})]


class Returns(BaseStage):
    """Returns whatever it was given, to test output checks."""

    produces = ("prediction",)

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value

    def process(self, view: FactView) -> Any:
        return self.value


class AsyncUpper(BaseStage):
    produces = ("echo",)

    async def process(self, view: FactView) -> list[NewFact]:
        await asyncio.sleep(0)
        return [NewFact("echo", {"label": view.case.text.upper()})]


class Waits(BaseStage):
    """An async stage that awaits for a long time; ``started`` is set once it is awaiting."""

    produces = ("echo",)

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def process(self, view: FactView) -> list[NewFact]:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return []


class Handshake(BaseStage):
    """Two of these only finish when both run at the same time."""

    produces = ("echo",)

    def __init__(self, mine: str, other: str, events: dict[str, asyncio.Event]) -> None:
        super().__init__(mine=mine)
        self.mine, self.other, self.events = mine, other, events

    async def process(self, view: FactView) -> list[NewFact]:
        self.events[self.mine].set()
        await self.events[self.other].wait()
        return [NewFact("echo", {"label": self.mine})]


class FailOn(BaseStage):
    produces = ("prediction",)

    def process(self, view: FactView) -> list[NewFact]:
        if "boom" in view.case.text:
            raise RuntimeError("boom!")
        return [NewFact("prediction", {"label": view.case.text}, confidence=1.0)]


class Propose(BaseStage):
    """Proposes one rule decision of the given strength."""

    produces = ("decision",)

    def __init__(self, label: str, strength: str) -> None:
        super().__init__(label=label, strength=strength)
        self.label, self.strength = label, strength

    def process(self, view: FactView) -> list[NewFact]:
        data = {"label": self.label, "strength": self.strength, "reason": "test"}
        return [NewFact("decision", data, source=f"rule:{self.label}")]


def kinds(result: Result) -> list[str]:
    return [f.kind for f in result.facts]


def statuses(result: Result) -> list[tuple[str, str]]:
    return [(t.stage, t.status) for t in result.trace]


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Engines created through ``make`` are closed after the test."""
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.close()


@pytest.fixture
def make(engines: list[Engine]) -> Any:
    def _make(pipeline: Any, **kwargs: Any) -> Engine:
        engine = Engine(pipeline, **kwargs)
        engines.append(engine)
        return engine

    return _make


# --- composition --------------------------------------------------------------------------------


def test_serial(make: Any) -> None:
    engine = make(serial(stage(Predict("lost_card", 0.8)), stage(Upper())))
    result = engine.run("where is my card")
    assert result.ok
    assert kinds(result) == ["input", "prediction", "upper"]
    upper = result.of("upper")[0]
    assert upper.data["label"] == "LOST_CARD"
    assert upper.provenance.inputs == (1,)
    assert result.decision == "lost_card"  # the last prediction decides without a decision
    assert statuses(result) == [("Predict", "ok"), ("Upper", "ok")]
    assert [t.attempts for t in result.trace] == [1, 1]
    assert result.trace[1].confidence == 0.42
    assert result.trace[0].facts == (1,)


@pytest.mark.parametrize(("merge", "labels"), [
    ("union", ["low", "high"]),
    ("first", ["low"]),
    ("best_confidence", ["high"]),
])
def test_parallel_merge_policies(make: Any, merge: str, labels: list[str]) -> None:
    engine = make(parallel(stage(Nothing()), stage(Predict("low", 0.3), id="low"),
                           stage(Predict("high", 0.8), id="high"), merge=merge))
    result = engine.run("x")
    assert [f.data["label"] for f in result.of("prediction")] == labels
    assert {t.stage for t in result.trace} == {"Nothing", "low", "high"}


def test_best_confidence_without_confidences_takes_the_first(make: Any) -> None:
    engine = make(parallel(stage(Predict("p", None), id="p"), stage(Predict("q", None), id="q"),
                           merge="best_confidence"))
    assert [f.data["label"] for f in engine.run("x").of("prediction")] == ["p"]


def test_parallel_branches_run_concurrently(make: Any) -> None:
    events: dict[str, asyncio.Event] = {}

    class Fresh(BaseStage):
        produces = ("ready",)

        def process(self, view: FactView) -> list[NewFact]:
            events.update(left=asyncio.Event(), right=asyncio.Event())
            return [NewFact("ready", {})]

    engine = make(serial(stage(Fresh()), parallel(
        stage(Handshake("left", "right", events), id="left"),
        stage(Handshake("right", "left", events), id="right"), merge="union")))
    result = engine.run("x", timeout=10)
    assert sorted(f.data["label"] for f in result.of("echo")) == ["left", "right"]


def test_parallel_branch_layers_are_merged_with_unique_ids(make: Any) -> None:
    engine = make(serial(
        parallel(serial(stage(Predict("a"), id="a"), stage(Upper(), id="ua")),
                 serial(stage(Predict("b"), id="b"), stage(Upper(), id="ub")), merge="union"),
    ))
    result = engine.run("x")
    ids = [f.id for f in result.facts]
    assert len(ids) == len(set(ids)) == 5
    uppers = {f.data["label"]: f for f in result.of("upper")}
    # each branch's Upper saw its own branch's prediction only
    by_id = {f.id: f for f in result.facts}
    assert by_id[uppers["A"].provenance.inputs[0]].data["label"] == "a"
    assert by_id[uppers["B"].provenance.inputs[0]].data["label"] == "b"


def test_custom_merge_policy_from_a_plugin(make: Any) -> None:
    class LastPolicy:
        @hookimpl
        def hybrid_ai_merge_policies(self) -> dict[str, Any]:
            def last(branches: Sequence[BranchOutcome]) -> list[Fact]:
                return list(branches[-1].facts)

            return {"last": last}

    engine = make(parallel(stage(Predict("p"), id="p"), stage(Predict("q"), id="q"),
                           merge="last"), plugins=[LastPolicy()])
    assert [f.data["label"] for f in engine.run("x").of("prediction")] == ["q"]


def test_route_picks_the_first_true_branch_and_the_default(make: Any) -> None:
    engine = make(route(
        ("fields.amount > 100", stage(Predict("big"), id="big")),
        ("text matches '(?i)^hello'", stage(Predict("greeting"), id="greeting")),
        default=stage(Predict("other"), id="other"),
    ))
    big = engine.run({"text": "hello", "fields": {"amount": 500}})
    assert big.decision == "big"
    assert big.trace[0].component == "route"
    assert big.trace[0].note == "took branch 1: fields.amount > 100"
    assert [t.stage for t in big.trace[1:]] == ["big"]
    assert engine.run("Hello there").decision == "greeting"
    fallback = engine.run({"text": "bye", "fields": {"amount": 5}})
    assert fallback.decision == "other"
    assert fallback.trace[0].note == "took default"


def test_route_without_default_runs_nothing(make: Any) -> None:
    engine = make(route(("text == 'z'", stage(Predict("z")))))
    result = engine.run("q")
    assert result.ok and result.decision is None
    assert kinds(result) == ["input"]
    assert "no condition held" in (result.trace[0].note or "")


def test_route_reads_upstream_facts(make: Any) -> None:
    engine = make(serial(
        stage(Predict("lost_card", 0.2)),
        route(("prediction.confidence < 0.5", stage(Predict("human_review"), id="human")),
              default=stage(Predict("auto"), id="auto")),
    ))
    assert engine.run("x").decision == "human_review"


# --- cascades -----------------------------------------------------------------------------------


def three_step_cascade(budget: float | None = None) -> Any:
    return cascade(
        stage(Predict("dear", 0.99), id="dear", cost=10),
        stage(Predict("cheap", 0.5), id="cheap", cost=1, threshold=0.8),
        stage(Predict("middle", 0.95), id="middle", cost=2, threshold=0.9),
        budget=budget,
    )


def test_cascade_stops_at_threshold(make: Any) -> None:
    result = make(three_step_cascade()).run("x")
    assert statuses(result) == [("cheap", "ok"), ("middle", "ok"), ("dear", "not_run")]
    assert result.decision == "middle"
    assert result.trace[2].note == "cascade stopped: 'middle' reached 0.95 >= 0.9"
    assert result.trace[2].cost == 0.0


def test_cascade_in_declared_order(make: Any) -> None:
    text = """\
plugins: [tests._stages_for_tests]
pipeline:
  cascade:
    order: declared
    stages:
      - {stage: t_label, id: first, cost: 5, threshold: 0.5, with: {conf: 0.9}}
      - {stage: t_label, id: second, cost: 1}
"""
    result = make(read_pipeline("declared.yaml", text=text)).run("x")
    assert statuses(result) == [("first", "ok"), ("second", "not_run")]


def test_cascade_stops_on_its_budget(make: Any) -> None:
    result = make(three_step_cascade(budget=2)).run("x")
    assert statuses(result) == [("cheap", "ok"), ("middle", "not_run"), ("dear", "not_run")]
    assert result.trace[1].note == "cascade stopped: budget: spent 1 of 2"
    assert result.decision == "cheap"


def test_cascade_stops_on_the_pipeline_budget(make: Any) -> None:
    result = make(PipelineSpec(budget=3, pipeline=three_step_cascade())).run("x")
    assert statuses(result) == [("cheap", "ok"), ("middle", "ok"), ("dear", "not_run")]


def test_case_budget_wins(make: Any) -> None:
    engine = make(PipelineSpec(budget=100, pipeline=three_step_cascade(budget=50)))
    result = engine.run(Case(text="x", budget=1))
    assert statuses(result) == [("cheap", "ok"), ("middle", "not_run"), ("dear", "not_run")]
    assert "budget: spent 1 of 1" in (result.trace[1].note or "")
    # the first stage always runs, even past a zero budget
    zero = engine.run({"text": "x", "budget": 0})
    assert statuses(zero)[0] == ("cheap", "ok")
    assert [s for _, s in statuses(zero)[1:]] == ["not_run", "not_run"]


def test_cascade_runs_to_the_end_when_unsure(make: Any) -> None:
    engine = make(cascade(stage(Predict("a", 0.1), id="a", cost=1, threshold=0.8),
                          stage(Predict("b", 0.2), id="b", cost=2)))
    result = engine.run("x")
    assert statuses(result) == [("a", "ok"), ("b", "ok")]
    assert result.decision == "b"


# --- per-stage policies -------------------------------------------------------------------------


def test_retries_with_backoff(make: Any) -> None:
    flaky = Flaky(fails=2)
    result = make(stage(flaky, retries=3, backoff=0.001)).run("x")
    assert result.ok
    assert result.decision == "recovered"
    assert result.trace[0].status == "ok"
    assert result.trace[0].attempts == 3
    assert flaky.calls == 3


def test_retries_exhausted(make: Any) -> None:
    flaky = Flaky(fails=5)
    engine = make(stage(flaky, retries=2, backoff=0.001))
    with pytest.raises(StageError, match="transient failure 3") as info:
        engine.run("x")
    assert info.value.stage == "Flaky"
    assert flaky.calls == 3


def test_timeout_on_a_blocking_stage_then_skip(make: Any) -> None:
    engine = make(serial(stage(Sleepy(), timeout=0.05, on_error="skip"),
                         stage(Predict("next"), id="next")))
    result = engine.run("x")
    assert result.ok
    assert statuses(result) == [("Sleepy", "timeout"), ("next", "ok")]
    slept = result.trace[0]
    assert "StageTimeoutError" in (slept.error or "")
    assert slept.note == "on_error=skip: continued without this stage"
    assert result.decision == "next"
    assert "too late" not in [f.data.get("label") for f in result.facts]


def test_timeout_raises_stage_timeout_error(make: Any) -> None:
    with pytest.raises(StageTimeoutError, match=r"timeout of 0\.05s"):
        make(stage(Sleepy(), timeout=0.05)).run("x")


def test_fallback_runs_the_fallback_stage(make: Any) -> None:
    engine = make(stage(Sleepy(), timeout=0.05, on_error="fallback",
                        fallback=stage(Predict("backup"), id="backup")))
    result = engine.run("x")
    assert result.ok
    assert statuses(result) == [("Sleepy", "timeout"), ("backup", "ok")]
    assert result.trace[0].note == "on_error=fallback: ran 'backup' instead"
    assert result.decision == "backup"


def test_on_error_fail_raises_stage_error(make: Any) -> None:
    engine = make(serial(stage(FailOn()), stage(Predict("never"), id="never")))
    with pytest.raises(StageError) as info:
        engine.run("boom")
    assert info.value.stage == "FailOn"
    assert "RuntimeError: boom!" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_errors_return_puts_the_failure_in_the_result(make: Any) -> None:
    engine = make(serial(stage(FailOn()), stage(Predict("never"), id="never")))
    result = engine.run("boom", errors="return")
    assert not result.ok
    assert result.error == "stage 'FailOn': RuntimeError: boom!"
    assert statuses(result) == [("FailOn", "failed")]
    assert result.decision is None
    assert result.explain().text().startswith(f"case {result.case.id}: FAILED:")


@pytest.mark.parametrize(("value", "fragment"), [
    ("a string", "returned str"),
    ([NewFact("other", {})], "fact kind 'other' that it does not declare"),
    (["not a fact"], "returned a str among its facts"),
    ([NewFact("prediction", ["not", "a", "mapping"])], "facts hold a mapping"),  # type: ignore[arg-type]
])
def test_malformed_output_is_a_stage_output_error(make: Any, value: Any, fragment: str) -> None:
    engine = make(serial(stage(Returns(value), on_error="skip"), stage(Predict("ok"), id="ok")))
    result = engine.run("x")
    assert result.ok
    bad = result.trace[0]
    assert bad.status == "failed"
    assert (bad.error or "").startswith("StageOutputError: stage 'Returns':")
    assert fragment in (bad.error or "")
    with pytest.raises(StageOutputError):
        make(stage(Returns(value))).run("x")


def test_fact_types_are_validated(make: Any) -> None:
    class Prediction(pydantic.BaseModel):
        label: str

    class Types:
        @hookimpl
        def hybrid_ai_fact_types(self) -> dict[str, Any]:
            return {"prediction": Prediction}

    good = make(stage(Predict("fine")), plugins=[Types()])
    assert good.run("x").decision == "fine"
    bad = make(stage(Returns([NewFact("prediction", {"label": 3.5})])), plugins=[Types()])
    with pytest.raises(StageOutputError, match="does not match its schema"):
        bad.run("x")


# --- cache --------------------------------------------------------------------------------------


def test_cache_serves_identical_cases(make: Any) -> None:
    predict = Predict("cached_label")
    engine = make(stage(predict, cache=True))
    first = engine.run({"text": "same", "fields": {"n": 1}})
    second = engine.run({"text": "same", "fields": {"n": 1}})
    assert predict.calls == 1
    assert first.trace[0].status == "ok"
    assert second.trace[0].status == "cached"
    assert second.decision == "cached_label"
    assert second.confidence == first.confidence
    fact = second.of("prediction")[0]
    assert fact.provenance.detail["cached"] is True
    assert fact.provenance.inputs == (second.facts[0].id,)
    engine.run({"text": "same", "fields": {"n": 2}})
    engine.run("different")
    assert predict.calls == 3


def test_no_cache_by_default(make: Any) -> None:
    predict = Predict()
    engine = make(stage(predict))
    engine.run("same")
    engine.run("same")
    assert predict.calls == 2


def test_failures_are_not_cached(make: Any) -> None:
    flaky = Flaky(fails=1)
    engine = make(stage(flaky, cache=True))
    assert not engine.run("x", errors="return").ok
    assert engine.run("x").decision == "recovered"
    assert engine.run("x").trace[0].status == "cached"
    assert flaky.calls == 2


# --- async stages -------------------------------------------------------------------------------


def test_async_stage(make: Any) -> None:
    result = make(serial(stage(AsyncUpper()), stage(Predict()))).run("hello")
    assert result.of("echo")[0].data["label"] == "HELLO"


def test_arun_from_an_event_loop(make: Any) -> None:
    engine = make(stage(AsyncUpper()))

    async def main() -> list[Result]:
        return list(await asyncio.gather(*(engine.arun(f"c{i}") for i in range(5))))

    results = asyncio.run(main())
    assert [r.of("echo")[0].data["label"] for r in results] == [f"C{i}" for i in range(5)]


# --- batches ------------------------------------------------------------------------------------


def test_run_batch_keeps_order_and_loses_nothing(make: Any) -> None:
    engine = make(stage(FailOn()))
    items: list[Any] = ["a", 5, "boom", {"text": "d"}, {"txt": "typo"}, Case(id="mine", text="f")]
    results = engine.run_batch(items, concurrency=3)
    assert len(results) == len(items)
    assert [r.ok for r in results] == [True, False, False, True, False, True]
    assert [r.decision for r in results] == ["a", None, None, "d", None, "f"]
    assert results[1].case.id == "record-2"
    assert (results[1].error or "").startswith("record 2: expected a Case, a str or a mapping")
    assert "RuntimeError: boom!" in (results[2].error or "")
    assert results[4].case.id == "record-5"
    assert "txt" in (results[4].error or "")
    assert results[5].case.id == "mine"


def test_run_batch_order_under_concurrency(make: Any) -> None:
    engine = make(stage(AsyncUpper()))
    texts = [f"case {i}" for i in range(40)]
    results = engine.run_batch(texts, concurrency=8)
    assert [r.of("echo")[0].data["label"] for r in results] == [t.upper() for t in texts]


def test_run_batch_empty(make: Any) -> None:
    assert make(stage(AsyncUpper())).run_batch([]) == []


# --- deadlines and cancellation ---------------------------------------------------------------


def test_case_deadline(make: Any) -> None:
    waits = Waits()
    engine = make(stage(waits))
    with pytest.raises(CaseTimeoutError, match=r"deadline of 0\.05s") as info:
        engine.run(Case(id="slow", text="x"), timeout=0.05)
    assert "'slow'" in str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert waits.cancelled.is_set()


def test_case_deadline_with_errors_return(make: Any) -> None:
    engine = make(stage(Waits()))
    result = engine.run("x", timeout=0.05, errors="return")
    assert not result.ok
    assert "deadline" in (result.error or "")


def test_batch_deadline_gives_error_rows(make: Any) -> None:
    engine = make(route(("text == 'slow'", stage(Waits())), default=stage(AsyncUpper())))
    results = engine.run_batch(["fast", "slow", "fast too"], timeout=1.0)
    assert [r.ok for r in results] == [True, False, True]


def test_cancelling_arun_propagates(make: Any) -> None:
    waits = Waits()
    engine = make(stage(waits))

    async def main() -> None:
        task = asyncio.ensure_future(engine.arun("x"))
        while not waits.started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    assert waits.cancelled.is_set()


def test_cancelling_a_parallel_branch_cancels_its_siblings(make: Any) -> None:
    left, right = Waits(), Waits()
    engine = make(parallel(stage(left, id="l"), stage(right, id="r"), merge="union"))

    async def main() -> None:
        task = asyncio.ensure_future(engine.arun("x"))
        while not (left.started.is_set() and right.started.is_set()):
            await asyncio.sleep(0.001)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    assert left.cancelled.is_set() and right.cancelled.is_set()


def test_failing_branch_cancels_its_siblings(make: Any) -> None:
    waits = Waits()
    engine = make(parallel(stage(waits, id="w"), stage(FailOn(), id="f"), merge="union"))
    with pytest.raises(StageError):
        engine.run("boom", timeout=10)
    assert waits.cancelled.is_set()


# --- threads ------------------------------------------------------------------------------------


def test_one_engine_from_eight_threads(make: Any) -> None:
    class Slow(BaseStage):
        produces = ("prediction",)
        blocking = True

        def process(self, view: FactView) -> list[NewFact]:
            time.sleep(0.001)
            return [NewFact("prediction", {"label": view.case.text[::-1]}, confidence=0.7)]

    engine = make(serial(stage(Slow()), stage(AsyncUpper()), stage(Upper())))
    texts = [f"case-{i:03d}" for i in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(engine.run, texts))
    assert [r.decision for r in results] == [t[::-1] for t in texts]
    assert [r.of("echo")[0].data["label"] for r in results] == [t.upper() for t in texts]
    assert [r.of("upper")[0].data["label"] for r in results] == [t[::-1].upper() for t in texts]
    assert len({r.case.id for r in results}) == len(texts)
    assert all(len(r.facts) == 4 for r in results)


def test_warm_up_happens_once_across_threads(make: Any) -> None:
    class Counted(BaseStage):
        produces = ("prediction",)
        warmed = 0

        def warm_up(self) -> None:
            time.sleep(0.01)
            Counted.warmed += 1

        def process(self, view: FactView) -> list[NewFact]:
            return [NewFact("prediction", {"label": "x"})]

    engine = make(stage(Counted()))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(engine.run, ["a"] * 16))
    assert Counted.warmed == 1


def test_run_inside_a_stage_is_refused(make: Any) -> None:
    holder: dict[str, Engine] = {}

    class Reenter(BaseStage):
        produces = ("prediction",)

        def process(self, view: FactView) -> list[NewFact]:
            holder["engine"].run("inner")
            return []

    engine = make(stage(Reenter()))
    holder["engine"] = engine
    with pytest.raises(StageError, match="arun"):
        engine.run("outer", timeout=10)


# --- observation hooks --------------------------------------------------------------------------


class Recorder:
    """A plugin object that counts every observation hook."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.vetoes: list[tuple[Fact, list[Fact]]] = []
        self.stages: list[str] = []

    @hookimpl
    def hybrid_ai_engine_started(self, engine: Engine) -> None:
        self.calls["engine_started"] += 1

    @hookimpl
    def hybrid_ai_stage_started(self, case: Case, stage: str) -> None:
        self.calls["stage_started"] += 1
        self.stages.append(stage)

    @hookimpl
    def hybrid_ai_stage_finished(self, case: Case, stage: str, trace: Any) -> None:
        self.calls["stage_finished"] += 1

    @hookimpl
    def hybrid_ai_stage_failed(self, case: Case, stage: str, error: BaseException,
                               trace: Any) -> None:
        self.calls["stage_failed"] += 1
        assert trace.status in ("failed", "timeout")

    @hookimpl
    def hybrid_ai_decision_made(self, case: Case, result: Result) -> None:
        self.calls["decision_made"] += 1

    @hookimpl
    def hybrid_ai_veto_applied(self, case: Case, decision: Fact, overruled: list[Fact]) -> None:
        self.calls["veto_applied"] += 1
        self.vetoes.append((decision, overruled))


def test_observation_hooks_fire(make: Any) -> None:
    recorder = Recorder()
    flaky = Flaky(fails=1)
    engine = make(serial(stage(Predict()), stage(FailOn(), on_error="skip"),
                         stage(flaky, retries=1, backoff=0.001)), plugins=[recorder])
    engine.run("ok")
    engine.run("boom")
    assert recorder.calls == Counter(engine_started=1, stage_started=6, stage_finished=5,
                                     stage_failed=1, decision_made=2)
    # started once per stage, not once per retry
    assert recorder.stages == ["Predict", "FailOn", "Flaky"] * 2


def test_decision_made_fires_for_failed_cases_returned(make: Any) -> None:
    recorder = Recorder()
    engine = make(stage(FailOn()), plugins=[recorder])
    engine.run("boom", errors="return")
    engine.run_batch(["boom", "fine"])
    assert recorder.calls["decision_made"] == 3
    assert recorder.calls["stage_failed"] == 2


def test_veto_applied_fires_when_decide_chooses_a_veto(make: Any) -> None:
    recorder = Recorder()
    engine = make(serial(
        stage(Predict("card_arrival", 0.9)),
        route(("text matches 'stolen'", stage(Propose("fraud", "veto"), id="veto")),
              default=stage(Propose("human", "override"), id="override")),
        stage(Propose("cards", "advise"), id="advise"),
        stage("decide", base="prediction"),
    ), plugins=[recorder])
    result = engine.run("my card was stolen")
    assert result.decision == "fraud"
    assert recorder.calls["veto_applied"] == 1
    ((decision, overruled),) = recorder.vetoes
    assert decision is result.decision_fact
    assert sorted(f.data["label"] for f in overruled) == ["card_arrival", "cards"]
    # an override is not a veto
    assert engine.run("where is my card").decision == "human"
    assert recorder.calls["veto_applied"] == 1


def test_plugins_do_not_leak_between_engines(make: Any) -> None:
    recorder = Recorder()
    make(stage(Predict()), plugins=[recorder])
    make(stage(Predict())).run("x")
    assert recorder.calls["stage_started"] == 0


def test_engine_is_a_context_manager() -> None:
    with Engine(stage(Predict("ctx"))) as engine:
        assert engine.run("x").decision == "ctx"
    assert isinstance(engine.version, str) and engine.version


def test_errors_derive_from_the_root() -> None:
    for error in (StageError, StageOutputError, StageTimeoutError, CaseTimeoutError):
        assert issubclass(error, HybridAIError)
