"""The README and docs pages: what a new user reads first, and generated blocks only where figures appear."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"<!-- (?P<name>[a-z0-9-]+):start -->\n(?P<body>.*?)<!-- (?P=name):end -->", re.S)


def test_first_screen_has_the_two_commands_and_the_generated_accuracy_line():
    first = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    assert "bash runs_scripts/demo.sh" in first and "bash runs_scripts/test.sh" in first
    (line,) = [m["body"] for m in BLOCK.finditer(first) if m["name"] == "accuracy-line"]
    # What the accuracy command writes: the RevCol row against stock n and against stock at its own cost, with seeds
    assert line.startswith("**Accuracy cost:** yolov8n-revcol reaches ") and " stock scaled to about its cost" in line
    assert re.search(r"\d+ seeds each", line) and re.search(r"\d+ epochs at \d+ px", line)


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_is_written_by_the_command_it_names(page):
    text = page.read_text()
    assert text.count(":start -->") == text.count(":end -->")
    rel = page.relative_to(ROOT).as_posix()
    for m in BLOCK.finditer(text):
        body, name = m["body"], m["name"]
        if name == "accuracy-line":
            assert body.startswith("**Accuracy cost:**"), name
            continue
        assert body.startswith("Measured by `"), (rel, name)
        command = body.split("`")[1]
        # The command named this page (or the README, for blocks a page shares with it) as a file to write.
        assert "--readme" in command, (rel, name, command)
        files = command.split("--readme", 1)[1].split("--")[0].split()
        assert rel in files or "README.md" in files, (rel, name, command)


def test_docs_pages_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme, page.name


def test_every_revcol_option_is_named_in_the_readme():
    import inspect

    from yolo_revcol import RevCol

    section = (ROOT / "README.md").read_text().split("### Options of the RevCol row", 1)[1].split("\n### ", 1)[0]
    options = [p for p in inspect.signature(RevCol.__init__).parameters if p not in ("self", "c1")]
    missing = [p for p in options if p not in ("channels", "layers", "columns") and f"`{p}`" not in section]
    assert not missing, f"RevCol options the README's options section does not name: {missing}"
