"""The job server that runs inside a sandbox (standalone: imports only the standard library
until a job needs evalplus).

It is started by :class:`magicoder.sandbox.Sandbox` as ``python -I -B _runner.py [--uid N]
[--pid-namespace] --limits JSON``, reads jobs from stdin (a 4-byte big-endian length, then a
pickle: the host is trusted) and answers each with one JSON line on stdout (never a pickle:
nothing the sandbox says is executed by the host). Before it reads a job it moves its two
protocol descriptors out of the way and points 0/1/2 at ``/dev/null``, so a program writing to
file descriptor 1 cannot speak the protocol.

Each job runs in a forked *job process* that closes the protocol descriptors, sets the per-job
rlimits (CPU seconds, address space) and does the work; the server waits for its answer up to
the job's deadline, then kills every other process (the whole PID namespace when it has one,
else the job's process group) and empties the scratch directory, so each job starts clean.
A job that kills its parent (the job process) is answered with an error; one that kills the
server ends the sandbox, and the host starts a new one.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

OUTPUT_LIMIT = 64 * 1024  # characters of stdout/stderr kept per program run


def _drop_privileges(uid: int) -> None:
    """Run as ``uid`` with no capabilities (the host was root: no user namespace mapped us)."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise SystemExit("sandbox runner could not drop root privileges")


def _set_limit(name: str, value: int) -> None:
    resource.setrlimit(getattr(resource, name), (value, value))


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _kill_others(pid_namespace: bool, job_pid: int) -> None:
    """SIGKILL every process the job may have left (children, daemons, forked sleepers)."""
    if pid_namespace:
        # In its own PID namespace, kill(-1) reaches every process of the namespace except
        # its init and the caller: the job and everything it started, however detached.
        for _ in range(100):
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                break
            _reap()
            time.sleep(0.001)
    else:
        try:
            os.killpg(job_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _reap()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _clean_scratch(scratch: str) -> None:
    for name in os.listdir(scratch):
        path = os.path.join(scratch, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def _load_evalplus() -> Any:
    """evalplus's checker, imported once by the server (not in every job: ~1.5 s each)."""
    import multiprocessing

    from evalplus.evaluate import check_correctness

    # evalplus starts one process per program and test set: fork them from here, as it does.
    multiprocessing.set_start_method("fork", force=True)
    return check_correctness


def _unpack_expected(packed: dict[str, Any]) -> dict[str, Any]:
    """The expected outputs, which arrive as one pickled blob: unpickled here only, once."""
    return {
        **pickle.loads(packed["outputs"]),
        "base_time": packed["base_time"],
        "plus_time": packed["plus_time"],
    }


def _evalplus_job(job: dict[str, Any]) -> dict[str, Any]:
    result = _load_evalplus()(
        job["dataset"],
        0,
        job["problem"],
        job["solution"],
        job["expected"],
        False,  # base_only
        True,  # fast_check
        job["problem"]["task_id"],
        job["min_time_limit"],
        job["gt_time_limit_factor"],
    )
    return {
        split: [str(result[split][0]), [bool(x) for x in result[split][1]]]
        for split in ("base", "plus")
    }


def _program_job(job: dict[str, Any], scratch: str) -> dict[str, Any]:
    """Write the program (``source`` as ``filename``, and any ``files``) to a fresh directory;
    run ``compile`` there first when given (its failure is the answer, ``compile_failed``),
    then ``argv`` (default: this interpreter on the file)."""
    # One fixed name (the scratch is emptied after each job): the paths in a traceback, and
    # so the captured output, are the same for the same program on any run.
    workdir = os.path.join(scratch, "job")
    os.mkdir(workdir)
    path = os.path.join(workdir, os.path.basename(job.get("filename") or "main.py"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(job["source"])
    for name, content in (job.get("files") or {}).items():
        with open(os.path.join(workdir, os.path.basename(name)), "w", encoding="utf-8") as f:
            f.write(content)
    if job.get("compile"):
        built = _run_command(job["compile"], workdir, "", job["compile_timeout"], "compile")
        if built["timed_out"] or built["returncode"] != 0:
            return {**built, "compile_failed": True}
    argv = job.get("argv") or [sys.executable, "-I", "-B", path]
    return _run_command(argv, workdir, job.get("stdin", ""), job["timeout"], "run")


def _run_command(
    argv: list[str], workdir: str, stdin: str, timeout: float, name: str
) -> dict[str, Any]:
    # Output goes to files, not pipes: a child the program leaves behind would hold a pipe
    # open and keep the run waiting for its end.
    out_path = os.path.join(workdir, f".{name}.stdout")
    err_path = os.path.join(workdir, f".{name}.stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=workdir
            )
        except OSError as error:  # the compiler or interpreter is not here
            return {"returncode": 127, "timed_out": False, "stdout": "", "stderr": repr(error)}
        try:
            process.communicate(stdin.encode(), timeout=timeout)
            returncode, timed_out = process.returncode, False
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            returncode, timed_out = None, True
    return {
        "returncode": returncode,
        "timed_out": timed_out,
        "stdout": _tail(out_path),
        "stderr": _tail(err_path),
    }


def _tail(path: str) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - OUTPUT_LIMIT))
        return f.read().decode("utf-8", "replace")


def _run_job(
    job: dict[str, Any],
    limits: dict[str, int],
    protocol_fds: tuple[int, int],
    pid_namespace: bool,
    scratch: str,
) -> dict[str, Any]:
    if job["kind"] == "evalplus":
        _load_evalplus()
        # Before the job's clock and limits start, as the whole job's unpickling is.
        job = {**job, "expected": _unpack_expected(job["expected"])}
    deadline = time.monotonic() + float(job["deadline"])
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the job process
        code = 1
        try:
            os.close(read_end)
            for fd in protocol_fds:
                os.close(fd)
            os.setpgid(0, 0)
            _set_limit("RLIMIT_CPU", int(job["deadline"]) + 1)
            _set_limit("RLIMIT_AS", limits["memory_bytes"])
            os.chdir(scratch)
            if job["kind"] == "evalplus":
                answer = _evalplus_job(job)
            else:
                answer = _program_job(job, scratch)
            os.write(write_end, json.dumps({"ok": True, **answer}).encode())
            code = 0
        except BaseException as err:  # report any failure of the job itself
            try:
                os.write(write_end, json.dumps({"ok": False, "error": repr(err)}).encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_end], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    status = None
    if not timed_out:
        # The answer is in; give the job process a moment to exit before it is killed.
        for _ in range(200):
            done_pid, status = os.waitpid(pid, os.WNOHANG)
            if done_pid:
                break
            time.sleep(0.005)
    _kill_others(pid_namespace, pid)
    _clean_scratch(scratch)
    if timed_out:
        return {"ok": False, "timed_out": True, "error": f"job ran past {job['deadline']} s"}
    try:
        answer = json.loads(b"".join(chunks))
        if not isinstance(answer, dict):
            raise ValueError
        return answer
    except ValueError:
        how = f"status {status}" if status is not None else "no status"
        return {"ok": False, "error": f"job process died before answering ({how})"}


def main(argv: list[str]) -> None:
    uid = None
    pid_namespace = False
    limits: dict[str, int] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--uid":
            uid = int(args.pop(0))
        elif arg == "--pid-namespace":
            pid_namespace = True
        elif arg == "--limits":
            limits = json.loads(args.pop(0))
    if uid is not None and os.getuid() == 0:
        _drop_privileges(uid)
    if limits["processes"]:  # 0: not enforced (no sandbox: it would count all the user's)
        _set_limit("RLIMIT_NPROC", limits["processes"])
    _set_limit("RLIMIT_NOFILE", limits["open_files"])
    _set_limit("RLIMIT_FSIZE", limits["file_size_bytes"])
    _set_limit("RLIMIT_CORE", 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    # The protocol moves to private descriptors; 0/1/2 become /dev/null for the jobs.
    job_in, answer_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    scratch = os.environ.get("TMPDIR") or tempfile.gettempdir()
    os.write(answer_out, b'{"ready": true}\n')
    while True:
        try:
            (size,) = struct.unpack(">I", _read_exact(job_in, 4))
            job = pickle.loads(_read_exact(job_in, size))
        except EOFError:
            return
        answer = _run_job(job, limits, (job_in, answer_out), pid_namespace, scratch)
        os.write(answer_out, json.dumps(answer).encode() + b"\n")


if __name__ == "__main__":
    main(sys.argv[1:])
