"""The paper's ablations as presets: recipe, base model, laptop scale and the exact data draws."""

from __future__ import annotations

import random

import pytest
from hydra.utils import instantiate

from magicoder.data.sources import LanguageArm, Source, language_arm, split_by_language

# Each ablation preset → the base model the paper used for it: CodeLlama-Python-7B, 2 epochs
# (arXiv 2312.02120v2, §4.1 Table 5 and §4.2 Table 6; the data-order and mixture presets keep it).
PRESETS = {
    "ablate-languages": "codellama/CodeLlama-7b-Python-hf",
    "ablate-python-only": "codellama/CodeLlama-7b-Python-hf",
    "ablate-mixture": "codellama/CodeLlama-7b-Python-hf",
    "ablate-data-order": "codellama/CodeLlama-7b-Python-hf",
}


@pytest.mark.parametrize("experiment", sorted(PRESETS))
def test_preset_builds_on_the_paper_recipe_and_names_the_base(compose, tmp_path, experiment):
    cfg = compose("train", [f"experiment={experiment}"], tmp_path)
    assert cfg.recipe_name == "paper"
    assert cfg.optimizer._target_ == "transformers.optimization.Adafactor"
    assert cfg.optimizer.lr == pytest.approx(5e-5)
    assert cfg.model.name_or_path == PRESETS[experiment]
    assert cfg.task_name == experiment


@pytest.mark.parametrize("experiment", sorted(PRESETS))
def test_laptop_scale_shrinks_the_preset_to_the_tiny_model(compose, tmp_path, experiment):
    cfg = compose("train", [f"experiment={experiment}", "scale=laptop"], tmp_path)
    assert cfg.model.name == "tiny"
    assert cfg.recipe_name == "tiny-from-scratch"
    assert cfg.trainer.accelerator == "cpu"


def test_language_arms_compose_to_the_papers_draw(compose, tmp_path):
    for data, arm in (("oss-instruct-python", "python"), ("oss-instruct-non-python", "non_python")):
        cfg = compose("train", ["experiment=ablate-languages", f"data={data}"], tmp_path)
        source = instantiate(cfg.data.stages["oss-instruct"].datasets.oss)
        assert isinstance(source, LanguageArm)
        assert (source.arm, source.n, source.seed) == (arm, 30000, 1)
        assert source.source.path == "ise-uiuc/Magicoder-OSS-Instruct-75K"


def test_data_order_sweep_names_both_orders(compose, tmp_path):
    cfg = compose("train", ["experiment=ablate-data-order"], tmp_path)
    assert list(cfg.data.stages) == ["oss-instruct", "evol-instruct"]
    cfg = compose("train", ["experiment=ablate-data-order", "data=evol-then-oss"], tmp_path)
    assert list(cfg.data.stages) == ["evol-instruct", "oss-instruct"]


def papers_rule(all_data: list[dict], n: int) -> tuple[list[dict], list[dict]]:
    """The paper's conservative split and draw, written out as its script does it."""
    python_data, other_data = [], []
    for data in all_data:
        text = (data["instruction"] + data["response"]).lower()
        if data["lang"] == "python" and "python" in text:
            python_data.append(data)
        elif data["lang"] != "python" and "python" not in text:
            other_data.append(data)
    random.seed(1)
    return random.sample(python_data, k=n), random.sample(other_data, k=n)


def synthetic_rows(count: int = 400) -> list[dict]:
    rng = random.Random(7)
    langs = ["python", "rust", "java", "typescript", "cpp", "Python"]
    words = ["python", "Python", "PYTHON", "pyth", "on", "code", "rust", "loop"]
    rows = []
    for i in range(count):
        rows.append(
            {
                "instruction": f"task {i} " + " ".join(rng.choices(words, k=2)),
                "response": " ".join(rng.choices(words, k=2)),
                "lang": rng.choice(langs),
            }
        )
    # Named cases: another language's row that mentions Python (in upper case) is in no arm;
    # a Python row that never says so is in no arm; "pyth" + "on" across the two fields counts.
    rows += [
        {"instruction": "Port this PYTHON script", "response": "fn main() {}", "lang": "rust"},
        {"instruction": "sum a list", "response": "sum(xs)", "lang": "python"},
        {"instruction": "use pyth", "response": "on 3", "lang": "python"},
    ]
    return rows


def test_language_split_follows_the_papers_rule_on_edge_cases():
    rows = synthetic_rows(0)
    python_rows, other_rows = split_by_language(rows)
    assert python_rows == [rows[2]]
    assert other_rows == []


def test_language_arms_select_exactly_the_papers_rows_in_its_order():
    rows = synthetic_rows()
    n = 40
    expected_python, expected_other = papers_rule(rows, n)
    python_arm = language_arm(rows, "python", n=n, seed=1)
    other_arm = language_arm(rows, "non_python", n=n, seed=1)
    assert python_arm == expected_python
    assert other_arm == expected_other
    assert all(r["lang"] == "python" for r in python_arm)
    assert not any("python" in (r["instruction"] + r["response"]).lower() for r in other_arm)
    # Another seed draws other rows: the comparison above can fail.
    assert language_arm(rows, "non_python", n=n, seed=2) != expected_other


def test_language_arm_refuses_too_few_rows():
    with pytest.raises(ValueError, match="fewer than n=100000"):
        language_arm(synthetic_rows(), "python", n=100000)


def test_language_arm_source_wraps_another_source():
    rows = synthetic_rows()

    class Rows(Source):
        def load(self) -> list[dict]:
            return [dict(r) for r in rows]

    arm = LanguageArm(name="py", source=Rows(name="rows"), arm="non_python", n=10)
    assert arm.load() == papers_rule(rows, 10)[1]
    with pytest.raises(ValueError, match="arm='js'"):
        LanguageArm(name="bad", source=Rows(name="rows"), arm="js").check()
