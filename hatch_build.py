"""Wheel build hook: an editable install reads cfg/ in place, so it gets no copy of it.

pyproject.toml force-includes cfg/ as ``yolo_revcol/cfg`` for the wheel. Hatchling would copy it into editable
installs too, where it would only be a stale duplicate; editable builds keep every other force-included file (the
start-up hook's ``.pth``).
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGED_CFG = "yolo_revcol/cfg"


class CustomBuildHook(BuildHookInterface):
    """Drop the packaged cfg/ from editable wheels."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Give editable builds the configured force-include map without cfg/.

        Args:
            version (str): "standard" (wheel) or "editable".
            build_data (dict): Hatchling's build data; ``force_include_editable`` replaces the map when not empty.
        """
        if version == "editable":
            forced = self.build_config.force_include
            build_data["force_include_editable"] = {s: d for s, d in forced.items() if not d.startswith(PACKAGED_CFG)}
