"""Small helpers shared by the benchmark and comparison tools: tables as Markdown/CSV, figures, README blocks."""

from __future__ import annotations

import contextlib
import csv
import math
import os
import platform
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Render rows as a GitHub Markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt(value: float | None, spec: str = ".3f", missing: str = "n/a") -> str:
    """Format a number for a Markdown table, or return ``missing`` for None and NaN (an undefined ratio)."""
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Write rows to a CSV file with a header line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def command_line() -> str:
    """The command that is running, as a user would retype it (paths relative to the repository when inside it)."""
    root = Path(__file__).resolve().parents[2]

    def rel(p: str) -> str:
        try:
            return str(Path(p).absolute().relative_to(root))
        except ValueError:
            return p

    script = Path(sys.argv[0])
    if script.parent.name == "bin":  # a console command such as yolo-revcol
        return shlex.join([script.name, *sys.argv[1:]])
    package = Path(__file__).resolve().parents[1]
    try:  # `python -m yolo_revcol.tools.x` sets argv[0] to the module's file: name the module, as it was typed
        module = script.resolve().relative_to(package.parent).with_suffix("")
    except ValueError:
        return shlex.join([rel(sys.executable), rel(sys.argv[0]), *sys.argv[1:]])
    parts = module.parts[:-1] if module.name == "__main__" else module.parts
    return shlex.join(["python", "-m", ".".join(parts), *sys.argv[1:]])


def machine() -> str:
    """One line on the machine, software versions, torch threads and load (timings depend on all of them)."""
    import torch
    import ultralytics

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, ultralytics {ultralytics.__version__}; load average {load}"
    )


def replace_block(path: Path, name: str, content: str) -> bool:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``.

    Returns:
        (bool): Whether the markers were found (the file is rewritten only then).
    """
    text = path.read_text()
    pattern = re.compile(rf"(<!-- {re.escape(name)}:start -->\n).*?(<!-- {re.escape(name)}:end -->)", re.S)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda m: m.group(1) + content + m.group(2), text))
    return True


def replace_blocks(paths: Path | Sequence[Path] | None, blocks: dict[str, str]) -> list[str]:
    """Replace every ``<!-- name:start/end -->`` block of ``blocks`` found in any of ``paths`` (README, docs pages).

    Returns:
        (list[str]): The block names that no file holds (nothing is written for them).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths or [])
    found = {name: False for name in blocks}
    for path in paths:
        for name, content in blocks.items():
            found[name] |= replace_block(Path(path), name, content)
    return [name for name, ok in found.items() if not ok]


def offline() -> None:
    """Keep Ultralytics off the network: ``YOLO_OFFLINE`` (before Ultralytics is imported; subprocesses inherit it)
    and its fonts provided locally instead of downloaded."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ..integration.offline import provide_fonts

    provide_fonts()


@contextlib.contextmanager
def figure(path: Path, *grid: int, dpi: int = 120, **kwargs) -> Iterator[tuple]:
    """Draw one figure and save it: yields ``(fig, axes)`` from ``plt.subplots(*grid, **kwargs)`` (Agg backend); on
    leaving, lays the figure out, saves it to ``path`` (folders created) and closes it, also when drawing failed."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*grid, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def write_result(
    stem: Path,
    text: str,
    header: Sequence[str],
    rows: Sequence[Sequence],
    plot: Callable[[Path], None] | None = None,
    readme: Path | Sequence[Path] | None = None,
    block: str | None = None,
    readme_text: str | None = None,
    echo: bool = True,
    summary: str | None = None,
) -> list[Path]:
    """Write one result: ``<stem>.md`` (the note and tables), ``<stem>.csv`` (full precision) and, given ``plot``,
    ``<stem>.png``; then refresh its README block.

    Args:
        stem (Path): Output path without suffix, e.g. ``results/speed``.
        text (str): Markdown of the result (note, then tables), written as the .md and printed.
        header (Sequence[str]): CSV header.
        rows (Sequence[Sequence]): CSV rows, unrounded.
        plot (Callable[[Path], None] | None): Draws the figure into the path it is given.
        readme (Path | Sequence[Path] | None): Files (README, docs pages) whose ``<!-- block:start/end -->`` block is
            replaced, wherever it is.
        block (str | None): Block name; defaults to the stem's name.
        readme_text (str | None): What goes into the block; defaults to ``text``.
        echo (bool): Print the text and the files written (off for reports refreshed as runs land).
        summary (str | None): A shorter form of the result for the ``<!-- block-summary:start/end -->`` block (the
            README's summary tables), written where that block exists.

    Returns:
        (list[Path]): The files written (the README not included).
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, table = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".csv")
    md.write_text(text)
    write_csv(table, header, rows)
    written = [md, table]
    if plot is not None:
        written.append(stem.with_name(stem.name + ".png"))
        plot(written[-1])
    if echo:
        print(f"\n{text}\nwrote " + ", ".join(map(str, written)))
    block = block or stem.name
    blocks = {block: text if readme_text is None else readme_text}
    if summary is not None:
        blocks[f"{block}-summary"] = summary
    if readme and block in replace_blocks(readme, blocks):
        names = readme if isinstance(readme, (str, Path)) else ", ".join(map(str, readme))
        print(f"no <!-- {block}:start --> block in {names}; left it unchanged")
    return written
