"""The Engine: a checked graph, its plugins, a thread pool, and run / arun / run_batch.

    engine = Engine.from_yaml("examples/support-triage/pipeline.yaml")  # checked, not loaded
    result = engine.run("I lost my card")                          # warms up on first use
    result = await engine.arun({"text": "...", "fields": {...}})
    results = engine.run_batch(cases, concurrency=4, progress=True)

One engine is safe to share across threads: stages are warmed once under a lock, every case
gets its own blackboard, and ``run`` submits to one private event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ._config import Node, PipelineSpec, read_pipeline
from ._errors import CaseTimeoutError, HybridAIError, InputError
from ._facts import Blackboard, Case
from ._graph import Graph, build_graph
from ._plugins import Plugins
from ._result import Result
from ._run import CaseRun, Context, Observers, StageCache

__all__ = ["Engine"]

CaseLike = Case | str | Mapping[str, Any]
Errors = Literal["raise", "return"]


class _LoopThread:
    """A private event loop in a daemon thread, so sync callers from any thread can share it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hybrid-ai-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        if threading.current_thread() is self.thread:
            coro.close()
            raise HybridAIError("Engine.run was called from inside a stage on the engine's loop; "
                                "use `await engine.arun(...)` there")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class Engine:
    """Runs cases through a pipeline. Construction builds and checks the graph; ``warm_up``
    loads models (it also happens on first use)."""

    def __init__(self, pipeline: PipelineSpec | Node | Graph, *, plugins: Sequence[object] = (),
                 max_workers: int | None = None, cache_size: int = 4096) -> None:
        self.graph = _as_graph(pipeline, plugins)
        self.plugins = self.graph.plugins
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 2)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.max_workers, thread_name_prefix="hybrid-ai-stage")
        self._ctx = Context(self._executor, Observers(self.plugins.hook), StageCache(cache_size),
                            dict(self.plugins.fact_types.items()), self.graph.spec.budget)
        self._lock = threading.Lock()
        self._warm = False
        self._loop: _LoopThread | None = None
        self._nodes = tuple(self.graph.stages())
        self._spec_blob = self.graph.spec.model_dump_json(by_alias=True).encode()
        self._versioned: tuple[tuple[str, ...], str] | None = None

    @classmethod
    def from_yaml(cls, path: str | Path, *, trust_code: bool = False, **kwargs: Any) -> Engine:
        """``Engine.from_yaml("pipeline.yaml")``; every wiring problem is raised at once.

        ``trust_code=True`` lets the file's ``plugins:`` import modules kept beside it.
        """
        return cls(read_pipeline(path, trust_code=trust_code), **kwargs)

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def version(self) -> str:
        """Content hash of the pipeline and every stage's version; a stage reload changes it."""
        stages = tuple(node.stage.version for node in self._nodes)
        known = self._versioned
        if known is None or known[0] != stages:
            joined = ",".join(f"{n.id}={v}" for n, v in zip(self._nodes, stages, strict=True))
            known = self._versioned = (stages, hashlib.blake2b(
                self._spec_blob + joined.encode(), digest_size=6).hexdigest())
        return known[1]

    def explain_plan(self) -> str:
        """The graph's order, parallel groups, routes and cascade thresholds."""
        return self.graph.explain_plan()

    def warm_up(self) -> Engine:
        """Load every stage's heavy parts once (thread-safe, idempotent)."""
        with self._lock:
            if self._warm:
                return self
            for node in self.graph.stages():
                node.stage.warm_up()
            self._warm = True
        self._ctx.hook.hybrid_ai_engine_started(engine=self)
        return self

    async def arun(self, case: CaseLike, *, timeout: float | None = None,
                   errors: Errors = "raise") -> Result:
        """Run one case; ``errors="return"`` puts a failure in ``result.error`` instead."""
        case = Case.coerce(case)
        if not self._warm:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.warm_up)
        run = CaseRun(self._ctx, Blackboard(case))
        start = time.perf_counter()
        try:
            await _with_deadline(run.node(self.graph.root, run.board), timeout, case)
        except HybridAIError as exc:
            if errors == "raise":
                raise
            return self._result(run, start, error=str(exc))
        return self._result(run, start)

    def _result(self, run: CaseRun, start: float, error: str | None = None) -> Result:
        result = Result(run.case, tuple(run.board.all()), tuple(run.traces), self.name,
                        self.version, error, time.perf_counter() - start)
        self._ctx.hook.hybrid_ai_decision_made(case=run.case, result=result)
        return result

    def run(self, case: CaseLike, *, timeout: float | None = None,
            errors: Errors = "raise") -> Result:
        """Run one case from synchronous code (any thread)."""
        result: Result = self._loop_thread().run(self.arun(case, timeout=timeout, errors=errors))
        return result

    def _loop_thread(self) -> _LoopThread:
        with self._lock:
            if self._loop is None:
                self._loop = _LoopThread()
            return self._loop

    async def arun_batch(self, cases: Iterable[CaseLike], *, concurrency: int = 4,
                         timeout: float | None = None, progress: bool = False) -> list[Result]:
        """Run many cases, ``concurrency`` at a time; a failed case gets a result with ``error``
        set in its own place, so no record is ever lost."""
        items = list(cases)
        limit = asyncio.Semaphore(max(1, concurrency))
        bar = _progress(len(items), progress, self.name)

        async def one(index: int, item: CaseLike) -> Result:
            async with limit:
                result = await self._batch_item(index, item, timeout)
            bar.update(1)
            return result

        try:
            return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(items))))
        finally:
            bar.close()

    async def _batch_item(self, index: int, item: CaseLike, timeout: float | None) -> Result:
        try:
            case = Case.coerce(item, where=f"record {index + 1}")
        except InputError as exc:
            return Result(Case(id=f"record-{index + 1}"), (), (), self.name, self.version,
                          str(exc))
        try:
            return await self.arun(case, timeout=timeout, errors="return")
        except Exception as exc:  # a bug in a stage must not lose the record either
            return Result(case, (), (), self.name, self.version, f"{type(exc).__name__}: {exc}")

    def run_batch(self, cases: Iterable[CaseLike], *, concurrency: int = 4,
                  timeout: float | None = None, progress: bool = False) -> list[Result]:
        """Synchronous ``arun_batch``; results come back in input order."""
        coro = self.arun_batch(cases, concurrency=concurrency, timeout=timeout, progress=progress)
        results: list[Result] = self._loop_thread().run(coro)
        return results

    def close(self) -> None:
        """Stop the private loop and the thread pool."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_graph(pipeline: PipelineSpec | Node | Graph, plugin_objects: Sequence[object]) -> Graph:
    if isinstance(pipeline, Graph):
        return pipeline
    spec = pipeline if isinstance(pipeline, PipelineSpec) else PipelineSpec(pipeline=pipeline)
    plugins = Plugins.default().with_modules(spec.plugins, plugin_objects, spec.code_dirs,
                                             beside=spec.base_dir)
    return build_graph(spec, plugins)


async def _with_deadline(coro: Any, timeout: float | None, case: Case) -> None:
    if timeout is None:
        await coro
        return
    try:
        await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise CaseTimeoutError(f"case {case.id!r} ran past its deadline of {timeout}s; its "
                               "running stages were cancelled") from None


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, name: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="case")
