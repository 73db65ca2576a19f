"""Benchmark of decisions and orders: signal -> order on the wire, order round trip, reconciliation, shadow fills.

Run with ``make bench`` (or ``python -m tests.bench.bench_orders [--quick]``). Four figures:

1. Signal -> order request on the wire, in the real tree in live mode against the embedded
   emulator (an accelerated Wednesday market; every signal past a low threshold is an entry and
   every trade is closed after one bar, so orders keep coming): from the model's ``model.signal``
   journal row of a bar to the emulator's log entry of the ``POST .../orders`` that follows the
   execution role's ``exec.sending`` row of that bar (the emulator logs CLOCK_MONOTONIC, which is
   system-wide on Linux; it is put on the wall clock with an offset measured here).
2. The order round trip in the same run: ``exec.sending`` -> ``exec.filled`` (the execution role's
   own rows, journaled before the request and after the answer).
3. A full reconciliation of 50 open trades (``ctl reconcile`` -> the reconciler's
   ``recon.completed`` row), first with 50 trades the host has never seen (each adopted), then with
   the same 50 known.
4. Shadow fills per second: MARKET order + close pairs through the shadow book, in this process,
   with its file where the tests' run directories are, timed over 1,000 pairs at each book size up
   to 100,000 trades (``--quick``: 5,000), in wall time and per CPU second of this process (the
   book's own cost, whatever else the machine runs), next to what rewriting the JSON book of
   earlier versions whole (fsynced, as it was after every change) costs at the same size, measured
   in the same run.

Nothing here is a test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import statistics
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from actors.broker import MarketOrderRequest
from actors.broker.emulator import AdminClient
from actors.broker.shadow.book import ShadowBook
from actors.core.atomicfile import write_atomically
from actors.core.domain import Instrument, Price
from tests.conftest import FAST
from tests.fakebroker import InMemoryBroker
from tests.helpers import Host, ensure_test_model, poll_until, short_tmp_dir

START = "2024-03-06T14:00:00Z"  # a Wednesday afternoon on the emulator's clock
SPEED = 300.0  # an M15 close every 3 wall seconds
LIVE = [
    *FAST,
    'host.mode="live"',
    f"broker.emulator.start={json.dumps(START)}",
    f"broker.emulator.speed={SPEED}",
    "feed.bar_wait_s=2",
    "risk.min_probability=0.501",
    "risk.cooldown_after_loss_s=0",
    "risk.daily_loss_limit=1.0",
    "risk.drawdown_zones=[[0.9, 1.0]]",
    "execution.time_exit_bars=1",
]


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def _row(what: str, values: Sequence[float], unit: str = "ms") -> None:
    if not values:
        print(f"  {what:<58} no samples")
        return
    print(
        f"  {what:<58} p50 {statistics.median(values):8.2f} {unit}  p90 {_pct(values, 0.9):8.2f}  "
        f"p99 {_pct(values, 0.99):8.2f}  max {max(values):8.2f}  n={len(values)}"
    )


def _rows(run_dir: Path, kind: str) -> list[tuple[int, str | None, dict[str, object]]]:
    db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        got = db.execute("SELECT ts_ns, corr, body FROM journal WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    finally:
        db.close()
    return [(int(ts), corr, json.loads(body)) for ts, corr, body in got]


def _wall_offset_ns() -> int:
    """wall - monotonic, in ns (taken around a tight pair of reads)."""
    best = None
    for _ in range(5):
        a = time.monotonic_ns()
        w = time.time_ns()
        b = time.monotonic_ns()
        if best is None or b - a < best[0]:
            best = (b - a, w - (a + b) // 2)
    assert best is not None
    return best[1]


def orders_in_the_tree(seconds: float, *, stream_view: bool = True) -> None:
    """Figures 1 and 2; without ``stream_view`` the transaction stream is refused by the emulator
    (503 on every connect), so every send-time check reads the open trades (the path before issue 18,
    the baseline)."""
    run_dir = short_tmp_dir("thbo") / "run"
    host = Host(run_dir=run_dir, overrides=LIVE).start()
    try:
        host.wait_state("TRADING", timeout_s=60)
        admin = AdminClient(host.status()["broker"]["api_url"])
        if not stream_view:
            admin.fault("http_error", status=503, path="/transactions/stream", count=10**9)
            admin.fault("stream", action="end", stream="transactions")
        time.sleep(seconds)
        offset = _wall_offset_ns()
        log = admin.requests()
        signals = {corr: ts for ts, corr, _ in _rows(run_dir, "model.signal")}
        intents = {corr: ts for ts, corr, _ in _rows(run_dir, "risk.intent")}
        sending = _rows(run_dir, "exec.sending")
        filled = {b.get("intent_id"): ts for ts, _, b in _rows(run_dir, "exec.filled")}
    finally:
        if host.proc is not None and host.proc.poll() is None:
            host.ctl("shutdown")
            host.proc.wait(timeout=20)
        host.kill_tree()
    posts = sorted(
        round(entry["t"] * 1e9) + offset
        for entry in log
        if entry["method"] == "POST" and str(entry["path"]).endswith("/orders")
    )
    to_wire, decided, queued, sent, round_trip = [], [], [], [], []
    for ts, corr, body in sending:
        wire = next((p for p in posts if p >= ts), None)
        if corr in signals and corr in intents and wire is not None:
            to_wire.append((wire - signals[corr]) / 1e6)
            decided.append((intents[corr] - signals[corr]) / 1e6)
            queued.append((ts - intents[corr]) / 1e6)
            sent.append((wire - ts) / 1e6)
        if body.get("intent_id") in filled:
            round_trip.append((filled[body["intent_id"]] - ts) / 1e6)
    checks = {c: sum(1 for _, _, b in sending if b.get("position_check") == c) for c in ("stream", "broker")}
    how = "transaction stream view" if stream_view else "stream refused: open trades read (baseline)"
    print(f"live mode against the emulator at {SPEED:g}x for {seconds:g} s, {how}: {len(sending)} orders "
          f"(send-time check from the stream {checks['stream']}, from a REST read {checks['broker']})")  # fmt: skip
    _row("signal -> order request on the wire (model.signal -> POST)", to_wire)
    _row("  of which: signal -> decision (model.signal -> risk.intent)", decided)
    _row("            decision -> execution (risk.intent -> exec.sending)", queued)
    _row("            execution -> wire (exec.sending -> POST)", sent)
    _row("order round trip (exec.sending -> exec.filled)", round_trip)


def reconcile_50(reps: int) -> None:
    """Figure 3."""
    run_dir = short_tmp_dir("thbr") / "run"
    overrides = [
        *FAST,
        'host.mode="live"',
        f"broker.emulator.start={json.dumps(START)}",
        "reconciler.poll_interval_s=3600",
        "watchdog.account_max_age_s=7200",
        "risk.intent_expiry_s=7200",
    ]
    host = Host(run_dir=run_dir, overrides=overrides).start()
    try:
        host.wait_state("TRADING", timeout_s=60)
        admin = AdminClient(host.status()["broker"]["api_url"])
        for i in range(50):
            admin.fault("open_trade", instrument=("EUR_USD", "GBP_USD", "USD_JPY")[i % 3], units=1000 * (1 + i))
        times = []
        for _ in range(1 + reps):
            before = len(_rows(run_dir, "recon.completed"))
            t0 = time.time_ns()
            assert host.ctl("reconcile").returncode == 0
            done = poll_until(lambda: _rows(run_dir, "recon.completed")[before:], timeout_s=60)  # noqa: B023
            times.append((done[-1][0] - t0) / 1e6)
        open_trades = len(host.status()["positions"] or [])
    finally:
        if host.proc is not None and host.proc.poll() is None:
            host.ctl("shutdown")
            host.proc.wait(timeout=20)
        host.kill_tree()
    print(f"reconciliation of {open_trades} open trades (ctl reconcile -> recon.completed):")
    print(f"  first (every trade adopted, each journaled and alerted)      {times[0]:8.1f} ms")
    _row("again (the same trades known)", times[1:])


def shadow_fills(sizes: Sequence[int], block: int = 1000) -> None:
    """Figure 4: order + close pairs per second as the book grows, next to the JSON book's rewrite."""
    eur = Instrument(
        name="EUR_USD", type="CURRENCY", display_precision=5, pip_location=-4, trade_units_precision=0,
        minimum_trade_size=Decimal(1), maximum_order_units=Decimal(100_000_000), margin_rate=Decimal("0.0333"),
    )  # fmt: skip
    work = short_tmp_dir("thshadow")
    try:
        book = ShadowBook(InMemoryBroker(instruments=(eur,), balance=Decimal(100_000)), work / "shadow-book.db")
        book.on_price(
            Price(instrument="EUR_USD", ts=1, bid=Decimal("1.08500"), ask=Decimal("1.08510"),
                  closeout_bid=Decimal("1.08500"), closeout_ask=Decimal("1.08510"), tradeable=True)
        )  # fmt: skip
        n = 0
        print(f"shadow book (its file in {work.parent}; a pair = MARKET order with SL/TP + its close = 2 changes):")
        for size in sizes:
            while n < size - block:  # grow the book to the checkpoint, then time the next block
                n = _pairs(book, n, min(block, size - block - n))
            t0, c0 = time.perf_counter(), time.process_time()
            n = _pairs(book, n, block)
            rate, cpu_rate = block / (time.perf_counter() - t0), block / (time.process_time() - c0)
            # The JSON book of earlier versions: the whole file rewritten (fsynced) after each change.
            t0 = time.perf_counter()
            for _ in range(3):
                write_atomically(work / "shadow-book.json", book._book.encode())
            json_ms = (time.perf_counter() - t0) / 3 * 1000
            json_kb = (work / "shadow-book.json").stat().st_size / 1024
            print(
                f"  {n:>7,} trades: {rate:7,.0f} pairs/s ({cpu_rate:7,.0f} per CPU second)   baseline, the JSON "
                f"book rewritten whole: {json_ms:7.1f} ms a change at {json_kb:8,.0f} KB (at most "
                f"{1000 / (2 * json_ms):6,.1f} pairs/s)"
            )
        db_kb = (work / "shadow-book.db").stat().st_size / 1024
        book.close()
        print(f"  book file {db_kb:,.0f} KB after {n:,} pairs (target >= 2,000 pairs/s, flat up to 100k trades)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pairs(book: ShadowBook, n: int, count: int) -> int:
    for i in range(n, n + count):
        cid = f"bench.EUR_USD.{i}.L"
        request = MarketOrderRequest(
            instrument="EUR_USD", units=Decimal(1000), client_id=cid, trade_client_id=cid,
            stop_loss=Decimal("1.08000"), take_profit=Decimal("1.09000"),
        )  # fmt: skip
        result = book.submit_market_order(request)
        book.close_trade(str(result.trade_id))
    return n + count


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke run)")
    args = parser.parse_args(argv)
    ensure_test_model()
    orders_in_the_tree(20.0 if args.quick else 90.0, stream_view=False)
    orders_in_the_tree(20.0 if args.quick else 90.0)
    reconcile_50(2 if args.quick else 10)
    shadow_fills([1_000, 5_000] if args.quick else [1_000, 10_000, 50_000, 100_000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
