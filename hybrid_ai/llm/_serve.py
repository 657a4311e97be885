"""A minimal OpenAI-compatible server over a local Generator (POST /v1/chat/completions).

    server = ChatServer(Generator(), port=0).start()    # 127.0.0.1, a free port
    ChatClient(base_url=server.url, model="local").generate("hi"); server.stop()

It serves the local model to other processes (and to the tests of ChatClient); it binds to
loopback by default and answers one request at a time, as one model instance can.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._generative import Generator

__all__ = ["ChatServer"]


class ChatServer:
    """Serve ``generator`` at ``url`` (``http://host:port/v1``) until ``stop()``."""

    def __init__(self, generator: Generator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.generator = generator
        self._server = ThreadingHTTPServer((host, port), _handler(generator))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> ChatServer:
        self.generator.warm_up()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_MAX_BODY = 1 << 20  # a chat request is text; more than 1 MiB is a mistake or an attack
_SHAPE = ('expected {"messages": [{"role": "user", "content": "..."}], '
          '"max_tokens": 64} (max_tokens optional)')


def _request(headers: Any, body: Any) -> tuple[int, str | dict[str, Any]]:
    """(status, error message) for a bad request, else (200, the parsed JSON body)."""
    try:
        size = int(headers.get("Content-Length", 0))
    except ValueError:
        return 400, "Content-Length is not a number"
    if size < 0 or size > _MAX_BODY:
        return (413 if size > 0 else 400), f"Content-Length {size} is outside 0..{_MAX_BODY}"
    try:
        request = json.loads(body.read(size))
        str(request["messages"][-1]["content"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return 400, f"bad request ({type(exc).__name__}: {exc}); {_SHAPE}"
    tokens = request.get("max_tokens")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool)
                               or not 0 < tokens <= 4096):
        return 400, f"max_tokens must be a whole number from 1 to 4096, got {tokens!r}"
    return 200, request


def _handler(generator: Generator) -> type[BaseHTTPRequestHandler]:
    model_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            status, request = _request(self.headers, self.rfile)
            if not isinstance(request, dict):
                return self._send(status, {"error": {"message": request}})
            prompt = str(request["messages"][-1]["content"])
            try:
                with model_lock:
                    text = generator.generate(prompt, max_new_tokens=request.get("max_tokens"))
            except Exception as exc:  # the client gets an answer, never a dropped connection
                return self._send(500, {"error": {"message": f"{type(exc).__name__}: {exc}"}})
            self._send(200, _completion(request.get("model", generator.name), text))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a library does not write access logs to stderr

    return Handler


def _completion(model: str, text: str) -> dict[str, Any]:
    return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]}
