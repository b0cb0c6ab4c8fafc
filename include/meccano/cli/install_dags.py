"""``python -m meccano install-dags``: the DAG file and the shipped plugins into an Airflow of the user's own.

The wheel carries both under ``meccano/shipped/`` (setup.py puts them there); an editable install (a checkout)
reads the checkout's ``dags/`` and ``meccano_plugins/``. The DAG file goes into Airflow's DAGs folder
(``--dags-folder``, default Airflow's ``[core] dags_folder``), the plugin folders into the plugins folder
(``--plugins-folder``, default the setting ``MECCANO_PLUGINS_DIR`` or its default, ``$AIRFLOW_HOME/meccano_plugins``
for an installed package). A file that exists with the same content is left alone; one that differs is replaced
only with ``--yes`` (or a yes on a terminal). ``--dry-run`` prints the plan and changes nothing.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import meccano
from meccano.cli.confirm import EXIT_PROBLEM, confirmed
from meccano.errors import ConfigError
from meccano.settings.config import PROJECT_ROOT
from meccano.settings.plugins_folder import CHECKOUT_PLUGINS_DIR, PLUGINS_SETTING, default_plugins_dir, plugins_dir

DAG_FILE = "meccano_dags.py"
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


@dataclass(frozen=True)
class Step:
    source: Path
    target: Path
    action: str  # "copy" (new), "same" (identical: left alone), "replace" (differs)


def shipped_sources() -> tuple[Path, Path]:
    """(the folder holding the DAG file, the folder of the shipped plugins) of this installation."""
    shipped = Path(meccano.__file__).parent / "shipped"
    for dags, plugins in ((shipped / "dags", shipped / "meccano_plugins"),
                          (PROJECT_ROOT / "dags", CHECKOUT_PLUGINS_DIR)):
        if (dags / DAG_FILE).is_file() and plugins.is_dir():
            return dags, plugins
    raise ConfigError(f"{shipped}: the package carries no DAG file and plugins (built without setup.py?); "
                      "reinstall it from its wheel")


def _files(source: Path) -> list[Path]:
    """Every file below ``source`` that is copied (no caches, no hidden files), relative to it."""
    out = []
    for folder, dirs, names in os.walk(source):
        ignored = SKIPPED(folder, [*dirs, *names])
        dirs[:] = sorted(d for d in dirs if d not in ignored)
        out += [Path(folder, n).relative_to(source) for n in sorted(names) if n not in ignored]
    return out


def _step(source: Path, target: Path) -> Step:
    if not target.exists():
        return Step(source, target, "copy")
    same = target.is_file() and filecmp.cmp(source, target, shallow=False)
    return Step(source, target, "same" if same else "replace")


def plan(dags_folder: Path, plugins_folder: Path) -> list[Step]:
    """What installing would do, file by file: the DAG file first, then each plugin's files."""
    dags, plugins = shipped_sources()
    steps = [_step(dags / DAG_FILE, dags_folder / DAG_FILE)]
    steps += [_step(plugins / rel, plugins_folder / rel) for rel in _files(plugins)]
    return steps


def _apply(steps: list[Step]) -> None:
    for step in steps:
        if step.action == "same":
            continue
        step.target.parent.mkdir(parents=True, exist_ok=True)
        if step.target.is_dir() and not step.target.is_symlink():
            raise ConfigError(f"{step.target}: a folder stands where the file {step.source.name} goes; move it away")
        shutil.copyfile(step.source, step.target)


def _airflow_dags_folder() -> Path:
    from airflow.sdk import conf  # lazy: airflow.sdk costs 1087 ms at import (python -X importtime)

    return Path(os.path.expanduser(conf.get("core", "dags_folder")))


def install(args: argparse.Namespace) -> int:
    dags_folder = Path(args.dags_folder) if args.dags_folder else _airflow_dags_folder()
    plugins_folder = Path(args.plugins_folder) if args.plugins_folder else plugins_dir()
    steps = plan(dags_folder, plugins_folder)
    counts = {a: sum(s.action == a for s in steps) for a in ("copy", "replace", "same")}
    for step in steps:
        if step.action != "same":
            print(f"{'would ' if args.dry_run else ''}{step.action} {step.target}")
    print(f"DAG file -> {dags_folder}; plugins -> {plugins_folder}: {counts['copy']} new, "
          f"{counts['replace']} differing, {counts['same']} unchanged file(s)")
    if args.dry_run:
        print("dry run: nothing changed")
        return 0
    replaced = [s for s in steps if s.action == "replace"]
    if replaced and not confirmed(args.yes, f"install-dags: replace {len(replaced)} file(s) that differ from the "
                                             "shipped ones (listed above)"):
        return EXIT_PROBLEM
    _apply(steps)
    print("installed")
    if plugins_folder.resolve() != plugins_dir().resolve():
        print(f"note: set {PLUGINS_SETTING}={plugins_folder} for every Airflow component (scheduler, dag-processor, "
              f"workers, API server); without it they read {default_plugins_dir()}")
    if plugins_folder.resolve().is_relative_to(dags_folder.resolve()):
        print(f"note: the plugins folder is inside the DAGs folder: add `{plugins_folder.name}/` to "
              f"{dags_folder / '.airflowignore'} so that Airflow does not parse the plugins' files as DAG files")
    return 0


def add_install_dags_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("install-dags", help="copy the DAG file and the shipped plugins into an Airflow",
                            description="copy the DAG file and the shipped plugins into an Airflow")
    parser.add_argument("--dags-folder", help="Airflow's DAGs folder (default: Airflow's [core] dags_folder)")
    parser.add_argument("--plugins-folder", help=f"where the plugin folders go (default: ${PLUGINS_SETTING}, else "
                                                 "$AIRFLOW_HOME/meccano_plugins for an installed package)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be copied, change nothing")
    parser.add_argument("-y", "--yes", action="store_true",
                        help="replace files that differ from the shipped ones without asking (\"Proceed? (y/n)\" on a "
                             "terminal; needed without one)")
    parser.set_defaults(func=install)
