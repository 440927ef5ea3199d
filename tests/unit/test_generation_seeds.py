"""Seed snippets: the paper's selection, reproducibility, languages, sources."""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets
import pytest

from magicoder.generation.seeds import (
    Document,
    HubSeeds,
    LocalSeeds,
    StdlibSeeds,
    extract_snippet,
    extract_snippets,
    shuffle_permutation,
)

DOC = "".join(f"line {i}\n" for i in range(40))


def test_snippet_is_1_to_15_consecutive_lines_of_the_document():
    for s in range(200):
        snippet = extract_snippet(DOC, random.Random(s), 1, 15)
        lines = snippet.splitlines()
        assert 1 <= len(lines) <= 15
        first = int(lines[0].split()[1])
        assert lines == [f"line {i}" for i in range(first, first + len(lines))]
        assert snippet in DOC


def test_snippet_is_cut_at_the_end_of_the_document():
    lengths = {
        len(extract_snippet("a\nb\n", random.Random(s), 1, 15).splitlines()) for s in range(50)
    }
    assert lengths == {1, 2}


def test_empty_document_is_an_error():
    with pytest.raises(ValueError, match="empty document"):
        extract_snippet("", random.Random(0), 1, 15)


def paper_reference(documents: list[str], seed: int, chunk: int) -> list[str]:
    """Magicoder's generate_data.py, restated with the global `random` module as it has it."""
    out = []
    for start in range(0, len(documents), chunk):
        random.seed(seed + start)
        for doc in documents[start : start + chunk]:
            lines = doc.splitlines(keepends=True)
            start_index = random.choice(range(len(lines)))
            n_lines = random.randint(1, 15)
            out.append("".join(lines[start_index : start_index + n_lines]))
    return out


def test_snippets_match_the_papers_chunked_seeding():
    documents = ["".join(f"{d}:{i}\n" for i in range(5 + d % 17)) for d in range(25)]
    ours = extract_snippets(
        (Document(i, d, "python") for i, d in enumerate(documents)), 976, chunk_size=10
    )
    assert [row["seed"] for row in ours] == paper_reference(documents, 976, 10)


def test_a_snippet_depends_only_on_seed_and_document_index_with_chunk_size_1():
    documents = [DOC] * 5
    full = list(
        extract_snippets((Document(i, d, "x") for i, d in enumerate(documents)), 3, chunk_size=1)
    )
    alone = list(extract_snippets([Document(3, DOC, "x")], 3, chunk_size=1))
    assert alone[0] == full[3]


def test_empty_documents_get_no_snippet_but_keep_their_raw_index():
    docs = [
        Document(0, "a\n", "py"),
        Document(1, "", "py"),
        Document(2, None, "py"),
        Document(3, "b\n", "py"),
    ]
    rows = list(extract_snippets(docs, 0))
    assert [r["raw_index"] for r in rows] == [0, 3]


def test_shuffle_is_the_one_datasets_uses():
    ds = datasets.Dataset.from_dict({"i": list(range(50))}).shuffle(seed=976)
    assert ds["i"] == shuffle_permutation(50, 976).tolist()


def test_local_seeds_take_the_language_from_the_extension(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("import os\nprint(os.sep)\n")
    (tmp_path / "b.rs").write_text('fn main() {\n    println!("hi");\n}\n')
    (tmp_path / "c.TS").write_text("const x: number = 1;\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    (tmp_path / "bin.py").write_bytes(b"\xff\xfe\x00bad")
    source = LocalSeeds(name="local", root=str(tmp_path), shuffle=False)
    rows = source.snippets()
    assert {r["lang"] for r in rows} == {"python", "rust", "typescript"}
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert all(r["seed"] for r in rows)
    by_lang = {r["lang"]: r["seed"] for r in rows}
    assert by_lang["rust"] in (tmp_path / "b.rs").read_text()
    assert len(rows) == 3  # the undecodable file keeps a raw_index but gets no snippet

    forced = LocalSeeds(name="local", root=str(tmp_path), glob="*.txt", lang="text").snippets()
    assert [r["lang"] for r in forced] == ["text"]


def test_local_seeds_missing_root_names_the_key(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="seeds.root"):
        LocalSeeds(name="local", root=str(tmp_path / "nope")).check()


def test_snippets_are_reproducible_and_shuffled(tmp_path: Path):
    for i in range(30):
        (tmp_path / f"f{i:02d}.py").write_text("".join(f"x{i}_{j} = {j}\n" for j in range(20)))
    a = LocalSeeds(name="local", root=str(tmp_path)).snippets()
    b = LocalSeeds(name="local", root=str(tmp_path)).snippets()
    assert a == b
    assert [r["raw_index"] for r in a] != list(range(30))
    assert sorted(r["raw_index"] for r in a) == list(range(30))


def test_fingerprint_covers_what_changes_the_snippets(tmp_path: Path):
    base = LocalSeeds(name="local", root=str(tmp_path))
    assert base.fingerprint() == LocalSeeds(name="renamed", root=str(tmp_path)).fingerprint()
    for change in ({"seed": 1}, {"max_lines": 10}, {"max_considered_docs": 5}, {"glob": "*.py"}):
        assert (
            LocalSeeds(name="local", root=str(tmp_path), **change).fingerprint()
            != base.fingerprint()
        )


def test_hub_seeds_stream_a_datasets_dataset(tmp_path: Path):
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "".join(json.dumps({"content": f"a{i}\nb{i}\nc{i}\n"}) + "\n" for i in range(12))
    )
    source = HubSeeds(
        name="json",
        path="json",
        data_dir=None,
        data_files=str(path),
        lang="python",
        max_considered_docs=10,
        shuffle=False,
    )
    rows = source.snippets()
    assert [r["raw_index"] for r in rows] == list(range(10))
    assert all(
        r["seed"] in f"a{r['raw_index']}\nb{r['raw_index']}\nc{r['raw_index']}\n" for r in rows
    )


def test_hub_seeds_without_a_language_are_refused():
    with pytest.raises(ValueError, match="seeds.lang"):
        HubSeeds(name="x", path="json", data_dir=None).check()


def test_bad_line_bounds_are_refused():
    with pytest.raises(ValueError, match="min_lines"):
        StdlibSeeds(name="stdlib", min_lines=5, max_lines=2).check()
