"""``python -m meccano``: plugin checks for authors, IOTDB set-up for operators.

    python -m meccano plugins list [--json]
    python -m meccano plugins validate [PATH ...]
    python -m meccano plugins schema            (plugin.schema.json, generated from the model)
    python -m meccano db init | db upgrade | db check | db downgrade
    python -m meccano db partition [--dry-run] [--yes] [--ahead N]   (daily partitions of Facts)
    python -m meccano config show
    python -m meccano install-dags [--dags-folder DIR] [--plugins-folder DIR] [--dry-run] [--yes]
    python -m meccano migrate check|apply PATH [--env-file FILE]   (switching over from the original)
    python -m meccano demo [--port 8080] [--fresh]   (the embedded demo; README)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from meccano.cli.install_dags import add_install_dags_parser
from meccano.contract.manifest import invalid_dag_id, json_schema, load_plugin
from meccano.errors import ConfigError, MigrationError
from meccano.iotdb.partition_ops import DEFAULT_AHEAD
from meccano.plugins.discovery import SKIP_RULE, discover, scan
from meccano.settings.config import Settings, load_settings
from meccano.settings.plugins_folder import folder_message, plugins_dir
from meccano.switchover.command import add_migrate_parser


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
                     "engine": m.engine, "type": m.type, "schedule": m.schedule, "errors": [],
                     "warnings": list(load.warnings)})
    for item in catalog.shadowed:
        rows.append({"plugin": item.load.folder.name, "dag_id": None, "status": f"shadowed by {item.by}",
                     "errors": [], "warnings": list(item.load.warnings)})
    for load in catalog.invalid:
        rows.append({"plugin": load.folder.name, "dag_id": invalid_dag_id(load.folder), "status": "invalid",
                     "errors": [str(p) for p in load.problems], "warnings": list(load.warnings)})
    skipped = [{"plugin": s.name, "dag_id": None, "status": "skipped", "errors": [], "warnings": [s.reason]}
               for s in catalog.skipped]
    if args.json:
        print(json.dumps([*rows, *skipped], indent=2))
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
            print(f"    warning: {_printable(warning)}")
    print(f"{len(folders) - bad} valid, {bad} invalid" + (f", {skipped} skipped ({SKIP_RULE})" if skipped else ""))
    return 1 if bad else 0


def _plugins_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def _db(args: argparse.Namespace) -> int:
    from meccano.iotdb.db import Iotdb
    from meccano.iotdb.partition_ops import check_lines, partition_command
    from meccano.iotdb.schema import creation_date_index_warning, ensure_schema
    from meccano.iotdb.schema_migrations import migration_command

    settings = load_settings()
    db = Iotdb.from_settings(settings)
    try:
        if args.action == "partition":
            return partition_command(db, settings, args.yes, args.dry_run, args.ahead)
        if args.action == "downgrade":
            return migration_command(db, "downgrade")
        if args.action == "check":
            warning = creation_date_index_warning(db)
            print(warning or f"{db!r}: Facts has its creationDate index")
            lines, problem = check_lines(db, settings)
            print("\n".join(lines))
            pending = migration_command(db, "check")
            missing = _report_missing(settings)
            return 1 if warning or problem or pending or missing else 0
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


def _create_prerequisites(settings: Settings) -> int:
    import subprocess

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
    from meccano.iotdb.schema_migrations import iotdb_missing
    from meccano.scripts.isolation import isolation_missing, isolation_notice
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
    print(repr(settings))  # secrets print as Secret('***'), URL credentials as user:***@
    print(f"time zone: {settings.timezone} (plugin schedules run in it)")
    print(f"IOTDB pool: 'iotdb' with {settings.mysql.connection_limit} slots (mysql.connectionLimit)")
    for item in settings.ignored:
        print(f"ignored: {item}")
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 1 if _report_missing(settings, with_iotdb=True) else 0


def _pool(args: argparse.Namespace) -> int:
    from meccano.settings.pool import IOTDB_POOL, sync_pool

    settings = load_settings()
    sync_pool(settings)
    print(f"pool {IOTDB_POOL!r}: {settings.mysql.connection_limit} slots (mysql.connectionLimit)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m meccano", description="Meccano ServiceManager tools")
    sub = parser.add_subparsers(dest="command", required=True)
    plugins = sub.add_parser("plugins", help="list or validate plugins").add_subparsers(dest="action", required=True)
    p_list = plugins.add_parser("list", help="every plugin with its status and errors")
    p_list.add_argument("--dir", help="plugins folder (default: $MECCANO_PLUGINS_DIR, else the checkout's "
                                               "meccano_plugins/ or $AIRFLOW_HOME/meccano_plugins)")
    p_list.add_argument("--json", action="store_true")
    p_list.set_defaults(func=_plugins_list)
    p_val = plugins.add_parser("validate", help="validate plugin folders; exit 1 if any is invalid")
    p_val.add_argument("paths", nargs="*", help="plugin folders or folders of plugins")
    p_val.set_defaults(func=_plugins_validate)
    p_schema = plugins.add_parser("schema", help="print plugin.schema.json (the contract as a JSON schema)")
    p_schema.set_defaults(func=_plugins_schema)
    db = sub.add_parser("db", help="IOTDB schema")
    db.add_argument("action", choices=["init", "upgrade", "check", "downgrade", "partition"],
                    help="init/upgrade: create what is missing (idempotent) and apply pending migrations: the "
                         "schema, the buckets, the pool 'iotdb'; check: the Facts index, partitions, pending "
                         "migrations and what plugin tasks need (exit 1 when anything is missing); downgrade: "
                         "revert the last migration (one step); partition: plan (and with --yes run) daily "
                         "partitions of Facts")
    db.add_argument("--yes", action="store_true", help="partition: convert now (it locks writes; read the plan)")
    db.add_argument("--dry-run", action="store_true", help="partition: print the SQL, change nothing")
    db.add_argument("--ahead", type=int, default=DEFAULT_AHEAD,
                    help=f"partition: future daily partitions (default {DEFAULT_AHEAD})")
    db.set_defaults(func=_db)
    cfg = sub.add_parser("config", help="configuration")
    cfg.add_argument("action", choices=["show"])
    cfg.set_defaults(func=_config_show)
    pool = sub.add_parser("pool", help="the Airflow pool 'iotdb' (MYSQL_CONNECTIONLIMIT slots)")
    pool.add_argument("action", choices=["sync"], help="create or resize it with `airflow pools set`")
    pool.set_defaults(func=_pool)
    add_migrate_parser(sub)
    add_install_dags_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        from meccano.cli.demo import main as demo_main

        return demo_main(argv[1:])
    args = build_parser().parse_args(argv)
    from sqlalchemy.exc import DBAPIError

    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except MigrationError as exc:  # a refused or failed migration of `db init/upgrade`: what and the fix
        print(f"migration error: {exc}", file=sys.stderr)
        return 1
    except DBAPIError as exc:  # the IOTDB cannot be reached or refused: name it and the fix, no traceback
        print(_iotdb_unreachable(exc), file=sys.stderr)
        return 1


def _iotdb_unreachable(exc: BaseException) -> str:
    from meccano.secrets.redaction import redact_text
    from meccano.settings.secrets import known_secrets

    settings = load_settings()
    cause = getattr(exc, "orig", None) or exc
    reason = redact_text(f"{type(cause).__name__}: {cause}", known_secrets(settings))
    return (f"MISSING IOTDB connection: the IOTDB could not be used ({reason[:300]}). Fix: define the Airflow "
            f"connection {settings.iotdb.conn_id!r} (or mysql.host/port/user/password, MYSQL_HOST ...) so that it "
            "reaches the gateway's database, then re-run")
