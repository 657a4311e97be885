"""The OpenAI-compatible client against real local servers: ours over the model, and a scripted
one that misbehaves on purpose."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hybrid_ai import Blackboard, Case
from hybrid_ai.llm._generative import Generator
from hybrid_ai.llm._http import ChatClient, ChatError
from hybrid_ai.llm._serve import ChatServer
from hybrid_ai.llm._tasks import ExtractStage

from .test_generative import ScriptedGenerator


class Scripted:
    """A server answering a list of (status, body) in turn, recording concurrency."""

    def __init__(self, replies: list[tuple[int, str]], delay: float = 0.0) -> None:
        self.replies, self.delay, self.seen = replies, delay, 0
        self.active = self.peak = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                status, body = script.next()
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def next(self) -> tuple[int, str]:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            reply = self.replies[min(self.seen, len(self.replies) - 1)]
            self.seen += 1
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        return reply


def ok(text: str) -> tuple[int, str]:
    return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]})


@pytest.fixture
def scripted() -> Iterator[list[Scripted]]:
    servers: list[Scripted] = []
    yield servers
    for s in servers:
        s.server.shutdown()
        s.server.server_close()


def start(servers: list[Scripted], replies: list[tuple[int, str]], delay: float = 0.0) -> Scripted:
    server = Scripted(replies, delay)
    servers.append(server)
    return server


def test_retries_server_errors_then_succeeds(scripted: list[Scripted]) -> None:
    server = start(scripted, [(503, "busy"), (429, "slow down"), ok("fine")])
    client = ChatClient(base_url=server.url, model="m", retries=2, backoff=0.01)
    assert client.generate("hi") == "fine"
    assert server.seen == 3


def test_gives_up_after_the_retries_with_the_last_error(scripted: list[Scripted]) -> None:
    server = start(scripted, [(503, "busy")])
    client = ChatClient(base_url=server.url, model="m", retries=1, backoff=0.01)
    with pytest.raises(ChatError, match="2 attempt\\(s\\): HTTP 503: busy"):
        client.generate("hi")


def test_client_errors_are_not_retried(scripted: list[Scripted]) -> None:
    server = start(scripted, [(404, "no such model"), ok("never")])
    client = ChatClient(base_url=server.url, model="m", retries=3, backoff=0.01)
    with pytest.raises(ChatError, match="HTTP 404: no such model"):
        client.generate("hi")
    assert server.seen == 1


def test_malformed_replies_are_reported(scripted: list[Scripted]) -> None:
    server = start(scripted, [(200, "not json"), (200, '{"choices": []}')])
    client = ChatClient(base_url=server.url, model="m", retries=0)
    with pytest.raises(ChatError, match="non-JSON"):
        client.generate("a")
    with pytest.raises(ChatError, match="without choices"):
        client.generate("b")


def test_unreachable_server_is_a_clear_error() -> None:
    client = ChatClient(base_url="http://127.0.0.1:9/v1", model="m", retries=1, backoff=0.01,
                        timeout=2)
    with pytest.raises(ChatError, match="check that the server is up"):
        client.generate("hi")


def test_concurrency_is_limited(scripted: list[Scripted]) -> None:
    server = start(scripted, [ok("x")], delay=0.05)
    client = ChatClient(base_url=server.url, model="m", max_concurrency=2)
    threads = [threading.Thread(target=client.generate, args=("hi",)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.seen == 6
    assert server.peak <= 2


def test_extract_through_our_server_over_a_scripted_model() -> None:
    server = ChatServer(ScriptedGenerator(['{"amount": 7, "currency": "GBP"}'])).start()
    try:
        stage = ExtractStage(fields={"amount": "int", "currency": "str"}, base_url=server.url,
                             served_model="local")
        (fact,) = stage.process(Blackboard(Case(text="seven pounds")))
    finally:
        server.stop()
    assert fact.data["values"] == {"amount": 7, "currency": "GBP"}
    assert fact.source == f"llm:local@{server.url}"


def test_served_generative_model_answers_over_http(generator: Generator) -> None:
    server = ChatServer(generator).start()
    try:
        client = ChatClient(base_url=server.url, model="smollm2")
        answer = client.generate("What is the capital of France? One word.", max_new_tokens=8)
    finally:
        server.stop()
    assert "Paris" in answer


def _post(url: str, body: bytes, length: str | None = None) -> tuple[int, str]:
    import http.client
    from urllib.parse import urlparse

    where = urlparse(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/chat/completions")
        conn.putheader("Content-Length", length if length is not None else str(len(body)))
        conn.endheaders()
        if length is None:
            conn.send(body)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())["error"]["message"]
    finally:
        conn.close()


class Failing(ScriptedGenerator):
    def generate(self, prompt: str, **options: Any) -> str:
        raise RuntimeError("out of memory")


@pytest.mark.parametrize(("body", "length", "status", "says"), [
    (b'{"messages": []}', None, 400, '"messages": [{"role": "user"'),
    (b'{"messages": [{"content": "hi"}], "max_tokens": "lots"}', None, 400, "max_tokens"),
    (b'{"messages": [{"content": "hi"}], "max_tokens": 0}', None, 400, "max_tokens"),
    (b"", "-1", 400, "outside"),
    (b"", str(2 << 20), 413, "outside"),
])
def test_our_server_answers_bad_requests_with_what_it_expects(body: bytes, length: str | None,
                                                              status: int, says: str) -> None:
    server = ChatServer(ScriptedGenerator(["unused"])).start()
    try:
        assert _post(server.url, body, length)[0] == status
        assert says in _post(server.url, body, length)[1]
    finally:
        server.stop()


def test_a_failing_model_gets_the_client_a_500_not_a_dropped_connection() -> None:
    server = ChatServer(Failing(["unused"])).start()
    try:
        status, message = _post(server.url, b'{"messages": [{"content": "hi"}]}')
    finally:
        server.stop()
    assert status == 500 and "RuntimeError: out of memory" in message
