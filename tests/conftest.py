"""Shared test settings: keep tests offline and quiet, and small helpers used by several test files."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch

# Never let Ultralytics reach the network or write settings into the user's home during tests; subprocesses
# inherit these.
os.environ["YOLO_OFFLINE"] = "1"
if "YOLO_CONFIG_DIR" not in os.environ:
    os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="yolo_revcol_tests_cfg_")
    atexit.register(shutil.rmtree, os.environ["YOLO_CONFIG_DIR"], ignore_errors=True)
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """Fonts Ultralytics would otherwise try to download go into the tests' private config folder."""
    from yolo_revcol.integration.offline import provide_fonts

    provide_fonts(Path(os.environ["YOLO_CONFIG_DIR"]))


ROOT = Path(__file__).resolve().parents[1]
CFG = ROOT / "cfg"
BIN = Path(sys.executable).parent

torch.set_num_threads(min(2, os.cpu_count() or 1))


def saved_bytes(fn) -> int:
    """Return the distinct bytes autograd saves for backward while ``fn()`` runs (each storage counted once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def relative_error(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Return ||a - b|| / ||a|| over all tensors of two equally shaped lists."""
    num = sum(((x.double() - y.double()) ** 2).sum() for x, y in zip(a, b))
    den = sum((x.double() ** 2).sum() for x in a)
    return float((num / den).sqrt())


def assert_onnx_matches_eager(model: torch.nn.Module, path: Path) -> None:
    """Export ``model`` (eval mode, four outputs p2..p5) to ONNX at ``path`` and check ONNX Runtime matches eager."""
    ort = pytest.importorskip("onnxruntime")
    x, names = torch.randn(1, 3, 64, 64), [f"p{i}" for i in range(2, 6)]
    torch.onnx.export(
        model, (x,), str(path), input_names=["images"], output_names=names, dynamo=False, opset_version=17
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for a, b in zip(model(x), session.run(names, {"images": x.numpy()})):
        torch.testing.assert_close(a, torch.from_numpy(b), rtol=1e-4, atol=1e-4)


def assert_fuse_is_exact(model: torch.nn.Module) -> None:
    """``model.fuse()`` (eval mode) keeps the outputs (relative error < 1e-5) and folds every BatchNorm."""
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        after = model.fuse()(x)
    assert relative_error(before, after) < 1e-5
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


@pytest.fixture
def tiny_cfg() -> dict:
    """A small RevCol configuration that runs in milliseconds on CPU."""
    return dict(c1=3, channels=[8, 16, 24, 32], layers=[1, 1, 2, 1], columns=3, kernel=3, mlp_ratio=2)


def run(
    cmd: list[str], cwd: Path | None = None, env: dict | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it exits non-zero."""
    proc = subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A small synthetic detection dataset (8 train, 4 val images at 64 px) and its YAML; returns the YAML path."""
    from yolo_revcol.data.synthetic import CLASS_NAMES, generate_detection_dataset

    root = tmp_path_factory.mktemp("data") / "shapes"
    generate_detection_dataset(root, train=8, val=4, imgsz=64, seed=0)
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
    yaml_path = root.parent / "shapes.yaml"
    yaml_path.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return yaml_path


def train_then_interrupt(model: Path, data: Path, project: Path, name: str) -> Path:
    """Start a 2-epoch training in a fresh process, stop it after epoch 1 as a crash would; return its last.pt."""
    script = textwrap.dedent(
        f"""
        from ultralytics import YOLO

        def stop(trainer):
            raise KeyboardInterrupt("simulated interruption after epoch 1")

        model = YOLO(r"{model}")
        model.add_callback("on_fit_epoch_end", stop)
        try:
            model.train(data=r"{data}", project=r"{project}", name="{name}", epochs=2, imgsz=64, batch=4, device="cpu",
                        workers=0, plots=False)
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    assert "interrupted" in run([sys.executable, "-c", script]).stdout
    return project / name / "weights" / "last.pt"
