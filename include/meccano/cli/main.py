"""``meccano`` (or ``python -m meccano``): plugin checks for authors, IOTDB set-up for operators.

One sub-command per action, each with its own help and only its own flags (``meccano db downgrade
--help``). Every action that changes something plans first: ``--dry-run`` prints what would be done and
changes nothing; destructive ones (``db downgrade``, ``db partition``, ``migrate apply`` over a different
config.yml) ask "Proceed? (y/n)" on a terminal and need ``--yes`` without one. Exit codes: see EXIT_CODES.
The whole reference: docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import redirect_stdout
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from meccano.cli.confirm import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, confirmed
from meccano.cli.install_dags import add_install_dags_parser
from meccano.cli.output import FORMATS, render
from meccano.cli.switchover import add_migrate_parser
from meccano.contract.manifest import invalid_dag_id, json_schema, load_plugin
from meccano.errors import ConfigError, MigrationError
from meccano.iotdb.db import Iotdb
from meccano.iotdb.partition_ops import DEFAULT_AHEAD, check_lines, partition_command
from meccano.iotdb.schema_migrations import downgrade, iotdb_missing, migration_command, plan_downgrade
from meccano.plugins.discovery import SKIP_RULE, discover, scan
from meccano.secrets.redaction import redact_text
from meccano.settings.config import Settings, load_settings
from meccano.settings.listing import setting_rows
from meccano.settings.plugins_folder import folder_message, plugins_dir
from meccano.settings.secrets import known_secrets


def _plugins_list(args: argparse.Namespace) -> int:
    problem = folder_message(Path(args.dir) if args.dir else None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    catalog = discover(Path(args.dir) if args.dir else None)
    rows: list[dict[str, Any]] = []
    for load in catalog.active:
        m = load.manifest
        assert m is not None
        rows.append({"plugin": m.plugin, "dag_id": m.dag_id, "status": "active" if m.enabled else "disabled",
                     "engine": str(m.engine), "type": str(m.type), "schedule": m.schedule,
                     "errors": [], "problems": [w.as_json() for w in load.warnings],
                     "warnings": [str(w) for w in load.warnings]})
    for item in catalog.shadowed:
        rows.append({"plugin": item.load.folder.name, "dag_id": None, "status": f"shadowed by {item.by}",
                     "errors": [], "problems": [w.as_json() for w in item.load.warnings],
                     "warnings": [str(w) for w in item.load.warnings]})
    for load in catalog.invalid:
        rows.append({"plugin": load.folder.name, "dag_id": invalid_dag_id(load.folder), "status": "invalid",
                     "errors": [str(p) for p in load.problems],
                     "problems": [p.as_json() for p in (*load.problems, *load.warnings)],
                     "warnings": [str(w) for w in load.warnings]})
    skipped = [{"plugin": s.name, "dag_id": None, "status": "skipped", "errors": [], "problems": [],
                "warnings": [s.reason]} for s in catalog.skipped]
    if args.output in ("json", "yaml"):
        print(render([*rows, *skipped], args.output, []))
    else:
        print(f"{'PLUGIN':32} {'STATUS':26} {'ENGINE':7} {'TYPE':7} SCHEDULE")
        for r in [*rows, *skipped]:
            print(f"{_printable(r['plugin']):32} {r['status']:26} {r.get('engine', '-'):7} {r.get('type', '-'):7} "
                  f"{r.get('schedule', '-')}")
            for e in r["errors"]:
                print(f"    error: {_printable(e)}")
            for w in r["warnings"]:
                print(f"    {'skipped' if r['status'] == 'skipped' else 'warning'}: {_printable(w)}")
        print(f"{len(catalog.active)} active, {len(catalog.shadowed)} shadowed, {len(catalog.invalid)} invalid, "
              f"{len(catalog.skipped)} skipped ({SKIP_RULE})")
    return 1 if catalog.invalid else 0


def _printable(text: str) -> str:
    """A folder name or message for the terminal: control characters shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _plugins_validate(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [plugins_dir()]
    folders: list[tuple[Path, Path]] = []  # (folder, the plugins folder it may not leave)
    skipped = 0
    for path in paths:
        if os.path.lexists(path / "plugin.json") or ":" in path.name:
            folders.append((path, path.parent))
        elif path.is_dir():
            found, skips = scan(path)
            folders.extend((f, path) for f in found)
            skipped += len(skips)
            for skip in skips:
                print(f"SKIPPED {_printable(skip.name)}: {skip.reason}")
        else:
            print(f"{path}: not a plugin folder or a folder of plugins", file=sys.stderr)
            return 2
    bad = 0
    for folder, root in folders:
        load = load_plugin(folder, root)
        if load.valid:
            print(f"OK      {_printable(folder.name)}")
        else:
            bad += 1
            print(f"INVALID {_printable(folder.name)}")
            for problem in load.problems:
                print(f"    {_printable(str(problem))}")
        for warning in load.warnings:
            print(f"    warning: {_printable(str(warning))}")
    print(f"{len(folders) - bad} valid, {bad} invalid" + (f", {skipped} skipped ({SKIP_RULE})" if skipped else ""))
    return 1 if bad else 0


def _plugins_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def _db(args: argparse.Namespace) -> int:
    # lazy: meccano.iotdb.schema costs 4 ms at import (python -X importtime)
    from meccano.iotdb.schema import creation_date_index_warning, ensure_schema

    settings = load_settings()
    db = Iotdb.from_settings(settings)
    if getattr(args, "dry_run", False):
        db = _plannable(db)
    try:
        if args.action == "partition":
            return partition_command(db, settings, lambda: confirmed(args.yes, "db partition"), args.dry_run,
                                     args.ahead)
        if args.action == "downgrade":
            return _downgrade(db, args.dry_run, args.yes)
        if args.action == "check":
            warning = creation_date_index_warning(db)
            print(warning or f"{db!r}: Facts has its creationDate index")
            lines, problem = check_lines(db, settings)
            print("\n".join(lines))
            pending = migration_command(db, "check")
            missing = _report_missing(settings)
            return 1 if warning or problem or pending or missing else 0
        if args.dry_run:
            return _plan_upgrade(db, settings)
        print(f"step 1 of 2: the IOTDB schema ({db!r})", flush=True)
        report = ensure_schema(db, say=lambda line: print(f"  {line}", flush=True))
    finally:
        db.dispose()
    print(f"  {len(report.created)} created, {len(report.present)} already present, "
          f"{len(report.migrations)} migration(s) applied")
    for warning in report.warnings:
        print(warning, file=sys.stderr)
    print("step 2 of 2: what plugin tasks need in Airflow and S3 (buckets, the pool)", flush=True)
    return _create_prerequisites(settings)


def _plannable(db: Any) -> Any:
    """The IOTDB a dry run may look at: an SQLite file that does not exist yet would be created by merely
    connecting, so its plan is made on an empty in-memory database instead (what the real run would start from)."""
    from airflow.sdk import Connection  # lazy: airflow.sdk costs 1433 ms at import (python -X importtime)

    if db.dialect != "sqlite" or db.sqlite_path == ":memory:" or os.path.lexists(db.sqlite_path):
        return db
    print(f"the SQLite IOTDB {db.sqlite_path} does not exist yet: the plan starts from an empty database")
    db.dispose()
    return Iotdb(Connection(conn_id=db.conn_id, conn_type="sqlite", host=":memory:"))


def _downgrade(db: Any, dry_run: bool, yes: bool) -> int:
    """``db downgrade``: the plan (the revision, its statements), then the downgrade once confirmed."""

    step = plan_downgrade(db)
    print(f"db downgrade on {db!r}:")
    print("\n".join(step.lines(1, 1)))
    if dry_run:
        print("dry run: nothing was changed")
        return EXIT_OK
    if not confirmed(yes, "db downgrade"):
        return EXIT_PROBLEM
    downgrade(db, print)
    return EXIT_OK


def _plan_upgrade(db: Any, settings: Settings) -> int:
    """``db init/upgrade --dry-run``: each table, index, view and revision it would create or apply, with its
    SQL, and the buckets and pool of step 2; nothing is changed."""
    # lazy: meccano.iotdb.schema costs 4 ms at import (python -X importtime)
    from meccano.iotdb.schema import plan_schema

    # lazy: meccano.settings.prerequisites costs 2 ms at import (python -X importtime)
    from meccano.settings.prerequisites import plan_prerequisites

    print(f"step 1 of 2: the IOTDB schema ({db!r}); dry run, nothing is changed", flush=True)
    missing, steps = plan_schema(db)
    for item, ddl in missing:
        print(f"  would create {item}:")
        print("\n".join(f"    {line}" for line in f"{ddl.strip()};".splitlines()))
    for index, step in enumerate(steps, 1):
        print("\n".join(f"  {line}" for line in step.lines(index, len(steps))))
    if not missing and not steps:
        print("  nothing to create or apply: every table is there, the ServiceManager tables at head")
    print("step 2 of 2: what plugin tasks need in Airflow and S3 (buckets, the pool)", flush=True)
    try:
        lines = plan_prerequisites(settings)
    except RuntimeError as exc:
        print(f"  {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print("\n".join(f"  {line}" for line in lines))
    print("dry run: nothing was changed")
    return EXIT_OK


def _create_prerequisites(settings: Settings) -> int:
    import subprocess  # lazy: subprocess costs 1.4 ms at import (python -X importtime)

    # lazy: meccano.settings.prerequisites costs 2 ms at import (python -X importtime)
    from meccano.settings.prerequisites import create_prerequisites

    try:
        create_prerequisites(settings, lambda line: print(f"  {line}", flush=True))
    except subprocess.CalledProcessError as exc:
        print(f"error: `{' '.join(map(str, exc.cmd[2:5]))} ...` failed (exit {exc.returncode}): is Airflow's metadata "
              "database reachable and migrated (`airflow db migrate`)? Then re-run this command.", file=sys.stderr)
        return 1
    return 0


def _report_missing(settings: Settings, with_iotdb: bool = False) -> bool:
    """Print every missing prerequisite (stderr) and whether there was any; ``with_iotdb``: the IOTDB's
    connection and pending migrations too (``db check`` prints those itself)."""
    # lazy: meccano.scripts.isolation costs 2 ms at import (python -X importtime)
    from meccano.scripts.isolation import isolation_missing, isolation_notice

    # lazy: meccano.settings.prerequisites costs 2 ms at import (python -X importtime)
    from meccano.settings.prerequisites import cli_pool_slots, missing_prerequisites, s3_bucket_problem

    missing = [*(iotdb_missing(settings) if with_iotdb else []),
               *missing_prerequisites(settings, cli_pool_slots, s3_bucket_problem), *isolation_missing(settings)]
    for item in missing:
        print(str(item), file=sys.stderr)

    notice = isolation_notice(settings)
    if notice:  # the operator's explicit choice, not a missing step: said plainly, the exit code unchanged
        print(f"NOTICE {notice}", file=sys.stderr)
    if not missing:
        print("prerequisites: what plugin tasks need is there")
    return bool(missing)


def _config_show(args: argparse.Namespace) -> int:

    settings = load_settings()
    rows = [row.as_dict() for row in setting_rows(settings)]
    if args.output != "table":  # machine-readable: only the rows on stdout, the rest on stderr
        print(render(rows, args.output, []))
        with redirect_stdout(sys.stderr):
            return 1 if _report_missing(settings, with_iotdb=True) else 0
    print(render(rows, "table", ["key", "variable", "value", "source"]))
    print(f"configuration file: {settings.source} (section {settings.environment!r}; MECCANO_ENV picks it)")
    print(f"time zone: {settings.timezone} (plugin schedules run in it)")
    print(f"IOTDB pool: 'iotdb' with {settings.mysql.connection_limit} slots (mysql.connectionLimit)")
    for item in settings.ignored:
        print(f"ignored: {item}")
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 1 if _report_missing(settings, with_iotdb=True) else 0


def _pool(args: argparse.Namespace) -> int:
    # lazy: meccano.settings.pool costs 2 ms at import (python -X importtime)
    from meccano.settings.pool import IOTDB_POOL, sync_pool

    settings = load_settings()
    if args.dry_run:
        # lazy: meccano.settings.prerequisites costs 2 ms at import (python -X importtime)
        from meccano.settings.prerequisites import pool_plan_line

        try:
            print(f"{pool_plan_line(settings)}; dry run: nothing was changed")
        except RuntimeError as exc:
            print(f"pool sync: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
        return EXIT_OK
    sync_pool(settings)
    print(f"pool {IOTDB_POOL!r}: {settings.mysql.connection_limit} slots (mysql.connectionLimit)")
    return 0


EXIT_CODES = f"""exit codes:
  {EXIT_OK}  done, or nothing to do; the checks found nothing missing
  {EXIT_PROBLEM}  a problem found (an invalid plugin, something missing, a failed migration), or an action
     refused or not confirmed (nothing changed)
  {EXIT_USAGE}  usage: a wrong command line or configuration (nothing was done)"""


def _version() -> str:
    try:
        return version("meccano-servicemanager")
    except PackageNotFoundError:  # a checkout on sys.path without the package installed
        return "unknown (not installed)"


def _parser(sub: Any, name: str, help_text: str, func: Any, **defaults: Any) -> argparse.ArgumentParser:
    """A sub-command: its own help (the line in its parent's list, and the text of its own --help)."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=func, **defaults)
    return parser


def _dry_run(parser: argparse.ArgumentParser, sql_alias: bool = False) -> None:
    names = ["--dry-run", "--show-sql-only"] if sql_alias else ["--dry-run"]
    parser.add_argument(*names, dest="dry_run", action="store_true",
                        help="print what would be done (the SQL too), change nothing")


def _yes(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-y", "--yes", action="store_true",
                        help=f"{what} without asking (\"Proceed? (y/n)\" on a terminal; needed without one)")


def _add_plugins(sub: Any) -> None:
    plugins = sub.add_parser("plugins", help="list, validate plugins; print their JSON schema",
                             description="list, validate plugins; print their JSON schema")
    actions = plugins.add_subparsers(dest="action", required=True, metavar="ACTION")
    p_list = _parser(actions, "list", "every plugin with its status and errors (exit 1 if any is invalid)",
                     _plugins_list)
    p_list.add_argument("--dir", help="plugins folder (default: meccano_plugins/ or $MECCANO_PLUGINS_DIR)")
    p_list.add_argument("-o", "--output", choices=FORMATS, default="table", help="output format (default: table)")
    p_list.add_argument("--json", dest="output", action="store_const", const="json", help=argparse.SUPPRESS)
    p_val = _parser(actions, "validate", "validate plugin folders (exit 1 if any is invalid)", _plugins_validate)
    p_val.add_argument("paths", nargs="*", help="plugin folders or folders of plugins (default: the plugins folder)")
    _parser(actions, "schema", "print plugin.schema.json (the contract as a JSON schema)", _plugins_schema)


def _add_db(sub: Any) -> None:
    db = sub.add_parser("db", help="the IOTDB: create, upgrade, check, downgrade, partition",
                        description="the IOTDB: create, upgrade, check, downgrade, partition")
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name in ("init", "upgrade"):
        parser = _parser(actions, name, "create what is missing and apply pending migrations (idempotent): the "
                         "IOTDB schema, the buckets, the pool 'iotdb'", _db)
        _dry_run(parser, sql_alias=True)
    _parser(actions, "check", "the Facts index, partitions, pending migrations and what plugin tasks need "
            "(exit 1 when anything is missing)", _db)
    down = _parser(actions, "downgrade", "revert the last migration (one step; it may drop columns and their data)",
                   _db)
    _dry_run(down, sql_alias=True)
    _yes(down, "revert")
    part = _parser(actions, "partition", "convert Facts to daily partitions (one ALTER TABLE that locks writes: "
                   "read the plan it prints)", _db)
    _dry_run(part)
    _yes(part, "convert")
    part.add_argument("--ahead", type=int, default=DEFAULT_AHEAD,
                      help=f"future daily partitions (default {DEFAULT_AHEAD})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meccano", description="Meccano ServiceManager tools (also run as `python -m meccano`)",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_plugins(sub)
    _add_db(sub)
    cfg = sub.add_parser("config", help="the configuration in effect", description="the configuration in effect")
    show = _parser(cfg.add_subparsers(dest="action", required=True, metavar="ACTION"), "show",
                   "every setting by its YAML key and variable, its value (secrets masked) and its source; then "
                   "what plugin tasks still need (exit 1 when anything is missing)", _config_show)
    show.add_argument("-o", "--output", choices=FORMATS, default="table", help="output format (default: table)")
    pool = sub.add_parser("pool", help="the Airflow pool 'iotdb' (MYSQL_CONNECTIONLIMIT slots)",
                          description="the Airflow pool 'iotdb' (MYSQL_CONNECTIONLIMIT slots)")
    sync = _parser(pool.add_subparsers(dest="action", required=True, metavar="ACTION"), "sync",
                   "create or resize it (`airflow pools set`)", _pool)
    _dry_run(sync)
    add_migrate_parser(sub)
    add_install_dags_parser(sub)
    sub.add_parser("demo", help="run the embedded demo (`meccano demo --help`: its options)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        # lazy: meccano.cli.demo costs 13 ms at import (python -X importtime)
        from meccano.cli.demo import main as demo_main

        return demo_main(argv[1:])
    args = build_parser().parse_args(argv)
    from sqlalchemy.exc import DBAPIError  # lazy: sqlalchemy.exc costs 146 ms at import (python -X importtime)

    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MigrationError as exc:  # a refused or failed migration of `db init/upgrade`: what and the fix
        print(f"migration error: {exc}", file=sys.stderr)
        return 1
    except DBAPIError as exc:  # the IOTDB cannot be reached or refused: name it and the fix, no traceback
        print(_iotdb_unreachable(exc), file=sys.stderr)
        return 1


def _iotdb_unreachable(exc: BaseException) -> str:
    settings = load_settings()
    cause = getattr(exc, "orig", None) or exc
    reason = redact_text(f"{type(cause).__name__}: {cause}", known_secrets(settings))
    return (f"MISSING IOTDB connection: the IOTDB could not be used ({reason[:300]}). Fix: define the Airflow "
            f"connection {settings.iotdb.conn_id!r} (or mysql.host/port/user/password, MYSQL_HOST ...) so that it "
            "reaches the gateway's database, then re-run")
