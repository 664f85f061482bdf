"""Small helpers shared by the benchmark and comparison tools: tables as Markdown/CSV, README blocks."""

from __future__ import annotations

import csv
import platform
import re
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
    """The command that is running, as a user would retype it."""
    script = Path(sys.argv[0])
    name = script.name if script.parent.name == "bin" else str(script)
    return " ".join([name if name != "-c" else "python -c ...", *sys.argv[1:]])


def machine() -> str:
    """A one-line description of the machine and software versions."""
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
    import os

    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}, "
        f"ultralytics {ultralytics.__version__}"
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
