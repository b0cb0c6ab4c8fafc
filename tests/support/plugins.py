"""Plugin folders written by the tests: a ``plugin.json`` and its source file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_plugin(root: Path, plugin_id: str, code: str, engine: str = "python", ext: str = ".py",
                 **fields: Any) -> Path:
    """``root/<plugin_id>/`` with a valid ``plugin.json`` (a daily worker without retries; ``fields`` add to or
    override it) and ``<plugin_id><ext>`` holding ``code``; returns the folder."""
    folder = root / plugin_id
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({
        "plugin": plugin_id, "engine": engine, "enabled": True, "schedule": "@daily", "description": "t",
        "type": "worker", "executionContext": "master", "retries": 0, **fields}))
    (folder / f"{plugin_id}{ext}").write_text(code)
    return folder
