"""``python -m meccano migrate check|apply PATH``: the command line of the switch-over (the CLI stays thin:
:mod:`meccano.cli.main` only adds this parser)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from meccano.cli.confirm import confirmed
from meccano.errors import SwitchOverError
from meccano.switchover.report import EXIT_ACTION, EXIT_NOT_ORIGINAL


def add_migrate_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = sub.add_parser("migrate", help="read an original ServiceManager installation and carry it over")
    actions = migrate.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", description="report what carries over, what is replaced and what needs "
                               "action", help="report what carries over, what is replaced and what needs action "
                                             "(exit 0 ready, 1 action needed, 2 not an original installation)")
    apply = actions.add_parser("apply", help="copy the plugins that pass and write config/config.yml (idempotent)",
                               description="copy the plugins that pass and write config/config.yml (idempotent); "
                                           "exit 1 when something is left for you or not confirmed")
    for parser in (check, apply):
        parser.add_argument("path", help="the original installation's folder (config/config.yml, plugins/)")
        parser.add_argument("--env-file", metavar="FILE",
                            help="a file exporting the original's variables (e.g. ~/.bash_profile); read, never run")
    check.add_argument("--format", choices=["text", "json"], default="text")
    apply.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    apply.add_argument("-y", "--yes", action="store_true",
                       help="replace a different config.yml (kept as config.yml.before-migrate) without asking "
                            "(\"Proceed? (y/n)\" on a terminal; needed without one)")
    apply.add_argument("--to", metavar="DIR",
                       help="the Meccano folder to fill (DIR/meccano_plugins/, DIR/config/config.yml; default: "
                            "MECCANO_PLUGINS_DIR and MECCANO_CONFIG, else this project's meccano_plugins/ and "
                            "config/config.yml)")
    migrate.set_defaults(func=migrate_command)


def migrate_command(args: argparse.Namespace) -> int:
    # lazy: meccano.switchover.check costs 145 ms at import (python -X importtime)
    from meccano.switchover.check import check_installation

    env_file = Path(args.env_file).expanduser() if args.env_file else None
    try:
        installation = check_installation(Path(args.path).expanduser(), env_file)
    except SwitchOverError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return EXIT_NOT_ORIGINAL
    if args.action == "check":
        report = installation.report
        if args.format == "json":
            print(json.dumps(report.as_json(), indent=2))
        else:
            print("\n".join(report.lines()))
        return report.exit_code
    # lazy: meccano.switchover.apply costs 138 ms at import (python -X importtime)
    from meccano.switchover.apply import Target, apply_installation, default_target

    target = Target.folder(Path(args.to).expanduser()) if args.to else default_target()
    if not args.dry_run and not args.yes:
        plan = apply_installation(installation, target, dry_run=True)
        if plan.overwrites:  # replacing the operator's config.yml: the plan first, then their word
            print("\n".join(plan.lines))
            if not confirmed(False, f"migrate apply (replaces {', '.join(plan.overwrites)})"):
                return EXIT_ACTION
    outcome = apply_installation(installation, target, dry_run=args.dry_run)
    print("\n".join(outcome.lines))
    return outcome.exit_code
