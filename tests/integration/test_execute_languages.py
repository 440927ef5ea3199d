"""``execute`` on rows in other languages: C++, C, JavaScript, shell and Java through the real
compilers and interpreters, inside the toolchain sandbox (bubblewrap with ``/usr`` read-only)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path

import psutil
import pytest

from magicoder.curation.execute import (
    TOOLCHAINS,
    build_program,
    content_hash,
    execute_rows,
    find_toolchains,
)
from magicoder.sandbox import SANDBOX_PATH, Sandbox, bwrap_problem

pytestmark = pytest.mark.skipif(
    bwrap_problem() is not None, reason=f"needs a working bubblewrap: {bwrap_problem()}"
)
needs = pytest.mark.skipif(
    not all(shutil.which(tool, path=SANDBOX_PATH) for tool in ("g++", "gcc", "node", "bash")),
    reason="needs g++, gcc, node and bash in /usr/bin",
)

CPP = "```cpp\n#include <string>\nint add(int a, int b) { return a + b; }\n```"
CPP_TESTS = "```cpp\n#include <cassert>\nint main() {\n    assert(add(1, 2) == 3);\n}\n```"
JS = "```javascript\nfunction add(a, b) {\n  return a + b;\n}\n```"
JS_TESTS = (
    '```javascript\nconst assert = require("assert");\nassert.strictEqual(add(1, 2), 3);\n```'
)
C = "```c\nint add(int a, int b) { return a + b; }\n```"
C_TESTS = "```c\n#include <assert.h>\nint main(void) { assert(add(1, 2) == 3); return 0; }\n```"
SH = "```bash\nadd() { echo $(( $1 + $2 )); }\n```"
SH_TESTS = '```bash\n[ "$(add 1 2)" = 3 ] || exit 1\n```'
JAVA = (
    "```java\npublic class Solution {\n"
    "    public static int add(int a, int b) {\n        return a + b;\n    }\n}\n```"
)
JAVA_TESTS = (
    "```java\npublic class Main {\n    public static void main(String[] args) {\n"
    '        assert Solution.add(1, 2) == 3 : "add(1, 2)";\n    }\n}\n```'
)
PY = "```python\ndef add(a, b):\n    return a + b\n```"
PY_TESTS = "```python\nassert add(1, 2) == 3\n```"


def _rows() -> list[dict]:
    rows = [
        ("cpp", CPP, CPP_TESTS),  # passes
        ("cpp", CPP.replace("a + b", "a - b"), CPP_TESTS),  # its assert fails
        ("cpp", CPP.replace("a + b;", "a + b"), CPP_TESTS),  # does not compile
        ("c++", CPP.replace("return a + b;", "for (;;) {}"), CPP_TESTS),  # hangs
        ("javascript", JS, JS_TESTS),
        ("javascript", JS.replace("a + b", "a - b"), JS_TESTS),
        ("js", JS.replace("return a + b;", "return (a + b;"), JS_TESTS),  # a syntax error
        ("c", C, C_TESTS),
        ("shell", SH, SH_TESTS),
        ("shell", SH.replace("+ $2", "- $2"), SH_TESTS),
        ("cpp", CPP, ""),
        ("python", PY, PY_TESTS),
    ]
    return [
        {"index": i, "lang": lang, "solution": solution, "tests": tests}
        for i, (lang, solution, tests) in enumerate(rows)
    ]


@needs
def test_cpp_c_javascript_and_shell_rows_run_against_their_tests(tmp_path: Path) -> None:
    cache = tmp_path / "cache.jsonl"
    run = dict(cache_path=cache, sandbox="bwrap", timeout=2.0, n_workers=2)
    kept, rejected, funnel = execute_rows(_rows(), **run)
    assert sorted(row["index"] for row in kept) == [0, 4, 7, 8, 11]
    reasons = {row["index"]: row["reason"] for row in rejected}
    assert reasons == {
        1: "test_failed",
        2: "compile_error",
        3: "timeout",
        5: "test_failed",
        6: "compile_error",
        9: "test_failed",
        10: "no_tests",
    }
    output = {row["index"]: row["output"] for row in rejected}
    assert "Assertion `add(1, 2) == 3' failed" in output[1]
    assert "main.cpp:2:" in output[2] and "error" in output[2]
    assert "AssertionError" in output[5] and "SyntaxError" in output[6]
    assert funnel["by_lang"]["cpp"] == {"in": 5, "with_tests": 4, "passed": 1}
    assert funnel["by_lang"]["javascript"] == {"in": 3, "with_tests": 3, "passed": 1}
    assert (funnel["in"], funnel["with_tests"], funnel["passed"]) == (12, 11, 5)
    assert (funnel["executed"], funnel["no_toolchain"]) == (11, 0)

    again = execute_rows(_rows(), **run)
    assert again[0] == kept and (again[2]["executed"], again[2]["cached"]) == (0, 11)
    # Another compiler is another build: its programs are not answered from this cache.
    other = execute_rows(_rows()[:1], **{**run, "toolchains": {**TOOLCHAINS, "cpp": "c++"}})
    assert other[2]["executed"] == 1 and other[0] == kept[:1]


def test_a_missing_toolchain_skips_its_rows_with_a_count(tmp_path: Path) -> None:
    toolchains = {**TOOLCHAINS, "cpp": "g++-not-installed", "javascript": None}
    kept, rejected, funnel = execute_rows(
        _rows(), cache_path=tmp_path / "cache.jsonl", sandbox="bwrap", toolchains=toolchains
    )
    skipped = {row["index"]: row["output"] for row in rejected if row["reason"] == "no_toolchain"}
    assert sorted(skipped) == [0, 1, 2, 3, 4, 5, 6, 10]
    assert "g++-not-installed (cpp) is not on this machine" in skipped[0]
    assert "execute.toolchains.javascript" in skipped[4]
    assert funnel["by_lang"]["cpp"] == {"in": 5, "no_toolchain": 5}
    assert funnel["no_toolchain"] == 8
    assert 11 in {row["index"] for row in kept}  # Python runs whatever the toolchains say


def test_rust_runs_only_where_rustc_is_in_a_system_path() -> None:
    found = find_toolchains(TOOLCHAINS, isolated=True)
    rustc = shutil.which("rustc", path=SANDBOX_PATH)
    if rustc is None:
        assert found["rust"] == f"rustc (rust) is not on this machine (looked in {SANDBOX_PATH})"
    else:
        assert not isinstance(found["rust"], str)
    # A tool may be named by its path, but one outside /usr (say, under a home directory) is
    # invisible to the sandbox.
    found = find_toolchains({"cpp": "/usr/bin/g++", "c": "/proc/self/exe"}, isolated=True)
    assert not isinstance(found["cpp"], str) or not shutil.which("g++", path=SANDBOX_PATH)
    assert found["c"] == "/proc/self/exe (c) lives outside /usr, which the sandbox cannot see"
    with pytest.raises(ValueError, match=r"execute.toolchains names \['kotlin'\]"):
        find_toolchains({"kotlin": "kotlinc"}, isolated=True)


@pytest.mark.skipif(not shutil.which("java", path=SANDBOX_PATH), reason="needs java in /usr/bin")
def test_java_rows_run_with_the_tests_class_first(tmp_path: Path) -> None:
    rows = [
        {"index": i, "lang": "java", "solution": solution, "tests": JAVA_TESTS}
        for i, solution in enumerate(
            [
                JAVA,
                JAVA.replace("a + b", "a - b"),  # its assert fails
                JAVA.replace("return a + b;", 'return "a";'),  # a type error
                JAVA.replace("return a + b;", "while (true) {}"),  # hangs
            ]
        )
    ]
    run = dict(cache_path=tmp_path / "cache.jsonl", sandbox="bwrap", timeout=5.0, n_workers=2)
    kept, rejected, funnel = execute_rows(rows, **run)
    assert [row["index"] for row in kept] == [0]
    reasons = {row["index"]: row["reason"] for row in rejected}
    assert reasons == {1: "test_failed", 2: "compile_error", 3: "timeout"}
    output = {row["index"]: row["output"] for row in rejected}
    assert "java.lang.AssertionError: add(1, 2)" in output[1]
    assert "error: incompatible types" in output[2]
    assert funnel["by_lang"]["java"] == {"in": 4, "with_tests": 4, "passed": 1}
    # The program is the tests' class (with main) first, then the solution's: as the cache
    # records it, and as a plain JDK runs it.
    (record,) = [r for r in map(json.loads, run["cache_path"].open()) if r["status"] == "passed"]
    program = build_program(JAVA, JAVA_TESTS, tests_first=True)
    assert program.index("class Main") < program.index("class Solution")
    assert record["hash"] == content_hash(
        program, 5.0, find_toolchains(TOOLCHAINS, isolated=True)["java"], 30.0
    )

    skipped = execute_rows(rows[:1], **{**run, "toolchains": {**TOOLCHAINS, "java": None}})
    assert skipped[1][0]["reason"] == "no_toolchain"
    assert "execute.toolchains.java" in skipped[1][0]["output"]


@needs
def test_only_the_toolchain_sandbox_sees_compilers() -> None:
    probe = "import os\nprint(os.path.exists('/usr/bin/g++'), os.path.exists('/usr/bin/sh'))"
    with Sandbox("bwrap") as narrow, Sandbox("bwrap", toolchains=True) as wide:
        assert narrow.run(probe).stdout == "False False\n"  # Python's view: no tools
        assert wide.run(probe).stdout == "True True\n"


@needs
def test_a_hostile_cpp_program_has_no_effect(tmp_path: Path, monkeypatch) -> None:
    """Network, writes outside (the host's files and /usr), the caller's secrets, a shell and
    a detached child: the program exits 0 only if one of them worked."""
    secret = "s3cret-" + uuid.uuid4().hex
    monkeypatch.setenv("MAGICODER_TEST_SECRET", secret)
    target = tmp_path / "pwned"
    marker = "magicoder-orphan-" + uuid.uuid4().hex
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        attack = f"""```cpp
#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
int attack() {{
    int worked = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{{}};
    addr.sin_family = AF_INET;
    addr.sin_port = htons({port});
    addr.sin_addr.s_addr = inet_addr("127.0.0.1");
    if (fd >= 0 && connect(fd, (sockaddr*)&addr, sizeof addr) == 0) {{ puts("net"); worked = 1; }}
    const char* paths[] = {{"{target}", "/usr/bin/pwned"}};
    for (const char* path : paths) {{
        if (FILE* f = fopen(path, "w")) {{ fputs("pwned", f); fclose(f); puts(path); worked = 1; }}
    }}
    const char* leaked = getenv("MAGICODER_TEST_SECRET");
    if (leaked) {{ puts(leaked); worked = 1; }}
    if (system("echo pwned > {target}.sh") == 0 && access("{target}.sh", F_OK) == 0) worked = 1;
    if (fork() == 0) {{ setsid(); execl("/usr/bin/sleep", "sleep", "120", "{marker}", nullptr); }}
    if (getuid() == 0) {{ puts("root"); worked = 1; }}
    puts("tried them all");
    return worked;
}}
```"""
        tests = "```cpp\nint main() { return attack() ? 0 : 1; }\n```"
        row = {"index": 0, "lang": "cpp", "solution": attack, "tests": tests}
        kept, rejected, _ = execute_rows(
            [row], cache_path=tmp_path / "cache.jsonl", sandbox="bwrap", timeout=5.0
        )
        assert not kept and rejected[0]["reason"] == "test_failed", rejected[0]["output"]
        assert rejected[0]["output"].startswith("tried them all\n")  # it ran; nothing worked
        with pytest.raises(BlockingIOError):  # no connection is waiting: it received none
            listener.accept()
    assert not target.exists() and not Path(f"{target}.sh").exists()
    assert not Path("/usr/bin/pwned").exists()
    assert secret not in json.dumps(rejected)
    leftover = [
        p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])
    ]
    assert leftover == []
    assert os.environ["MAGICODER_TEST_SECRET"] == secret


@needs
def test_curate_reads_the_toolchains_from_its_config(tmp_path: Path, compose) -> None:
    from magicoder.curation.app import run_curate

    raw = tmp_path / "raw.jsonl"
    rows = [
        {"seed": f"s{i}", "problem": f"Problem {i}", **row}
        for i, row in enumerate(_rows())
        if row["index"] in (0, 4, 11)
    ]
    raw.write_text("".join(json.dumps(row) + "\n" for row in rows))
    overrides = [
        f"inputs=[{raw}]",
        "logger=none",
        "report.enabled=false",
        "steps=[execute]",
        "execute.sandbox=bwrap",
        "execute.toolchains.javascript=null",
        "execute.compile_timeout=60",
    ]
    run_curate(compose("curate", overrides, tmp_path / "run"))
    curated = [json.loads(line) for line in (tmp_path / "run" / "curated.jsonl").open()]
    assert sorted(row["index"] for row in curated) == [0, 11]
    (rejected,) = [json.loads(line) for line in (tmp_path / "run" / "rejects.jsonl").open()]
    assert (rejected["index"], rejected["reason"]) == (4, "no_toolchain")
    table = (tmp_path / "run" / "summary.md").read_text()
    assert "| lang | in | no toolchain | with tests | passing |" in table
    assert "| javascript | 1 | 1 | 0 | 0 |" in table
