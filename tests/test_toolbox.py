"""The toolbox the tools share: the child runner and its peak-RSS reading, the step timer, saved bytes."""

from __future__ import annotations

import pytest
import torch

from yolo_revcol.tools.toolbox import interleave, peak_rss_kib, run_child, saved_mib


def allocate(mib: int) -> dict:
    """Touch ``mib`` MiB in a child process and report its peak RSS before and after (KiB)."""
    before = peak_rss_kib()
    block = bytearray(mib * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    return {"before": before, "after": peak_rss_kib(), "children": peak_rss_kib(children=True)}


def test_run_child_runs_a_function_in_a_fresh_process_and_reads_its_peak_rss():
    got = run_child("test_toolbox:allocate", {"mib": 64}, env={"PYTHONPATH": __file__.rsplit("/", 1)[0]})
    assert got["after"] - got["before"] >= 60 * 1024  # the 64 MiB it touched, in KiB
    assert got["children"] >= got["after"] - 1024  # ru_maxrss covers the same peak


def test_run_child_failure_names_the_function_and_shows_its_output():
    with pytest.raises(RuntimeError, match=r"(?s)yolo_revcol.tools.toolbox:nope failed.*AttributeError"):
        run_child("yolo_revcol.tools.toolbox:nope", {}, capture=True)


def test_interleave_times_every_callable_the_same_number_of_times():
    calls = []
    times = interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, 2, 1, 1)
    assert {k: len(v) for k, v in times.items()} == {"a": 6, "b": 6} and calls.count("a") == calls.count("b") == 7
    assert calls[2:6] == ["a", "a", "b", "b"] and calls[6:10] == ["b", "b", "a", "a"]  # the order rotates


def test_saved_mib_counts_what_the_forward_keeps_for_backward_and_no_parameter():
    layer = torch.nn.Linear(256, 256, bias=False)
    x = torch.randn(1024, 256, requires_grad=True)
    kept = saved_mib(layer, lambda: torch.relu(layer(x)).sum())
    # linear saves its input (1 MiB; the weight is excluded), relu its output (1 MiB)
    assert kept == pytest.approx(2.0, rel=0.01)


def test_every_child_function_the_tools_name_resolves_from_a_fresh_process():
    """A child imports its function by module path; ``__name__`` would be ``__main__`` under ``python -m``."""
    import ast
    import importlib
    from pathlib import Path

    import yolo_revcol.tools as tools

    targets = []
    for path in Path(tools.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_child":
                first = node.args[0]
                assert isinstance(first, ast.Constant), f"{path.name}:{node.lineno}: name the child's module in full"
                targets.append(first.value)
    assert len(targets) >= 2  # training runs and the RSS worker
    for target in targets:
        module, name = target.split(":")
        assert callable(getattr(importlib.import_module(module), name)), target
