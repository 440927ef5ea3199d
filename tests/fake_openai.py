"""A scriptable OpenAI-compatible chat server, for the failure tests and a scripted teacher.

This is a fake on purpose: the real local server (``transformers serve``, used by the
end-to-end tests) cannot be made to answer 500 or 429, hang past a timeout, or go down and
come back on cue, and the tiny model it serves writes the sections a prompt asks for only in
answer to requests it was overfit on (as in ``test_verified_data.py``). This one speaks the
same HTTP API and does exactly that, from a script.

Each request takes the next action from ``script`` (then ``default``): ``ok`` (the reply
``replies(seed)`` -- by default a well-formed [Problem Description] / [Solution] one -- or a
``finish_reason=length`` one for seeds in ``length_seeds``), ``500``, ``429``, ``400``,
``401``, ``timeout`` (sleeps ``hang_s`` before answering), ``drop`` (closes the connection).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def good_reply(seed: int) -> str:
    """A teacher reply the parser accepts, unique per seed."""
    return (
        "**[Problem Description]**\n"
        f"Write a function `scale_{seed}(x)` that multiplies `x` by {seed}.\n\n"
        "**[Solution]**\n"
        f"```python\ndef scale_{seed}(x):\n    return x * {seed}\n```\n"
    )


class FakeOpenAI:
    """The server, on a free local port, in a background thread.

    Args:
        script: Actions for the first requests, in order.
        default: Action once the script is used up.
        delay_s: Seconds each answer takes.
        hang_s: Seconds a ``timeout`` action sleeps.
        length_seeds: Request seeds answered with ``finish_reason=length``.
        replies: The message for a request seed (None: :func:`good_reply`).
    """

    def __init__(
        self,
        script: list[str] | None = None,
        default: str = "ok",
        delay_s: float = 0.0,
        hang_s: float = 3.0,
        length_seeds: set[int] | None = None,
        replies: Callable[[int], str] | None = None,
    ):
        self.script: deque[str] = deque(script or [])
        self.default = default
        self.delay_s = delay_s
        self.hang_s = hang_s
        self.length_seeds = length_seeds or set()
        self.replies = replies or good_reply
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.actions: list[str] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    action = fake.script.popleft() if fake.script else fake.default
                    fake.requests.append(body)
                    fake.times.append(time.monotonic())
                    fake.actions.append(action)
                time.sleep(fake.delay_s)
                if action == "timeout":
                    time.sleep(fake.hang_s)
                    action = "ok"
                if action == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if action in ("500", "429", "400", "401"):
                    headers = {"Retry-After": "0"} if action == "429" else {}
                    error = {"error": {"message": f"scripted {action}", "type": "fake"}}
                    self._json(int(action), error, headers)
                    return
                seed = int(body.get("seed", 0))
                length = seed in fake.length_seeds
                content = "[Problem Description]\nunfinished" if length else fake.replies(seed)
                self._json(
                    200,
                    {
                        "id": f"fake-{seed}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "system_fingerprint": "fp_fake",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "length" if length else "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 100,
                            "completion_tokens": 40,
                            "total_tokens": 140,
                        },
                    },
                )

            def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
