"""The start-up hook that lets the stock `yolo` CLI (and DDP workers) understand RevCol YAMLs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CFG, ROOT, run

PTH = ROOT / "yolo_revcol" / "integration" / "yolo_revcol_autoload.pth"


def site_packages_pth() -> Path:
    """The installed copy of the hook's .pth file."""
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"]) / PTH.name


def test_hook_is_installed_next_to_site_packages():
    assert site_packages_pth().read_text() == PTH.read_text()


def test_plain_ultralytics_process_builds_revcol_yaml():
    # What a `yolo` CLI run or an Ultralytics DDP worker does: import Ultralytics only, never yolo_revcol.
    code = (
        "from ultralytics.nn.tasks import DetectionModel\n"
        f"m = DetectionModel(r'{CFG / 'yolov8n-revcol.yaml'}', verbose=False)\n"
        "print(type(m.model[0]).__name__)"
    )
    assert run([sys.executable, "-c", code]).stdout.strip().endswith("RevCol")


def test_processes_that_never_import_ultralytics_pay_nothing():
    code = "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'ultralytics', 'numpy'}))"
    proc = run([sys.executable, "-X", "importtime", "-c", code])
    assert proc.stdout.strip() == "[]"  # nothing heavy is imported at start-up
    hook = {
        name.strip(): int(cumulative)
        for _, cumulative, name in re.findall(r"import time:\s+(\d+) \|\s+(\d+) \|(.*)", proc.stderr)
        if "yolo_revcol" in name
    }
    assert hook, "the start-up hook did not run"
    assert max(hook.values()) < 20_000  # microseconds, cumulative; Python itself starts in about 10-20 ms


@pytest.mark.parametrize(
    "imports",
    [
        "from ultralytics.engine.trainer import BaseTrainer",  # the trainer imports the model builder itself
        "from ultralytics.models.yolo.detect import DetectionTrainer",  # what a DDP worker's file imports
        "from ultralytics import YOLO; from ultralytics.engine.trainer import BaseTrainer",
    ],
)
def test_trainer_optimizer_is_wrapped_whatever_is_imported_first(imports):
    code = (
        f"{imports}\nfrom ultralytics.engine.trainer import BaseTrainer\nprint(BaseTrainer.build_optimizer.__wrapped__)"
    )
    assert "function BaseTrainer.build_optimizer" in run([sys.executable, "-c", code]).stdout


def test_hook_can_be_disabled():
    code = "import sys; print(any(type(f).__name__ == '_Finder' for f in sys.meta_path))"
    assert run([sys.executable, "-c", code]).stdout.strip() == "True"
    assert run([sys.executable, "-c", code], env={"YOLO_REVCOL_AUTOLOAD": "0"}).stdout.strip() == "False"


@pytest.mark.parametrize("breakage", ["missing package", "package raises on import", "hook raises"])
def test_broken_install_never_breaks_python_startup(tmp_path, breakage):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / PTH.name).write_text(PTH.read_text())
    if breakage != "missing package":
        pkg = site_dir / "yolo_revcol"
        (pkg / "integration").mkdir(parents=True)
        (pkg / "__init__.py").write_text("" if breakage == "hook raises" else "raise ImportError('half installed')\n")
        (pkg / "integration" / "__init__.py").write_text("")
        (pkg / "integration" / "startup.py").write_text("def install():\n    raise RuntimeError('boom')\n")
    # -S: no site-packages, so only the broken copy in site_dir can be found; addsitedir processes its .pth.
    code = f"import site; site.addsitedir(r'{site_dir}'); print('started')"
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "started"
    assert proc.stderr == ""


def test_failed_registration_warns_and_does_not_break_ultralytics_import(monkeypatch, capsys):
    from yolo_revcol.integration import register, startup

    def fail(**kwargs):
        raise register.UnsupportedUltralyticsError("ultralytics 9.0.0 is installed")

    monkeypatch.setattr(register, "register", fail)
    startup._register_after(None)
    assert "RevCol is not registered with Ultralytics: ultralytics 9.0.0 is installed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "first",
    [
        "import ultralytics.data.utils",  # registers RevCol while data.utils is still executing
        "from ultralytics.data.utils import check_det_dataset",
        "from ultralytics.engine.validator import BaseValidator",
    ],
)
def test_registration_is_whole_whatever_data_module_is_imported_first(first):
    code = (
        f"{first}\n"
        "from ultralytics.nn.tasks import DetectionModel\n"
        f"m = DetectionModel(r'{CFG / 'yolov8n-revcol.yaml'}', verbose=False)\n"
        "from ultralytics.engine import exporter, trainer, validator\n"
        "print(type(m.model[0]).__name__, *(hasattr(x.check_cls_dataset, '_yolo_revcol_wrapped') for x in "
        "(trainer, validator, exporter)))"
    )
    proc = run([sys.executable, "-c", code])
    assert "WARNING" not in proc.stderr, proc.stderr
    assert proc.stdout.split() == ["RevCol", "True", "True", "True"]
