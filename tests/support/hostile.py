"""A plugins folder holding one plugin of each hostile kind next to valid ones.

The text fixtures live in ``tests/fixtures/hostile/``; what must not be in git (a named
pipe, symlinks to ``/dev/zero`` and out of the folder, a 50 MB file) is made here, in a
temporary folder, at test time. ``EXPECTED`` maps each invalid folder to words its
messages must hold (the field and the reason); ``VALID`` are the plugins that must stay
unaffected; ``SKIPPED`` the entries shown as skipped.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
LONG_VERSION = "longVersion:1." + "1" * 118

VALID = ("good", "cronLast", "cronNth", "cronQuestion", "withParams", "docsFifo")
SKIPPED = ("_private:1.0", ".hidden:1.0", "stray-file.txt")
EXPECTED: dict[str, tuple[str, ...]] = {
    "deepNest:1.0": ("plugin.json", "nested"),
    "hugeNumber:1.0": ("plugin.json", "digits"),
    "nanTimeout:1.0": ("plugin.json", "NaN is not allowed"),
    "hugeTimeout:1.0": ("timeoutMinutes", "1e+300 must be 10080 or less"),
    "unknownOutletField:1.0": ("outlets", "{password} is not allowed"),
    "attributeOutlet:1.0": ("outlets", "{bucket.__class__} is not allowed"),
    LONG_VERSION: ("plugin", "is not of the form <name>:<version>"),
    "neverFires:1.0": ("schedule", "never fires"),
    "trailingNewline:1.0": ("tasks[0]", "is not a Python identifier"),
    "duplicateKeys:1.0": ("plugin.json", "duplicate key 'enabled'"),
    "meccano_invalid_good:1.0": ("plugin", "reserved"),
    "meccano_config_error:1.0": ("plugin", "reserved"),
    "clash:1.0": ("plugin.json", "invalid JSON"),
    "clash_1_0": ("plugin.json", "invalid JSON"),
    "longDescription:1.0": ("description", "at most 2000"),
    "badParamSchema:1.0": ("parameters.n", "does not satisfy its schema"),
    "notUtf8:1.0": ("plugin.json", "not UTF-8 text"),
    # made at test time
    "fifo:1.0": ("plugin.json", "named pipe"),
    "devZero:1.0": ("plugin.json", "symbolic link"),
    "bigFile:1.0": ("plugin.json", "the limit is 262,144 bytes"),
    "linkedOut:1.0": ("folder", "outside"),
    "sourceOut:1.0": ("engine", "outside the plugins folder"),
}
BIG = 50 * 1024 * 1024
OUTSIDE_SECRET = "OUTSIDE-THE-PLUGINS-FOLDER-7f3a"


def _write_valid(folder: Path, **extra: str) -> None:
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({
        "plugin": folder.name, "engine": "native", "enabled": True, "schedule": "@daily", "description": "d",
        "type": "worker", "executionContext": "master"}))
    (folder / f"{folder.name}.py").write_text("def entrypoint(context):\n    pass\n")


def build_tree(tmp_path: Path) -> Path:
    """``tmp_path/plugins`` with every hostile kind; returns that folder."""
    root = tmp_path / "plugins"
    shutil.copytree(FIXTURES, root)
    outside = tmp_path / "outside"
    outside.mkdir()

    fifo = root / "fifo:1.0"
    fifo.mkdir()
    os.mkfifo(fifo / "plugin.json")
    (fifo / "fifo:1.0.py").write_text("def entrypoint(context):\n    pass\n")

    zero = root / "devZero:1.0"
    zero.mkdir()
    (zero / "plugin.json").symlink_to("/dev/zero")

    big = root / "bigFile:1.0"
    big.mkdir()
    with open(big / "plugin.json", "wb") as handle:  # sparse: 50 MB on paper, nothing on disk
        handle.truncate(BIG)

    _write_valid(outside / "linkedOut:1.0")
    (outside / "linkedOut:1.0" / "assets").mkdir()
    (outside / "linkedOut:1.0" / "assets" / "index.html").write_text(OUTSIDE_SECRET)
    (root / "linkedOut:1.0").symlink_to(outside / "linkedOut:1.0", target_is_directory=True)

    _write_valid(root / "sourceOut:1.0")
    (outside / "code.py").write_text("def entrypoint(context):\n    pass\n")
    (root / "sourceOut:1.0" / "sourceOut:1.0.py").unlink()
    (root / "sourceOut:1.0" / "sourceOut:1.0.py").symlink_to(outside / "code.py")

    # a valid plugin whose docs page is a named pipe: must neither hang nor be read
    _write_valid(root / "docsFifo:1.0")
    (root / "docsFifo:1.0" / "assets").mkdir()
    os.mkfifo(root / "docsFifo:1.0" / "assets" / "index.html")

    (root / ".hidden:1.0").mkdir()
    (root / "stray-file.txt").write_text("not a plugin")
    return root
