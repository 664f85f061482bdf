"""The command line's edges: unknown commands, --version, names reported as typed, renamed YAMLs, shadowing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import BIN, CFG, run

from yolo_revcol import __version__, configs
from yolo_revcol.cli import COMMANDS


@pytest.mark.parametrize(
    "typed, message",
    [
        ("compre", "yolo-revcol: unknown command 'compre'; did you mean 'compare'?"),
        ("frobnicate", "yolo-revcol: unknown command 'frobnicate'; commands: " + ", ".join(COMMANDS)),
    ],
)
def test_unknown_command_is_named_with_the_closest_one(typed, message):
    proc = subprocess.run([str(BIN / "yolo-revcol"), typed], capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""


def test_version_and_usage():
    from importlib.metadata import version

    out = run([str(BIN / "yolo-revcol"), "--version"]).stdout
    assert out.strip() == f"yolo-revcol {__version__}" and __version__ == version("yolo-revcol")
    assert "yolo-revcol --version" in run([str(BIN / "yolo-revcol"), "--help"]).stdout
    assert subprocess.run([str(BIN / "yolo-revcol")], capture_output=True).returncode == 2


def test_cfg_copies_every_listed_name(tmp_path, capsys):
    from yolo_revcol.paths import model_names

    assert configs.main(["yolov8n-revcol.yaml", "--out", str(tmp_path)]) == 0
    said = capsys.readouterr().out
    assert "(a copy of yolov8-revcol.yaml; the name picks scale n)" in said
    assert (tmp_path / "yolov8n-revcol.yaml").read_text() == (CFG / "yolov8-revcol.yaml").read_text()
    listing = configs.listing()
    for name in model_names():  # every name the listing shows (first and last scale of each) is accepted
        if name in listing:
            assert configs.main([name, "--out", str(tmp_path / "all"), "--force"]) == 0, name
    assert configs.main(["yolov8n-revcoll", "--out", str(tmp_path)]) == 1
    assert "did you mean yolov8n-revcol.yaml" in capsys.readouterr().err


def test_unknown_model_is_named_as_typed_with_the_closest_names():
    from ultralytics import YOLO

    with pytest.raises(
        FileNotFoundError, match=r"model 'yolov8n-revcoll\.yaml' not found; closest: yolov8n-revcol\.yaml"
    ):
        YOLO("yolov8n-revcoll.yaml")


def test_paper_yamls_have_names_that_no_scale_reaches():
    from ultralytics import YOLO

    for p in "tsb":
        assert (CFG / f"revcol-{p}-yolov8.yaml").is_file() and not (CFG / f"yolov8-revcol-{p}.yaml").exists()
    with pytest.raises(FileNotFoundError, match="'yolov8-revcol-s.yaml' was the old name of .* revcol-s-yolov8.yaml"):
        YOLO("yolov8n-revcol-s.yaml")  # was silently the paper's RevCol-S


def test_old_paper_names_still_load_with_a_warning():
    script = "import ultralytics.nn.tasks; from ultralytics.utils.checks import check_yaml; "
    script += "print('PATH', check_yaml('yolov8-revcol-t.yaml'))"
    proc = run([sys.executable, "-c", script])
    assert proc.stdout.splitlines()[-1] == f"PATH {CFG / 'revcol-t-yolov8.yaml'}"
    assert "yolov8-revcol-t.yaml is now named revcol-t-yolov8.yaml" in proc.stdout + proc.stderr


def test_a_local_copy_that_shadows_a_shipped_name_is_reported_once(tmp_path):
    (tmp_path / "yolov8-revcol.yaml").write_text((CFG / "yolov8-revcol.yaml").read_text().replace("nc: 80 ", "nc: 3 "))
    script = textwrap.dedent(
        """
        from ultralytics import YOLO
        print("NC", YOLO("yolov8n-revcol.yaml").model.model[-1].nc, YOLO("yolov8n-revcol.yaml").model.model[-1].nc)
        """
    )
    proc = run([sys.executable, "-c", script], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "NC 3 3" in out
    assert out.count("using ./yolov8-revcol.yaml, not the shipped yolov8-revcol.yaml") == 1


def test_misspelt_option_gets_did_you_mean(tmp_path):
    import yaml
    from ultralytics.nn.tasks import DetectionModel

    d = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    d["backbone"][0][3][3]["blokc"] = d["backbone"][0][3][3].pop("block")
    with pytest.raises(
        ValueError, match="layer 0 \\(RevCol\\): unknown option 'blokc' \\(value 'c2f'\\); did you mean 'block'\\?"
    ):
        DetectionModel(d, verbose=False)


def test_classification_dataset_yaml_works_by_name(tmp_path, monkeypatch):
    import ultralytics.utils
    from ultralytics.data.utils import check_cls_dataset

    monkeypatch.setattr(ultralytics.utils, "DATASETS_DIR", tmp_path)
    data = check_cls_dataset("revcol-shapes-cls.yaml")  # generated on first use, from the YAML's own script
    assert data["nc"] == 8 and str(data["train"]).startswith(str(tmp_path / "revcol-shapes-cls"))
    assert len(list((tmp_path / "revcol-shapes-cls" / "val" / "star").iterdir())) == 25
    assert check_cls_dataset("revcol-shapes-cls.yaml")["nc"] == 8  # second time: the folder is there


def test_compare_measures_a_users_yaml_against_the_stock_model_of_its_scale(tmp_path):
    text = (CFG / "yolov8-revcol.yaml").read_text().replace("{n: 2, s: 2,", "{n: 1, s: 1,")
    (tmp_path / "yolov8s-mine.yaml").write_text(text)
    (tmp_path / "yolov8-revcol.yaml").write_text(text)  # shadows the shipped name
    cmd = [str(BIN / "yolo-revcol"), "compare", "--model"]
    out = run(cmd + ["yolov8s-mine.yaml"], cwd=tmp_path).stdout
    assert "yolov8s-mine.yaml against yolov8s.yaml" in out and "| s | yolov8s-mine |" in out
    proc = run(cmd + ["yolov8-revcol.yaml"], cwd=tmp_path)
    assert "| n | yolov8n |" in proc.stdout
    assert "using ./yolov8-revcol.yaml, not the shipped yolov8-revcol.yaml" in proc.stdout + proc.stderr
    proc = subprocess.run(cmd + ["yolov8n-revcoll.yaml"], capture_output=True, text=True, cwd=tmp_path)
    assert (
        proc.returncode == 2 and "model 'yolov8n-revcoll.yaml' not found; closest: yolov8n-revcol.yaml" in proc.stderr
    )
