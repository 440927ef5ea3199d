"""``magicoder-demo`` in a real browser: the CLI serves two tiny models on 127.0.0.1 and
headless Chromium (driven by selenium) types, submits and reads what a user would see.

Skipped where gradio/selenium (the ``demo`` extra) or Chromium and its driver are missing;
CI installs them (``.ci/run``). ``MAGICODER_UPDATE_SCREENSHOT=1`` also writes the screenshot
to ``docs/demo.png`` (the one the README shows).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import cli_env
from hydra.utils import instantiate

from magicoder.evaluation.generation import generate_completions
from magicoder.prompts import format_prompt

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")
pytest.importorskip("selenium", reason="the demo extra is not installed: pip install -e '.[demo]'")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BROWSER = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(
        BROWSER is None or DRIVER is None,
        reason="no Chromium with chromedriver on PATH (apt-get install chromium chromium-driver)",
    ),
    pytest.mark.slow,  # about 30 s in all: the demo process starts once for the module
]

MODELS = ("tiny", "tiny-deep")
MAX_NEW_TOKENS = 24
INSTRUCTION = "Write a function that adds two numbers."


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"magicoder-demo exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"magicoder-demo did not serve {url} within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def demo_url(
    tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path, data_dir: Path, expected: list[str]
) -> Iterator[str]:
    """``magicoder-demo model=tiny compare=tiny-deep`` on a free port, as a user starts it
    (after ``expected`` built both models into the cache, so it only loads them)."""
    run_dir = tmp_path_factory.mktemp("demo-run")
    port = _free_port()
    log = run_dir / "demo.log"
    args = [
        f"model={MODELS[0]}",
        f"compare={MODELS[1]}",
        "server_name=127.0.0.1",
        f"server_port={port}",
        f"generation.max_new_tokens={MAX_NEW_TOKENS}",
        f"benchmark_dir={data_dir}",
        "examples_per_benchmark=3",
        f"paths.cache_dir={tiny_cache}",
        f"hydra.run.dir={run_dir}",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "magicoder.cli.demo", *args],
            env=cli_env(),
            cwd=run_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(f"http://127.0.0.1:{port}/", process, log, timeout=180)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = str(BROWSER)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--window-size=1400,1150",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path) -> list[str]:
    """Each model's greedy answer through evaluation's own generation function."""
    from conftest import compose_config

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the demo process runs (OMP_NUM_THREADS=1)
    try:
        answers = []
        for name in MODELS:
            cfg = compose_config(
                "chat",
                [f"model={name}", f"paths.cache_dir={tiny_cache}"],
                tmp_path_factory.mktemp("expected"),
            )
            model, tokenizer = instantiate(cfg.model).load()
            [answer] = generate_completions(
                model,
                tokenizer,
                [format_prompt(INSTRUCTION)],
                batch_size=1,
                max_new_tokens=MAX_NEW_TOKENS,
                stop=None,
            )
            answers.append(answer)
    finally:
        torch.set_num_threads(threads)
    assert all(answer.strip() for answer in answers), answers  # something to see and compare
    return answers


def _open(driver: webdriver.Chrome, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#instruction textarea")
    )


def _submit(driver: webdriver.Chrome, instruction: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, "#instruction textarea")
    box.clear()
    if instruction:
        box.send_keys(instruction)
    driver.find_element(By.ID, "submit").click()


def _statuses(driver: webdriver.Chrome) -> list[str]:
    return [driver.find_element(By.ID, f"status-{i}").text for i in range(len(MODELS))]


def test_both_models_stream_their_greedy_answers_side_by_side(
    demo_url: str, browser: webdriver.Chrome, expected: list[str], tmp_path: Path
):
    _open(browser, demo_url)
    _submit(browser, INSTRUCTION)
    WebDriverWait(browser, 120).until(
        lambda d: all(status.startswith("Done") for status in _statuses(d))
    )
    for label in browser.find_elements(By.XPATH, "//button[.//span[text()='Raw text']]"):
        label.click()
    WebDriverWait(browser, 20).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "[id^=raw-] textarea")) == len(MODELS)
    )
    for index, answer in enumerate(expected):
        raw = browser.find_element(By.CSS_SELECTOR, f"#raw-{index} textarea")
        assert raw.get_attribute("value") == answer, MODELS[index]
        rendered = browser.find_element(By.ID, f"answer-{index}").text
        assert rendered.split() == answer.split()  # Markdown keeps the words
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h3")]
    assert [h for h in headings if h in MODELS] == list(MODELS)
    screenshot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    if os.environ.get("MAGICODER_UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(screenshot, ROOT / "docs" / "demo.png")


def test_an_empty_instruction_is_answered_with_a_message(demo_url: str, browser: webdriver.Chrome):
    _open(browser, demo_url)
    _submit(browser, "")
    WebDriverWait(browser, 60).until(
        lambda d: all("instruction is empty" in status for status in _statuses(d))
    )
    # The server keeps serving: the next request is answered.
    _submit(browser, INSTRUCTION)
    WebDriverWait(browser, 120).until(
        lambda d: all(status.startswith("Done") for status in _statuses(d))
    )


def test_an_example_fills_the_instruction_in_one_click(demo_url: str, browser: webdriver.Chrome):
    _open(browser, demo_url)
    browser.find_element(By.XPATH, "//button[normalize-space()='HumanEval/0']").click()
    box = browser.find_element(By.CSS_SELECTOR, "#instruction textarea")
    WebDriverWait(browser, 20).until(lambda d: box.get_attribute("value"))
    value = box.get_attribute("value")
    assert value.startswith("Write a solution to the following problem:\n```python\n")
    assert "def has_close_elements" in value
