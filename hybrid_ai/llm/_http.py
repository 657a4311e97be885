"""An OpenAI-compatible chat-completions client for served models (vLLM, Ollama, hosted APIs).

    client = ChatClient(base_url="http://127.0.0.1:8000/v1", model="smollm2")
    client.generate("Say hi")                 # the same call the local Generator answers

Timeouts, retries with exponential backoff on connection errors, 429 and 5xx, and a limit on
concurrent requests. It meets the ``generate`` half of :class:`Generator`, so ``extract`` can
use a served model; ``zero_shot`` needs per-token likelihoods and stays local.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from .._errors import HybridAIError

__all__ = ["ChatClient", "ChatError"]

_RETRYABLE = {408, 409, 429, 500, 502, 503, 504}


class ChatError(HybridAIError):
    """The server refused or failed after the retries; the message has status and body."""


class ChatClient:
    """A thread-safe chat-completions client; construction opens nothing."""

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None,
                 timeout: float = 30.0, retries: int = 2, backoff: float = 0.25,
                 max_concurrency: int = 4, max_new_tokens: int = 128,
                 system: str | None = None) -> None:
        if retries < 0 or max_concurrency < 1:
            raise ValueError("retries must be >= 0 and max_concurrency >= 1")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_new_tokens, self.system = max_new_tokens, system
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.model}@{self.base_url}"

    def warm_up(self) -> ChatClient:
        """Open the connection pool (no request is sent)."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, headers=self._headers)
        return self

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def generate(self, prompt: str, *, max_new_tokens: int | None = None) -> str:
        """The assistant's reply to ``prompt`` as a user message (temperature 0)."""
        messages = [{"role": "user", "content": prompt}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        body = {"model": self.model, "messages": messages, "temperature": 0,
                "max_tokens": max_new_tokens or self.max_new_tokens}
        with self._slots:
            reply = self._post("/chat/completions", body)
        return _content(reply, self.base_url)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        client = self.warm_up()._client
        assert client is not None
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = client.post(self.base_url + path, json=body)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code not in _RETRYABLE:
                return _json_or_raise(response)
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        raise ChatError(f"{self.base_url}{path} failed after {self.retries + 1} attempt(s): "
                        f"{last}; check that the server is up and the model name is right")


def _json_or_raise(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise ChatError(f"{response.request.url} answered HTTP {response.status_code}: "
                        f"{response.text[:200]}")
    try:
        return response.json()
    except ValueError:
        raise ChatError(f"{response.request.url} answered non-JSON: {response.text[:200]}") \
            from None


def _content(reply: Any, where: str) -> str:
    try:
        return str(reply["choices"][0]["message"]["content"])
    except (KeyError, IndexError, TypeError):
        raise ChatError(f"{where} answered without choices[0].message.content: "
                        f"{str(reply)[:200]}") from None
