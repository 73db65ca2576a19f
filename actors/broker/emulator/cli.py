"""Command line of the emulator (``tradehost emulator ...`` / ``python -m actors.broker.emulator``).

Parses the options, starts the server, prints the port (and writes it to ``--port-file``), and
runs until SIGINT or SIGTERM. Exit codes: 0 after a clean stop, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from actors.broker.config import DEV_ACCOUNT_ID, DEV_TOKEN, ENV_ACCOUNT_ID, ENV_TOKEN
from actors.broker.emulator.app import EmulatorOptions
from actors.broker.emulator.instruments import SPECS
from actors.broker.emulator.server import serve

__all__ = ["build_parser", "main", "options_from_args"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (every option documented for ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="tradehost emulator",
        description="An OANDA v20-compatible REST + streaming emulator for tradehost, on loopback. "
        "Point oandapyV20 at http://HOST:PORT; the admin API is under /admin on the same port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free port and prints it")
    parser.add_argument(
        "--token",
        default=os.environ.get(ENV_TOKEN) or DEV_TOKEN,
        help=f"bearer token clients must send (default ${ENV_TOKEN} or the dev token {DEV_TOKEN!r})",
    )
    parser.add_argument(
        "--account",
        default=os.environ.get(ENV_ACCOUNT_ID) or DEV_ACCOUNT_ID,
        help=f"the account id the token covers (default ${ENV_ACCOUNT_ID} or {DEV_ACCOUNT_ID})",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic market (default 1)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="market seconds per wall second (default 1 = real time)"
    )
    parser.add_argument(
        "--instruments",
        default="EUR_USD,GBP_USD,USD_JPY",
        help=f"comma-separated tradeable instruments; known: {','.join(sorted(SPECS))}",
    )
    parser.add_argument(
        "--data",
        nargs="*",
        default=[],
        metavar="CANDLE_FILE",
        help="candle CSV files to replay (time,open,high,low,close[,volume]); name each "
        "INSTRUMENT=PATH or start the file name with the instrument",
    )
    parser.add_argument("--start", default="", help="market start time, RFC3339 or epoch seconds (default: now)")
    parser.add_argument("--balance", default="100000", help="opening balance in USD (default 100000)")
    parser.add_argument(
        "--heartbeat", type=float, default=5.0, help="wall seconds between stream heartbeats (default 5)"
    )
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file")
    return parser


def options_from_args(args: argparse.Namespace) -> EmulatorOptions:
    """Turn parsed arguments into ``EmulatorOptions`` (ValueError on bad values)."""
    return EmulatorOptions(
        host=args.host,
        port=args.port,
        token=args.token,
        account_id=args.account,
        seed=args.seed,
        speed=args.speed,
        instruments=tuple(n.strip() for n in args.instruments.split(",") if n.strip()),
        data=tuple(args.data),
        start=args.start,
        balance=args.balance,
        heartbeat_s=args.heartbeat,
    )


def main(argv: list[str]) -> int:
    """Run the emulator until SIGINT/SIGTERM.

    Args:
        argv: the arguments after the command name.

    Returns:
        0 after a clean stop, 2 for invalid options.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as e:
        print(f"tradehost emulator: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def ready(port: int) -> None:
        if args.port_file is not None:
            tmp = args.port_file.with_suffix(".tmp")
            tmp.write_text(f"{port}\n")
            tmp.replace(args.port_file)
        print(port, flush=True)

    try:
        serve(options, ready=ready, stop=stop)
    except (OSError, ValueError) as e:
        print(f"tradehost emulator: {e}", file=sys.stderr)
        return 2
    return 0
