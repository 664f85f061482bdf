#!/usr/bin/env bash
# Create .venv in the repository root (if missing) and install yolo-revcol into it with its test extra.
# Sourced by the other scripts; safe to run again (it only reinstalls when pyproject.toml changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    echo "setup: installing torch 2.14.1 / torchvision 0.29.1"
    "$VENV/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
fi
STAMP="$VENV/.yolo_revcol_installed"
HASH="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
    echo "setup: installing yolo-revcol (editable) with the test extra"
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
    echo "$HASH" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
