"""The package outside its checkout: the wheel carries every YAML, and Ultralytics resolves them by name anywhere.

The end-to-end tests build the wheel, install it into a fresh virtual environment that sees torch and Ultralytics
from the test environment but not the checkout (the editable install's path hook lives in a ``.pth`` file there that
the fresh environment never processes), and run from a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import CFG, ROOT, run
from model_yamls import scaled_path

from yolo_revcol import configs
from yolo_revcol.integration.offline import provide_fonts

MODEL_NAMES = sorted(p.name for p in CFG.glob("*.yaml"))
DATASET_NAMES = sorted(p.name for p in (CFG / "datasets").glob("*.yaml"))

# Run in the fresh environment: build every model YAML at scale n (and one at s) by name; report what was built.
BUILD_BY_NAME = textwrap.dedent(
    """
    import json, sys
    import yolo_revcol
    from ultralytics import YOLO
    from yolo_revcol.paths import cfg_dir

    built = {}
    for name in sys.argv[1:]:
        model = YOLO(name)
        built[name] = [model.task, model.model.yaml["scale"], type(model.model.model[0]).__name__]
    try:
        YOLO("yolov8n-revcol-typo.yaml")
        error = ""
    except FileNotFoundError as e:
        error = str(e)
    print(json.dumps(dict(package=yolo_revcol.__file__, cfg=str(cfg_dir()), path=sys.path, built=built, error=error)))
    """
)
# The stock `yolo` console script, run by the fresh environment's interpreter (the script itself lives elsewhere),
# with the dataset generator shrunk, as in test_synthetic_data: it records the arguments the download script passed.
YOLO_CLI_TINY_DATA = textwrap.dedent(
    """
    import json, sys
    from yolo_revcol.data import synthetic
    from ultralytics.cfg import entrypoint

    generate = synthetic.generate_detection_dataset

    def tiny(root, **kwargs):
        print("GENERATE " + json.dumps([str(root), kwargs]))
        return generate(root, train=16, val=8, imgsz=64, seed=0)

    synthetic.generate_detection_dataset = tiny  # the YAML's download script imports it from the module
    sys.argv[0] = "yolo"
    sys.exit(entrypoint())
    """
)


def pip(*args: str, cwd: Path | None = None) -> None:
    """Run the test environment's pip."""
    run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from the checkout (offline: the build backend comes from the test environment)."""
    out = tmp_path_factory.mktemp("dist")
    pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT))
    (path,) = out.glob("yolo_revcol-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh(wheel, tmp_path_factory) -> dict:
    """A fresh venv with only the wheel installed, torch/Ultralytics borrowed, and private Ultralytics settings.

    Returns:
        (dict): ``python`` (interpreter), ``bin`` (its scripts), ``prefix``, ``cwd`` (an empty working folder),
            ``env`` (environment variables for its processes), ``datasets`` and ``runs`` (Ultralytics' folders).
    """
    from ultralytics.utils import SettingsManager

    base = tmp_path_factory.mktemp("fresh").resolve()
    prefix = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(prefix)])
    python = prefix / "bin" / "python"
    # Install before borrowing the test environment's packages, so pip sees no other yolo-revcol.
    pip("--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel))
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    borrowed = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(purelib) / "borrowed_test_env.pth").write_text("".join(f"{p}\n" for p in borrowed))  # paths only
    config = base / "config"  # Ultralytics' folder in it: fonts (no download), settings that keep everything in base
    provide_fonts(config / "Ultralytics")
    folders = {k: base / k for k in ("datasets", "runs", "weights")}
    SettingsManager(config / "Ultralytics" / "settings.json").update(**{f"{k}_dir": str(v) for k, v in folders.items()})
    # Not PYTEST_CURRENT_TEST: under pytest Ultralytics writes runs into its own package folder instead of runs_dir.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTEST_CURRENT_TEST"}}
    env.update(YOLO_CONFIG_DIR=str(config), YOLO_OFFLINE="1")
    cwd = base / "work"
    cwd.mkdir()
    return dict(python=python, bin=prefix / "bin", prefix=prefix, cwd=cwd, env=env, **folders)


def run_fresh(fresh: dict, cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a command in the fresh environment's working folder; fail with its output if it fails."""
    proc = subprocess.run(cmd, cwd=fresh["cwd"], env=fresh["env"], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def test_wheel_carries_every_yaml(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"yolo_revcol/cfg/{p.relative_to(CFG).as_posix()}" for p in CFG.rglob("*.yaml")}
    assert len(shipped) == len(MODEL_NAMES) + len(DATASET_NAMES) and shipped <= names
    assert "yolo_revcol_autoload.pth" in names
    assert "yolo_revcol/tools/studies.yaml" in names  # the accuracy tool's studies
    assert not [n for n in names if "model_yamls" in n]  # a checkout's maintenance script, not the product's


def test_editable_wheel_reads_cfg_in_place(tmp_path):
    from hatchling.builders.wheel import WheelBuilder  # editable builds also need `editables` (in the test extra)

    (path,) = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["editable"])
    names = zipfile.ZipFile(path).namelist()
    assert "yolo_revcol_autoload.pth" in names  # the start-up hook still installs
    assert not [n for n in names if n.startswith("yolo_revcol/")]  # no stale copy of cfg/ next to the checkout's


def test_wheel_install_builds_every_yaml_by_name_from_any_folder(fresh):
    names = [scaled_path(Path(n), "n").name for n in MODEL_NAMES] + ["yolov8s-revcol-seg.yaml"]
    out = json.loads(run_fresh(fresh, [str(fresh["python"]), "-c", BUILD_BY_NAME, *names]).stdout.splitlines()[-1])
    assert Path(out["package"]).is_relative_to(fresh["prefix"])  # the wheel, not the checkout
    assert Path(out["cfg"]).is_relative_to(fresh["prefix"])
    assert not any(Path(p).resolve() == ROOT for p in out["path"] if p)
    tasks = {"cls": "classify", "seg": "segment", "pose": "pose", "obb": "obb"}
    for name in names:
        task = tasks.get(Path(name).stem.rsplit("-", 1)[-1], "detect")
        scale = "s" if name.startswith("yolov8s") else "" if name.startswith("revcol-") else "n"  # T/S/B: no scales
        assert out["built"][name] == [task, scale, "RevCol"], name
    assert all(n in out["error"] for n in MODEL_NAMES + DATASET_NAMES)  # an unknown name of ours lists ours

    listing = run_fresh(fresh, [str(fresh["bin"] / "yolo-revcol"), "cfg"]).stdout
    assert str(fresh["prefix"]) in listing and all(n in listing for n in MODEL_NAMES + DATASET_NAMES)


def test_console_command_edges_in_wheel_install(fresh):
    from importlib.metadata import version

    yolo_revcol = str(fresh["bin"] / "yolo-revcol")
    assert run_fresh(fresh, [yolo_revcol, "--version"]).stdout.strip() == f"yolo-revcol {version('yolo-revcol')}"
    proc = subprocess.run([yolo_revcol, "compre"], cwd=fresh["cwd"], env=fresh["env"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown command 'compre'; did you mean 'compare'?" in proc.stderr
    # Every name the listing shows can be copied out; a scaled name keeps the scale it picks.
    out = fresh["cwd"].parent / "cfg-copy"
    said = run_fresh(fresh, [yolo_revcol, "cfg", "yolov8s-revcol-seg.yaml", "--out", str(out)]).stdout
    assert "(a copy of yolov8-revcol-seg.yaml; the name picks scale s)" in said
    assert (out / "yolov8s-revcol-seg.yaml").read_text() == (CFG / "yolov8-revcol-seg.yaml").read_text()


def test_yolo_train_by_name_in_wheel_install(fresh):
    args = "model=yolov8n-revcol.yaml data=revcol-shapes.yaml epochs=1 imgsz=64 batch=8 device=cpu workers=0"
    cmd = [str(fresh["python"]), "-c", YOLO_CLI_TINY_DATA, "train", *args.split(), "plots=False", "name=byname"]
    stdout = run_fresh(fresh, cmd).stdout
    assert (fresh["runs"] / "detect" / "byname" / "weights" / "best.pt").is_file()
    # The shipped YAML's download script made the data in Ultralytics' datasets dir (not next to the YAML), once.
    (call,) = [json.loads(line.split(" ", 1)[1]) for line in stdout.splitlines() if line.startswith("GENERATE ")]
    root = fresh["datasets"] / "revcol-shapes"
    assert call == [str(root), dict(train=400, val=100, imgsz=320, seed=0)]
    assert len(list((root / "images" / "train").iterdir())) == 16
    assert not list(fresh["prefix"].rglob("images"))
    assert list(fresh["cwd"].iterdir()) == []


def readme_installed_quickstart() -> list[str]:
    """The command lines of the README's installed quickstart (the first bash block under its heading)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Installed, from any folder") :]
    block = section[section.index("```bash\n") + 8 : section.index("\n```", section.index("```bash"))]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_installed_quickstart_runs_from_a_folder_outside_the_checkout(fresh):
    lines = readme_installed_quickstart()
    assert lines[0].startswith("pip install") and any(line.startswith("yolo export") for line in lines)
    run_dir = fresh["runs"] / "detect" / "quick"
    image = None
    for line in lines[1:]:  # the fixture installed the wheel already
        words = line.replace("epochs=5", "epochs=1").replace("imgsz=320", "imgsz=64").split()
        words = [w.replace("PATH/", f"{run_dir}/") for w in words]
        if words[0] == "yolo-revcol":
            run_fresh(fresh, [str(fresh["bin"] / "yolo-revcol"), *words[1:]])
            continue
        assert words[0] == "yolo", line
        if words[1] == "train":
            words += ["batch=8", "workers=0", "plots=False", "name=quick"]
        if words[1] == "predict":
            image = image or next((fresh["datasets"] / "revcol-shapes" / "images" / "val").iterdir())
            words = [f"source={image}" if w.startswith("source=") else w for w in words]
            words += ["project=" + str(fresh["cwd"].parent / "predict")]
        run_fresh(fresh, [str(fresh["python"]), "-c", YOLO_CLI_TINY_DATA, *words[1:]])
    assert (run_dir / "weights" / "best.pt").is_file() and (run_dir / "weights" / "best.onnx").is_file()
    assert list((fresh["cwd"].parent / "predict").rglob(image.name))  # the annotated picture
    assert list(fresh["cwd"].iterdir()) == []  # nothing written into the folder the user stands in


def test_compare_runs_from_any_folder_in_wheel_install(fresh):
    out = fresh["cwd"].parent / "compare"
    run_fresh(fresh, [str(fresh["bin"] / "yolo-revcol"), "compare", "--scales", "n", "--out", str(out)])
    assert "yolov8n-revcol" in (out / "compare_yolov8.csv").read_text()


def test_names_resolve_to_the_checkout_and_a_local_file_wins(tmp_path, monkeypatch):
    from ultralytics import YOLO
    from ultralytics.utils.checks import check_yaml

    from yolo_revcol.paths import cfg_dir

    assert cfg_dir() == CFG  # checkout / editable install: the one source, in place
    assert Path(check_yaml("revcol-shapes.yaml")) == CFG / "datasets" / "revcol-shapes.yaml"
    shipped = (CFG / "yolov8-revcol.yaml").read_text()
    assert "nc: 80 " in shipped and YOLO("yolov8n-revcol.yaml").model.model[-1].nc == 80
    monkeypatch.chdir(tmp_path)
    local = shipped.replace("nc: 80 ", "nc: 3 ")
    (tmp_path / "yolov8-revcol.yaml").write_text(local)
    assert YOLO("yolov8n-revcol.yaml").model.model[-1].nc == 3


@pytest.mark.parametrize("name", ["yolov8n-revcol-typo.yaml", "revcol-shapez.yaml", "revcol-shapez"])
def test_unknown_name_of_ours_lists_the_shipped_ones(name):
    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset

    with pytest.raises(FileNotFoundError) as info:
        YOLO(name) if name.startswith("yolo") else check_det_dataset(name)
    assert all(n in str(info.value) for n in MODEL_NAMES + DATASET_NAMES)


def test_other_missing_names_keep_ultralytics_error():
    from ultralytics.utils.checks import check_yaml

    with pytest.raises(FileNotFoundError) as info:
        check_yaml("no-such-model.yaml")
    assert "revcol" not in str(info.value)
    assert check_yaml("yolov8-revcol-typo.yaml", hard=False) == []


def test_cfg_command_lists_and_copies_without_overwriting(tmp_path, capsys):
    assert configs.main([]) == 0
    listing = capsys.readouterr().out
    assert all(n in listing for n in MODEL_NAMES + DATASET_NAMES)
    assert "yolov8n-revcol-seg.yaml" in listing  # the scaled names that pick a scale

    assert configs.main(["revcol-shapes", "--out", str(tmp_path)]) == 0
    copied = tmp_path / "revcol-shapes.yaml"
    assert copied.read_text() == (CFG / "datasets" / "revcol-shapes.yaml").read_text()
    copied.write_text("edited")
    assert configs.main(["revcol-shapes.yaml", "--out", str(tmp_path)]) == 1
    assert copied.read_text() == "edited" and "--force" in capsys.readouterr().err
    assert configs.main(["revcol-shapes.yaml", "--out", str(tmp_path), "--force"]) == 0
    assert copied.read_text() == (CFG / "datasets" / "revcol-shapes.yaml").read_text()

    assert configs.main(["nope.yaml", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert all(n in err for n in MODEL_NAMES + DATASET_NAMES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["revcol-shapes.yaml"]
