"""Hostile programs through the real sandbox (bubblewrap) and the real scorer.

Each attack is planted in HumanEval/0: the attack first, then the canonical answer, so the
task would pass if the attack worked (and did, through evalplus's guard alone). Through the
sandbox each must leave no trace outside, score its task as not passing, let the other tasks
be scored (canonical answers: they pass) and leave no process behind.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from magicoder.evaluation.benchmarks import Benchmark, load_benchmark
from magicoder.evaluation.scoring import Scorer
from magicoder.sandbox import Sandbox, bwrap_problem

pytestmark = pytest.mark.skipif(
    bwrap_problem() is not None, reason=f"needs a working bubblewrap: {bwrap_problem()}"
)

SECRET_NAME = "MAGICODER_TEST_SECRET"
SECRET = "s3cret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def humaneval(data_dir: Path) -> Benchmark:
    return load_benchmark("humaneval", str(data_dir / "HumanEvalPlus-v0.1.10.jsonl.gz"), limit=3)


@pytest.fixture(scope="module")
def scorer() -> Iterator[Scorer]:
    """One sandboxed scorer for the module, started with a secret in its environment (and the
    machine's expected-output cache, shared with the other scoring tests)."""
    os.environ[SECRET_NAME] = SECRET
    try:
        with Scorer(1, sandbox="bwrap") as scorer:
            yield scorer
    finally:
        os.environ.pop(SECRET_NAME, None)


def _marker_processes(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def _score_attack(
    scorer: Scorer, humaneval: Benchmark, attack: str, module_level: str = ""
) -> list[dict]:
    """Score HumanEval/0 with ``attack`` planted before its canonical answer; the other tasks
    get their canonical answers."""
    samples = []
    for task_id, problem in humaneval.problems.items():
        solution = problem["prompt"] + problem["canonical_solution"]
        if task_id == "HumanEval/0":
            body = textwrap.indent(textwrap.dedent(attack).strip() + "\n", "    ")
            solution = module_level + problem["prompt"] + body + problem["canonical_solution"]
        samples.append({"task_id": task_id, "solution": solution})
    rows = scorer.score(humaneval, samples)
    assert [row["task_id"] for row in rows] == list(humaneval.problems)
    attacked, *others = rows
    assert (attacked["base_status"], attacked["plus_status"]) != ("pass", "pass")
    assert attacked["base_status"] != "pass", attacked
    assert all(row["base_status"] == row["plus_status"] == "pass" for row in others), others
    return rows


def test_shell_through_posix_system_does_not_run_outside(
    scorer: Scorer, humaneval: Benchmark, tmp_path: Path
) -> None:
    target = tmp_path / "pwned-posix"
    attack = f"""
    import posix
    if posix.system("echo pwned > {target}") != 0:
        raise RuntimeError("no shell")
    """
    _score_attack(scorer, humaneval, attack)
    assert not target.exists()


def test_shell_through_ctypes_does_not_run_outside(
    scorer: Scorer, humaneval: Benchmark, tmp_path: Path
) -> None:
    target = tmp_path / "pwned-ctypes"
    attack = f"""
    import ctypes
    if ctypes.CDLL(None).system(b"echo pwned > {target}") != 0:
        raise RuntimeError("no shell")
    """
    _score_attack(scorer, humaneval, attack)
    assert not target.exists()


def test_write_outside_the_sandbox_leaves_no_file(
    scorer: Scorer, humaneval: Benchmark, tmp_path: Path
) -> None:
    target = tmp_path / "pwned-write"
    attack = f"""
    with open({str(target)!r}, "w") as f:
        f.write("pwned")
    """
    _score_attack(scorer, humaneval, attack)
    assert not target.exists()


def test_environment_secret_of_the_caller_is_not_visible(
    scorer: Scorer, humaneval: Benchmark
) -> None:
    attack = f"""
    import os
    assert os.environ.get({SECRET_NAME!r}) == {SECRET!r}
    """
    _score_attack(scorer, humaneval, attack)


def test_tcp_connection_to_the_host_never_arrives(scorer: Scorer, humaneval: Benchmark) -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        attack = f"""
        import socket
        socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
        """
        _score_attack(scorer, humaneval, attack)
        with pytest.raises(BlockingIOError):  # no connection is waiting: it received 0
            listener.accept()


def test_killing_the_parent_fails_only_that_task(scorer: Scorer, humaneval: Benchmark) -> None:
    attack = """
    import posix, signal
    posix.kill(posix.getppid(), signal.SIGKILL)
    """
    _score_attack(scorer, humaneval, attack)
    # The scorer survives it: the next call scores as usual.
    rows = scorer.score(
        humaneval,
        [
            {"task_id": t, "solution": p["prompt"] + p["canonical_solution"]}
            for t, p in humaneval.problems.items()
        ],
    )
    assert [row["base_status"] for row in rows] == ["pass"] * 3


def test_forked_sleepers_are_all_gone_afterwards(scorer: Scorer, humaneval: Benchmark) -> None:
    marker = "magicoder-sleeper-" + uuid.uuid4().hex
    attack = f"""
    import posix, sys
    for _ in range(20):
        if posix.fork() == 0:
            posix.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)",
                                         {marker!r}])
    """
    _score_attack(scorer, humaneval, attack)
    assert _marker_processes(marker) == []


def test_a_16_gib_allocation_fails_and_the_host_is_fine(
    scorer: Scorer, humaneval: Benchmark
) -> None:
    before = psutil.virtual_memory().available
    attack = """
    block = bytearray(16 << 30)
    block[-1] = 1
    """
    _score_attack(scorer, humaneval, attack)
    assert psutil.virtual_memory().available > before / 2


def test_a_10_gb_write_is_stopped(scorer: Scorer, humaneval: Benchmark) -> None:
    attack = """
    chunk = b"x" * (64 << 20)
    with open("big.bin", "wb") as f:
        for _ in range(160):  # 10 GiB
            f.write(chunk)
    """
    started = time.perf_counter()
    _score_attack(scorer, humaneval, attack)
    assert time.perf_counter() - started < 60


def test_exiting_before_the_tests_run_does_not_pass(scorer: Scorer, humaneval: Benchmark) -> None:
    rows = _score_attack(scorer, humaneval, "pass", module_level="import os\nos._exit(0)\n")
    assert rows[0]["base_status"] in ("fail", "timeout")


def test_a_program_in_the_sandbox_sees_only_its_own_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same attacks through :meth:`Sandbox.run`, reporting what they saw."""
    target = tmp_path / "pwned"
    marker = "magicoder-orphan-" + uuid.uuid4().hex
    program = f"""
import ctypes, json, os, posix, socket, subprocess, sys
seen = {{}}
seen["uid"] = os.getuid()
seen["secret"] = os.environ.get({SECRET_NAME!r})
seen["shell"] = posix.system("echo pwned > {target}")
try:
    open({str(target)!r}, "w").write("pwned")
    seen["write"] = "ok"
except OSError as err:
    seen["write"] = type(err).__name__
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2)
    seen["net"] = "ok"
except OSError as err:
    seen["net"] = type(err).__name__
seen["root"] = sorted(os.listdir("/"))
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", {marker!r}],
                 start_new_session=True)
print(json.dumps(seen))
"""
    monkeypatch.setenv(SECRET_NAME, SECRET)
    with Sandbox("bwrap") as sandbox:
        result = sandbox.run(program, timeout=20)
        again = sandbox.run("print(sum(range(10)))")
    assert result.ok, result
    seen = json.loads(result.stdout)
    assert seen["uid"] != 0
    assert seen["secret"] is None
    assert seen["shell"] != 0 and seen["write"] != "ok" and seen["net"] != "ok"
    assert "home" not in seen["root"] and "sandbox" in seen["root"]
    assert not target.exists()
    assert _marker_processes(marker) == []  # killed when its job ended
    assert again.ok and again.stdout == "45\n"


def test_limits_stop_runaway_programs() -> None:
    with Sandbox("bwrap") as sandbox:
        hang = sandbox.run("while True: pass", timeout=1)
        fork_bomb = sandbox.run("import os\nwhile True:\n    os.fork()\n", timeout=5)
        after = sandbox.run("print('alive')")
    assert hang.timed_out and not hang.ok
    assert not fork_bomb.ok
    assert after.ok and after.stdout == "alive\n"
