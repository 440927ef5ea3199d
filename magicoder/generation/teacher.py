"""The teacher: any OpenAI-compatible chat-completions endpoint, with retries, a rate limit and
a response cache.

Works with OpenAI itself and with local servers that speak the same API (vLLM, TGI, llama.cpp,
Ollama, ``transformers serve``): only the base URL, the model name and the API-key variable
differ (``conf/teacher/*.yaml``).

Retries use tenacity rather than the ``openai`` client's built-in ones (which are switched
off), so that the attempt count and the backoff are configurable and every retry is counted
and logged. Retried: timeouts, connection errors, HTTP 408/409/429 and 5xx; a ``Retry-After``
header is honoured. The requests-per-minute limit is aiolimiter's leaky bucket.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import openai
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 429})
_CONFIG_STATUS = frozenset({401, 403, 404})


class TeacherUnavailable(RuntimeError):
    """The endpoint kept failing (timeouts, connection errors, 429 or 5xx) after every retry."""


class TeacherConfigError(ValueError):
    """The endpoint refuses every request: bad API key, unknown model or wrong URL."""


class RequestRejected(Exception):
    """The endpoint refused this one request (HTTP 400/413/422, e.g. a prompt too long)."""


@dataclass
class TeacherSettings:
    """How to reach the teacher and how to sample from it (``conf/teacher/*.yaml``).

    Attributes:
        name: Short name, used in file names.
        base_url: OpenAI-compatible API root, e.g. ``http://localhost:8000/v1``.
        model: Model name as the endpoint knows it.
        api_key_env: Environment variable holding the API key (None: the endpoint needs none).
        temperature: Sampling temperature (the paper: 0).
        max_tokens: Most new tokens per response (the paper: 2500).
        seed: Base seed; request ``i`` is sent ``seed + i`` (the paper: 976).
        top_p: Nucleus sampling (None: the endpoint's default).
        extra_body: Extra request fields for a particular server.
        concurrency: Requests in flight at once.
        requests_per_minute: Rate limit (None: unlimited).
        timeout: Seconds before a request is abandoned (and retried).
        max_attempts: Attempts per request, the first included.
        initial_wait: First backoff wait in seconds; it doubles per retry (plus jitter).
        max_wait: Longest backoff wait in seconds.
        price_per_million_input: USD per million prompt tokens (for the cost estimate).
        price_per_million_output: USD per million completion tokens.
    """

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int = 2500
    seed: int = 976
    top_p: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 8
    requests_per_minute: float | None = None
    timeout: float = 600.0
    max_attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 60.0
    price_per_million_input: float = 0.0
    price_per_million_output: float = 0.0

    def check(self) -> None:
        """Raise on settings that cannot work, naming the key to fix."""
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"teacher.base_url={self.base_url!r} is not an http(s) URL; give the API root, "
                "e.g. http://localhost:8000/v1"
            )
        if not self.model or self.model == "???":
            raise ValueError("teacher.model is not set; give the model name the endpoint serves")
        for key in ("concurrency", "max_attempts", "max_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"teacher.{key}={getattr(self, key)} must be at least 1")
        if self.requests_per_minute is not None and self.requests_per_minute <= 0:
            raise ValueError(
                f"teacher.requests_per_minute={self.requests_per_minute} must be positive or null"
            )
        self.api_key()

    def api_key(self) -> str:
        """The API key from ``api_key_env``, or a placeholder for endpoints that need none."""
        if self.api_key_env is None:
            return "none"
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ValueError(
                f"environment variable {self.api_key_env} (teacher.api_key_env) is not set; "
                "export your API key there, or set teacher.api_key_env=null for an endpoint "
                "that needs no key"
            )
        return key

    def identity(self) -> dict[str, Any]:
        """What determines the responses (not where they come from or how fast)."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "top_p": self.top_p,
            "extra_body": dict(self.extra_body),
        }

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Estimated USD for the given token counts."""
        return (
            prompt_tokens * self.price_per_million_input
            + completion_tokens * self.price_per_million_output
        ) / 1e6


@dataclass(frozen=True)
class Completion:
    """One chat completion, as far as the pipeline needs it.

    Attributes:
        content: The assistant message (None when the server sent none).
        finish_reason: Why generation stopped: "stop", "length", ...
        model: The model that answered.
        system_fingerprint: The backend configuration id (OpenAI), if any.
        prompt_tokens: Prompt tokens billed (0 when the server does not report usage).
        completion_tokens: Completion tokens billed.
        cached: Whether it came from the response cache (nothing was sent).
    """

    content: str | None
    finish_reason: str | None
    model: str
    system_fingerprint: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the cache."""
        return {
            "content": self.content,
            "finish_reason": self.finish_reason,
            "model": self.model,
            "system_fingerprint": self.system_fingerprint,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


def request_fingerprint(base_url: str, body: dict[str, Any]) -> str:
    """Key of a request in the response cache: the endpoint and everything in the body."""
    payload = json.dumps({"base_url": base_url.rstrip("/"), **body}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    """Completions by request fingerprint, in a SQLite file shared by all runs.

    SQLite (standard library) handles several processes using one cache file.

    Args:
        path: The database file (created when missing).
    """

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        self._db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached completion for ``key``, if any."""
        row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store a completion."""
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed request is worth retrying: timeouts, connection errors, 408/409/429/5xx."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRY_STATUS or exc.status_code >= 500
    return False


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` / ``retry-after-ms``), if any."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


class _RetryAfterOrExponential(wait_base):
    """The server's ``Retry-After`` when it sends one, else exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float):
        self.maximum = maximum
        self.exponential = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        wait = _retry_after(outcome.exception() if outcome is not None else None)
        if wait is not None:
            return min(wait, self.maximum)
        return float(self.exponential(retry_state))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return f"connection error ({cause or exc})"
    return repr(exc)


class TeacherClient:
    """Send chat completions to the teacher: rate-limited, retried, cached.

    Use as an async context manager. ``retries`` counts retried attempts so far.

    Args:
        settings: The teacher config.
        cache: A response cache (None: every request goes to the endpoint).
    """

    def __init__(self, settings: TeacherSettings, cache: ResponseCache | None = None):
        settings.check()
        self.settings = settings
        self.cache = cache
        self.retries = 0
        self.requests = 0
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key(),
            timeout=settings.timeout,
            max_retries=0,  # tenacity retries (see the module docstring)
        )
        rpm = settings.requests_per_minute
        # One request per 60/rpm seconds: an even rate, without a burst at the start.
        self._limiter = AsyncLimiter(1, 60 / rpm) if rpm else None

    async def __aenter__(self) -> TeacherClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.close()

    def body(self, messages: list[dict[str, str]], seed: int) -> dict[str, Any]:
        """The request body for ``messages`` sent with ``seed``."""
        s = self.settings
        body: dict[str, Any] = {
            "model": s.model,
            "messages": messages,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "seed": seed,
        }
        if s.top_p is not None:
            body["top_p"] = s.top_p
        if s.extra_body:
            body["extra_body"] = dict(s.extra_body)
        return body

    async def complete(self, messages: list[dict[str, str]], seed: int) -> Completion:
        """One chat completion (from the cache when it holds this exact request).

        Args:
            messages: Chat messages.
            seed: The request's sampling seed.

        Returns:
            The first choice with its token usage.

        Raises:
            TeacherUnavailable: When every attempt failed with a retryable error.
            TeacherConfigError: On HTTP 401/403/404 (a setting is wrong; nothing will work).
            RequestRejected: On another 4xx for this request.
        """
        body = self.body(messages, seed)
        key = request_fingerprint(self.settings.base_url, body)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return Completion(**hit, cached=True)
        completion = await self._send(body)
        if self.cache is not None:
            self.cache.put(key, completion.to_json())
        return completion

    async def _send(self, body: dict[str, Any]) -> Completion:
        s = self.settings

        def before_sleep(state: RetryCallState) -> None:
            self.retries += 1
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "teacher %s: attempt %d/%d failed (%s); retrying in %.2f s",
                s.base_url,
                state.attempt_number,
                s.max_attempts,
                _describe(exc) if exc is not None else "?",
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(s.max_attempts),
            wait=_RetryAfterOrExponential(s.initial_wait, s.max_wait),
            before_sleep=before_sleep,
            reraise=True,
        )
        extra = body.pop("extra_body", None)
        try:
            async for attempt in retrying:
                with attempt:
                    if self._limiter is not None:
                        await self._limiter.acquire()
                    self.requests += 1
                    response = await self._client.chat.completions.create(**body, extra_body=extra)
        except openai.APIStatusError as err:
            if err.status_code in _CONFIG_STATUS:
                hint = {
                    401: f"check the API key in ${s.api_key_env} (teacher.api_key_env)",
                    403: f"check the API key in ${s.api_key_env} and its permissions",
                    404: "check teacher.base_url (usually ends in /v1) and teacher.model",
                }[err.status_code]
                raise TeacherConfigError(
                    f"teacher {s.base_url} refused model {s.model!r} ({_describe(err)}); {hint}"
                ) from err
            if not is_retryable(err):
                raise RequestRejected(_describe(err)) from err
            raise TeacherUnavailable(
                f"teacher {s.base_url} failed {s.max_attempts} attempts ({_describe(err)})"
            ) from err
        except openai.APIConnectionError as err:
            raise TeacherUnavailable(
                f"teacher {s.base_url} failed {s.max_attempts} attempts ({_describe(err)})"
            ) from err
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        return Completion(
            content=choice.message.content if choice is not None else None,
            finish_reason=choice.finish_reason if choice is not None else "no choices",
            model=response.model or s.model,
            system_fingerprint=getattr(response, "system_fingerprint", None),
            prompt_tokens=int(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=int(usage.completion_tokens or 0) if usage else 0,
        )
