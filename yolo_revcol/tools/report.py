"""Small helpers shared by the benchmark and comparison tools: tables as Markdown/CSV, README blocks."""

from __future__ import annotations

import csv
import os
import platform
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Render rows as a GitHub Markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


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
    return shlex.join([rel(sys.executable), rel(sys.argv[0]), *sys.argv[1:]])


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
