"""The commands of the live host: ``run`` (the tree in the foreground), ``ctl`` (one command to a
running host), ``alert`` (one mail when the host itself is dead) and ``keys`` (CURVE key pairs
for ctl over tcp).

``ctl`` is called by scripts and people alike, so this module imports only what the ctl path
needs; ``run`` and ``alert`` import the heavy parts when they are chosen.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from actors.core.errors import ConfigError
from supervisor.cli.options import CTL_HELP, conf_path, config_error
from supervisor.config import load_core_config
from supervisor.ctl.client import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CtlClient

if TYPE_CHECKING:
    import argparse


ALERT_BODY_MAX = 1_000_000  # tradehost alert --body-file: characters


def cmd_run(args: argparse.Namespace, *, early_signals: list[str]) -> int:
    """``tradehost run`` (``early_signals``: the shutdown signals seen before it began)."""
    from supervisor.config import load_config

    try:
        cfg = load_config(conf_path(args), args.overrides)
    except ConfigError as e:
        return config_error(e)
    from supervisor.host import HostLockedError, run_host

    try:
        code = run_host(cfg, early_signals=early_signals)
    except HostLockedError as e:
        print(f"tradehost: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except ConfigError as e:
        return config_error(e)
    # The root of a tree ends here, whatever threads a library left behind.
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_ctl(args: argparse.Namespace) -> int:
    """``tradehost ctl``."""
    from supervisor.ctl.commands import COMMANDS

    command = COMMANDS.get(args.ctl_command)
    if command is None:
        print(f"tradehost ctl: unknown command {args.ctl_command!r}\n\n{CTL_HELP}", file=sys.stderr)
        return EXIT_USAGE
    argv = list(args.ctl_args)
    as_json = False
    if command.name == "status" and "--json" in argv:
        argv.remove("--json")
        as_json = True
    try:
        ctl_args: dict[str, Any] = command.parse(argv)
    except SystemExit as e:  # argparse already printed the usage
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    try:
        cfg = load_core_config(conf_path(args), args.overrides)
        client = CtlClient.from_config(cfg.ctl)  # a tcp endpoint: CURVE keys read here
    except ConfigError as e:
        return config_error(e)
    reply = client.call(command.name, ctl_args)
    if not reply.ok:
        print(f"tradehost ctl {command.name}: {reply.reason}", file=sys.stderr)
        return reply.exit_code
    result = reply.result or {}
    if as_json:
        sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    else:
        print(command.render(result))
    return EXIT_OK


def cmd_alert(args: argparse.Namespace) -> int:
    """``tradehost alert``."""
    from actors.alerting.config import AlertsConfig, load_smtp_password
    from actors.alerting.smtp import send_alert_now
    from supervisor.config import load_section

    try:
        config = load_section(conf_path(args), args.overrides, "alerts", AlertsConfig)
        if config.enabled:
            load_smtp_password(config, os.environ)  # a missing password is configuration: exit 2
    except ConfigError as e:
        return config_error(e)
    body = ""
    try:
        if args.body_file == "-":
            body = sys.stdin.read(ALERT_BODY_MAX + 1)
        elif args.body_file:
            with open(args.body_file, encoding="utf-8", errors="replace") as f:  # noqa: PTH123
                body = f.read(ALERT_BODY_MAX + 1)
    except OSError as e:
        print(f"tradehost alert: --body-file: {e.strerror}: {args.body_file}", file=sys.stderr)
        return EXIT_USAGE
    if len(body) > ALERT_BODY_MAX:
        print(f"tradehost alert: --body-file: longer than {ALERT_BODY_MAX} characters", file=sys.stderr)
        return EXIT_USAGE
    result = send_alert_now(config, subject=args.subject, body=body, environ=os.environ)
    print(f"tradehost alert: {result.message}", file=sys.stderr if not result.ok else sys.stdout)
    return EXIT_OK if result.ok else EXIT_REFUSED


def cmd_keys(args: argparse.Namespace) -> int:
    """``tradehost keys new NAME``: a CURVE key pair for ctl over tcp, both files 0600."""
    import re

    from actors.runtime import transport

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", args.name):
        print(f"tradehost keys: {args.name!r} is not a key name (letters, digits, '.', '_', '-')", file=sys.stderr)
        return EXIT_USAGE
    if not os.path.isdir(args.dir):  # noqa: PTH112
        print(f"tradehost keys: --dir {args.dir}: not a directory", file=sys.stderr)
        return EXIT_USAGE
    if not transport.has_curve():
        print("tradehost keys: this libzmq has no CURVE (built without libsodium)", file=sys.stderr)
        return EXIT_REFUSED
    try:
        public, secret = transport.new_curve_key_pair(args.dir, args.name)
    except FileExistsError as e:
        print(f"tradehost keys: {e}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"public key (give it to the other side): {public}")
    print(f"key pair (keep it here, 0600): {secret}")
    return EXIT_OK
