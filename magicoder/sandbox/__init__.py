"""Run untrusted programs (model completions, teacher-written solutions) in a sandbox.

Isolation comes from bubblewrap (``bwrap``), not from anything hand-made: each
:class:`Sandbox` is one bubblewrap container holding a small job server
(``magicoder/sandbox/_runner.py``) that runs one job at a time:

- no network (a new, empty network namespace), its own PID, IPC and UTS namespaces;
- a read-only view of only what Python needs: ``/usr/lib*`` (the C libraries; no shell or
  tools from ``/usr/bin``), the interpreter's install prefix, the virtual environment and any
  other site-packages directory on ``sys.path``, and ``/etc/ld.so.cache`` -- not the home
  directory, the checkout or the data;
- a private tmpfs (``/tmp``, size-capped) as the only writable place, emptied after each job;
- an unprivileged uid (a user namespace when run as a user; as root, a uid of its own with
  every capability dropped, so the process limit applies);
- an empty environment but for ``PATH``, ``HOME``, ``TMPDIR``, locale and thread settings and
  evalplus's own knobs (``EVALPLUS_*``): no API keys or tokens of the caller;
- ``--die-with-parent`` and ``--new-session``; rlimits on processes, open files and file size
  for the container, and CPU seconds and address space for each job.

A sandbox made with ``toolchains=True`` (for programs in other languages: compilers and
interpreters live in ``/usr/bin``, ``/usr/lib/gcc``, ``/usr/lib/jvm`` ...) binds all of ``/usr``
read-only, ``/etc/alternatives`` and the JDK's ``/etc/java-*``, instead of only the libraries;
everything else -- the namespaces, the tmpfs, the uid, the environment, the limits -- is the
same. Scoring and Python programs keep the narrower view.

After each job every process it left behind is killed (``kill(-1)`` inside the PID
namespace) and the scratch directory emptied. A job that kills its parent, hangs or crashes
is answered with an error; one that kills the server ends that container, and the next job
starts a fresh one.

Modes (``eval.sandbox``, ``execute.sandbox``): ``bwrap`` requires bubblewrap and fails
clearly without it; ``auto`` uses it when it works here and otherwise falls back, with a
one-time warning, to evalplus's in-process guard (scoring) or a plain subprocess with rlimits
(programs); ``none`` is that fallback on purpose.

The sandbox protects the machine and the caller, not the score: a program that deliberately
forges its own result (evalplus keeps statuses in memory the program can reach) is not
caught.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MODES = ("auto", "bwrap", "none")
RUNNER = Path(__file__).with_name("_runner.py")
INSTALL_HINT = "apt-get install bubblewrap (or dnf/pacman install bubblewrap)"
# Inside the container: where the runner and the scratch space live.
RUNNER_PATH = "/sandbox/runner.py"
SCRATCH = "/tmp"
# evalplus reads these in each check; they are settings, not secrets.
PASSED_ENV = ("EVALPLUS_MAX_MEMORY_BYTES", "EVALPLUS_TIMEOUT_PER_TASK")
# What the toolchain profile binds besides /usr (glob patterns): links some compilers are
# reached through, and the JDK's configuration (its conf/ files link into /etc/java-<version>).
TOOLCHAIN_ETC = ("/etc/alternatives", "/etc/java-*")
# Where programs look for commands, inside the sandbox and out.
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# Seconds the host waits beyond a job's own deadline before it kills the container.
HOST_SLACK = 10.0
STARTUP_TIMEOUT = 60.0
_warned_fallback = False
_bwrap_checked: dict[str, str | None] = {}


class SandboxUnavailable(RuntimeError):
    """``sandbox=bwrap`` was asked for but bubblewrap is missing or does not work here."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of a sandboxed program.

    Attributes:
        memory_bytes: Address space of each job's processes (``RLIMIT_AS``).
        processes: Processes the container may hold at once (``RLIMIT_NPROC``), the job
            server included.
        open_files: Open file descriptors per process (``RLIMIT_NOFILE``).
        file_size_bytes: Largest file a process may write (``RLIMIT_FSIZE``).
        tmpfs_bytes: Size of the writable scratch tmpfs.
    """

    memory_bytes: int = 8 << 30
    processes: int = 64
    open_files: int = 256
    file_size_bytes: int = 64 << 20
    tmpfs_bytes: int = 512 << 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"sandbox limit {name}={value!r} must be a positive integer.")
        if self.processes < 8:
            raise ValueError(
                f"sandbox limit processes={self.processes!r} leaves no room for the job server "
                "and evalplus's own processes; use 8 or more."
            )


@dataclass(frozen=True)
class ProgramResult:
    """What running one program gave.

    Attributes:
        returncode: The program's exit status (negative: killed by that signal); None when it
            timed out or the sandbox failed.
        stdout: Its standard output (the last 64 KiB).
        stderr: Its standard error (the last 64 KiB).
        timed_out: It ran past its time limit.
        error: Why the sandbox could not report a result (None when it did).
        compile_failed: Its compile step failed (or timed out); the output is the compiler's
            and the program never ran.
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    error: str | None = None
    compile_failed: bool = False

    @property
    def ok(self) -> bool:
        """The program ran to the end and exited with status 0."""
        return self.returncode == 0 and not self.timed_out and self.error is None


def check_mode(mode: str) -> str:
    """Validate a ``sandbox`` setting.

    Raises:
        ValueError: If ``mode`` is not one of :data:`MODES`.
    """
    if mode not in MODES:
        raise ValueError(f"sandbox={mode!r} is unknown; use one of {list(MODES)}.")
    return mode


def bwrap_problem() -> str | None:
    """Why bubblewrap cannot be used here (None: it works). Checked once per process."""
    if "result" not in _bwrap_checked:
        _bwrap_checked["result"] = _probe_bwrap()
    return _bwrap_checked["result"]


def _probe_bwrap() -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    command = [
        bwrap,
        *_namespace_args(),
        *_filesystem_args(),
        "--",
        os.path.realpath(sys.executable),
        "-I",
        "-c",
        "pass",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, env={})
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap failed to start: {err}"
    if done.returncode != 0:
        return (
            f"bubblewrap is installed but cannot create a sandbox here ({done.stderr.strip()}); "
            "user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1, or "
            "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu)"
        )
    return None


def resolve_mode(mode: str) -> str:
    """The mode that will run: ``bwrap`` or ``none``.

    ``auto`` becomes ``bwrap`` when bubblewrap works here, else ``none`` with a one-time warning
    that says how to install it.

    Raises:
        ValueError: An unknown mode.
        SandboxUnavailable: ``bwrap`` asked for but not usable, with the reason and the fix.
    """
    global _warned_fallback
    check_mode(mode)
    if mode == "none":
        return "none"
    problem = bwrap_problem()
    if problem is None:
        return "bwrap"
    if mode == "bwrap":
        raise SandboxUnavailable(
            f"sandbox=bwrap: {problem}. Install it ({INSTALL_HINT}), or set sandbox=auto to "
            "fall back to evalplus's in-process guard (not a security boundary)."
        )
    if not _warned_fallback:
        _warned_fallback = True
        logger.warning(
            "sandbox=auto: %s, so programs run WITHOUT isolation (evalplus's guard only): they "
            "can read your files and environment and reach the network. To isolate them: %s",
            problem,
            INSTALL_HINT,
        )
    return "none"


def _namespace_args() -> list[str]:
    args = [
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]
    if os.geteuid() == 0:
        # A user namespace would map the sandbox to root outside, where the process limit
        # does not apply: keep uid 0 only long enough for the runner to drop to a uid of its
        # own (the only capabilities kept are those two, and setuid drops them).
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    return args


def _read_only_paths(toolchains: bool = False) -> list[str]:
    """What Python needs: the C libraries, the interpreter, its environment's site-packages;
    with ``toolchains``, all of ``/usr`` (compilers, interpreters, headers) and the
    ``/etc/alternatives`` links that name some of them, and the JDK's ``/etc/java-*``."""
    if toolchains:
        etc = [p for pattern in TOOLCHAIN_ETC for p in sorted(glob.glob(pattern))]
        paths = [p for p in ("/usr", *etc) if os.path.isdir(p)]
    else:
        # The C libraries, not /usr/bin: no shell or tools (a system Python binds /usr whole).
        paths = [p for p in ("/usr/lib", "/usr/lib64", "/usr/lib32") if os.path.isdir(p)]
    for prefix in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        paths.append(prefix)
    paths.append(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    for entry in sys.path:
        if (
            entry
            and os.path.isdir(entry)
            and os.path.basename(entry)
            in (
                "site-packages",
                "dist-packages",
            )
        ):
            paths.append(entry)
    real = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)} | set(paths))
    # Drop paths inside another bound path; keep each one once.
    kept: list[str] = []
    for path in sorted((p for p in real if os.path.isdir(p)), key=len):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _filesystem_args(tmpfs_bytes: int = 64 << 20, toolchains: bool = False) -> list[str]:
    args = ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
    created: set[str] = set()
    for path in _read_only_paths(toolchains):
        # bwrap creates missing parents 0700 when it runs as root; make them traversable.
        parent = os.path.dirname(path)
        parents = []
        while parent not in ("/", "") and parent not in created:
            parents.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(parents):
            args += ["--perms", "0755", "--dir", directory]
            created.add(directory)
        args += ["--ro-bind", path, path]
        created.add(path)
    # With the toolchains, /bin too: system() and #! lines name /bin/sh.
    for name in ("lib", "lib64", "lib32", *(("bin", "sbin") if toolchains else ())):
        link = f"/{name}"
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    if os.path.isfile("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    args += ["--size", str(tmpfs_bytes), "--perms", "1777", "--tmpfs", SCRATCH]
    return args


def _environment() -> dict[str, str]:
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": SCRATCH,
        "TMPDIR": SCRATCH,
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    for name in PASSED_ENV:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class Sandbox:
    """One sandbox container with a job server, reused job after job.

    Args:
        mode: ``auto``, ``bwrap`` or ``none`` (see the module docstring).
        limits: Resource limits; None: :class:`Limits`' defaults.
        toolchains: Bind all of ``/usr`` read-only, so compilers and interpreters other than
            Python run (see the module docstring); False: only what Python needs.

    Raises:
        ValueError: An unknown mode or a bad limit.
        SandboxUnavailable: ``mode="bwrap"`` where bubblewrap cannot run.
    """

    def __init__(self, mode: str = "auto", limits: Limits | None = None, toolchains: bool = False):
        self.mode = resolve_mode(mode)
        self.limits = limits or Limits()
        self.toolchains = toolchains
        self._process: subprocess.Popen | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None
        self.started = 0  # containers started (restarts after a job killed one)

    @property
    def isolated(self) -> bool:
        """Whether jobs run inside bubblewrap."""
        return self.mode == "bwrap"

    def _command(self) -> tuple[list[str], dict[str, str]]:
        limits = asdict(self.limits)
        env = _environment()
        if not self.isolated:
            # No container: a plain subprocess with rlimits (and no process limit, which would
            # count every process of the user).
            assert self._scratch is not None
            env["TMPDIR"] = env["HOME"] = self._scratch.name
            limits["processes"] = 0
            command = [sys.executable, "-I", "-B", str(RUNNER), "--limits", json.dumps(limits)]
            return command, env
        command = [shutil.which("bwrap") or "bwrap", *_namespace_args()]
        command += _filesystem_args(self.limits.tmpfs_bytes, self.toolchains)
        command += ["--ro-bind", str(RUNNER), RUNNER_PATH, "--chdir", SCRATCH, "--clearenv"]
        for name, value in env.items():
            command += ["--setenv", name, value]
        command += ["--", sys.executable, "-I", "-B", RUNNER_PATH, "--pid-namespace"]
        if os.geteuid() == 0:
            # A uid no other process uses, so the process limit counts this container only.
            command += ["--uid", str(100_000 + os.getpid())]
        command += ["--limits", json.dumps(limits)]
        return command, {}

    def _start(self) -> subprocess.Popen:
        if not self.isolated and self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="magicoder-sandbox-")
        command, env = self._command()
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.started += 1
        line = self._read_line(process, time.monotonic() + STARTUP_TIMEOUT)
        if line is None or not line.get("ready"):
            stderr = self._kill(process)
            raise SandboxUnavailable(
                f"the sandbox's job server did not start ({stderr.strip()[-2000:]!r}); "
                f"command: {' '.join(command[:3])} ..."
            )
        return process

    @staticmethod
    def _read_line(process: subprocess.Popen, deadline: float) -> dict[str, Any] | None:
        """One JSON answer from the job server, or None at EOF or past the deadline."""
        assert process.stdout is not None
        fd = process.stdout.fileno()
        data = b""
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            data += chunk
        try:
            answer = json.loads(data)
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def _kill(self, process: subprocess.Popen) -> str:
        """Kill a container (its PID namespace goes with it); return what it wrote to stderr."""
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            _, stderr = process.communicate(timeout=10)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            stderr = b""
        if process is self._process:
            self._process = None
        return (stderr or b"").decode("utf-8", "replace")

    def call(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run one job (``{"kind": "evalplus" | "program", "deadline": seconds, ...}``).

        Returns:
            The job server's answer: ``{"ok": True, ...}``, or ``{"ok": False, "error": ...}``
            (with ``"timed_out": True`` when it ran past its deadline). A container that died
            or stopped answering is killed and replaced before the next job.
        """
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
        process = self._process
        assert process.stdin is not None
        payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            process.stdin.write(struct.pack(">I", len(payload)) + payload)
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._kill(process)
            return {"ok": False, "error": "the sandbox died before it took the job"}
        answer = self._read_line(process, time.monotonic() + float(job["deadline"]) + HOST_SLACK)
        if answer is None:
            timed_out = process.poll() is None
            self._kill(process)
            return {
                "ok": False,
                "timed_out": timed_out,
                "error": "the sandbox stopped answering" if timed_out else "the sandbox died",
            }
        return answer

    def run(
        self,
        program: str,
        *,
        stdin: str = "",
        timeout: float = 10.0,
        filename: str = "main.py",
        compile: Sequence[str] | None = None,
        argv: Sequence[str] | None = None,
        compile_timeout: float = 30.0,
    ) -> ProgramResult:
        """Run one program (source text) with ``stdin``, up to ``timeout`` seconds.

        Args:
            program: The program's source, written to ``filename`` in a fresh directory.
            stdin: Text fed to its standard input.
            timeout: Wall-clock seconds the program may run (CPU seconds are capped alike).
            filename: The source file's name (what ``compile`` and ``argv`` refer to).
            compile: A command run first in that directory, up to ``compile_timeout`` seconds
                (e.g. ``["g++", "-o", "main", "main.cpp"]``); its failure is the result, with
                ``compile_failed``. None: nothing to build.
            argv: The command that runs the program (e.g. ``["./main"]``); None: this Python
                on ``filename``.
            compile_timeout: Seconds the compile step may take.
        """
        budget = timeout + (compile_timeout if compile else 0.0)
        answer = self.call(
            {
                "kind": "program",
                "source": program,
                "filename": filename,
                "compile": list(compile) if compile else None,
                "compile_timeout": compile_timeout,
                "argv": list(argv) if argv else None,
                "stdin": stdin,
                "timeout": timeout,
                "deadline": budget + 5,
            }
        )
        if not answer.get("ok"):
            return ProgramResult(
                None, "", "", timed_out=bool(answer.get("timed_out")), error=answer.get("error")
            )
        return ProgramResult(
            answer["returncode"],
            answer["stdout"],
            answer["stderr"],
            answer["timed_out"],
            compile_failed=bool(answer.get("compile_failed")),
        )

    def close(self) -> None:
        """Stop the container (closing its stdin ends the job server and its namespace)."""
        if self._process is not None:
            self._kill(self._process)
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run(
    program: str,
    *,
    stdin: str = "",
    timeout: float = 10.0,
    mode: str = "auto",
    limits: Limits | None = None,
) -> ProgramResult:
    """Run one untrusted Python program in a fresh sandbox.

    Args:
        program: The program's source.
        stdin: Text fed to its standard input.
        timeout: Wall-clock seconds before it is killed (CPU seconds are capped alike).
        mode: ``auto``, ``bwrap`` or ``none`` (see the module docstring).
        limits: Resource limits; None: :class:`Limits`' defaults.

    Returns:
        Its exit status and output (see :class:`ProgramResult`).

    Raises:
        SandboxUnavailable: ``mode="bwrap"`` where bubblewrap cannot run.
    """
    with Sandbox(mode, limits) as sandbox:
        return sandbox.run(program, stdin=stdin, timeout=timeout)


def evalplus_deadline(ref_times: list[list[float]], min_time_limit: float, factor: float) -> float:
    """Seconds a whole evalplus check may take: each test set's own timeout as
    ``untrusted_check`` computes it (capped by ``EVALPLUS_TIMEOUT_PER_TASK``, default 60), its
    join and kill margins, and a few seconds to start."""
    cap = float(os.environ.get("EVALPLUS_TIMEOUT_PER_TASK", 60))
    total = 5.0
    for times in ref_times:
        limit = sum(max(min_time_limit, factor * t) for t in times)
        total += min(cap, limit) + 2.5
    return math.ceil(total)
