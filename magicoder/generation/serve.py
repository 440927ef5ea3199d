"""Serve a local model as an OpenAI-compatible teacher with ``transformers serve``.

``transformers serve`` answers ``/v1/chat/completions`` by applying the tokenizer's chat
template, so a base model without one (such as the tiny model) needs one first:
:func:`with_chat_template` makes a directory that links the model's files and adds a plain
template. :class:`TransformersServer` starts the server on a free port and stops it again
(offline tests and benchmarks use both; for real work start the server yourself).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)
"""``role: content`` lines, then ``assistant:`` — enough for a base model to continue."""


def has_chat_template(model_dir: Path) -> bool:
    """Whether a ``save_pretrained`` directory ships a chat template."""
    if (model_dir / "chat_template.jinja").is_file() or (
        model_dir / "chat_template.json"
    ).is_file():
        return True
    config = model_dir / "tokenizer_config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get("chat_template"))


def with_chat_template(model_dir: Path, dest: Path, template: str = PLAIN_CHAT_TEMPLATE) -> Path:
    """A directory serving ``model_dir`` with a chat template (``model_dir`` when it has one).

    The model's files are symlinked (copied where links are not possible), not rewritten.

    Args:
        model_dir: A ``save_pretrained`` directory.
        dest: Directory to create.
        template: Jinja chat template to add.

    Returns:
        The directory to serve.
    """
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a save_pretrained model directory")
    if has_chat_template(model_dir):
        return model_dir
    dest.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        target = dest / item.name
        if target.exists() or target.is_symlink():
            continue
        try:
            target.symlink_to(item.resolve())
        except OSError:
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, target)
    (dest / "chat_template.jinja").write_text(template)
    return dest


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TransformersServer:
    """``transformers serve`` in a subprocess, pinned to one model, on a free local port.

    Args:
        model: Model directory (or hub id) to serve.
        continuous_batching: Pass ``--continuous-batching``.
        device: ``--device`` (e.g. ``cpu``, ``cuda:0``, ``auto``).
        port: Port (None: a free one).
        startup_timeout: Seconds to wait for the server to answer.
        log_path: File for the server's output (None: discarded).
        extra_args: More ``transformers serve`` arguments.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        continuous_batching: bool = False,
        device: str = "cpu",
        port: int | None = None,
        startup_timeout: float = 180.0,
        log_path: Path | None = None,
        extra_args: list[str] | None = None,
    ):
        self.model = str(model)
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        exe = Path(sys.executable).with_name("transformers")
        self.command = [
            str(exe) if exe.is_file() else "transformers",
            "serve",
            self.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--device",
            device,
            "--continuous-batching" if continuous_batching else "--no-continuous-batching",
            *(extra_args or []),
        ]
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> TransformersServer:
        """Start the server and wait until it serves the model.

        Raises:
            RuntimeError: When it exits or does not answer in time (with its last output).
        """
        out = self.log_path.open("wb") if self.log_path is not None else subprocess.DEVNULL
        env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        self.process = subprocess.Popen(
            self.command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"`{' '.join(self.command)}` exited: {self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        log.info("transformers serve is up at %s", self.base_url)
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"`{' '.join(self.command)}` did not answer within {self.startup_timeout:.0f} s: "
            f"{self._tail()}"
        )

    def _tail(self) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(no log; pass log_path to keep the server's output)"
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Stop the server (its whole process group)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> TransformersServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
