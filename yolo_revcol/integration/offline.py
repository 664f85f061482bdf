"""Keep Ultralytics from reaching the network for fonts.

Ultralytics looks for ``Arial.ttf`` (and ``Arial.Unicode.ttf`` for non-ASCII class names) in its user config
folder and downloads them when missing, during dataset checks and plotting. An offline machine then waits on a
failed connection. ``provide_fonts()`` places matplotlib's bundled DejaVu Sans (an open font shipped with every
matplotlib) under those names instead, so nothing is downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def provide_fonts(config_dir: Path | None = None) -> list[Path]:
    """Copy DejaVu Sans into Ultralytics' config folder under the font names it would otherwise download.

    Args:
        config_dir (Path | None): Ultralytics' user config folder; defaults to its ``USER_CONFIG_DIR``.

    Returns:
        (list[Path]): The font files written (fonts already present are left alone).
    """
    import matplotlib

    if config_dir is None:
        from ultralytics.utils import USER_CONFIG_DIR as config_dir
    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    written = []
    for name in FONT_NAMES:
        target = Path(config_dir) / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m yolo_revcol.integration.offline``: provide the fonts and say where."""
    for path in provide_fonts():
        print(f"yolo-revcol: installed offline font {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
