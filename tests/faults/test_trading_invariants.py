"""The fault matrix of issue 14: the real tree in live mode on the emulator, one fault per test.

Each test starts its own host (nothing shared that a fault could leave behind), injects one fault
through the emulator's admin API or a signal, checks the outcome the issue asks for (NO_TRADE with
the right reason, back to TRADING by itself after a transient fault and only after ``ctl resume``
after a latched one), then ends the run's trading (``ctl pause``, every order's outcome in) and
asserts the invariants of ``tests/faults/invariants.py`` over the whole run, judged from the
broker's own records: no order POST while not TRADING, no client id POSTed twice, no trade
without SL and TP past ``reconciler.repair_deadline_s`` + one poll, an outcome row for every
``exec.sending``. Each test prints its row of the README's table (fault, outcome, time to
NO_TRADE, time back to TRADING), and the module prints the whole table at its end.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import pytest

from actors.broker.config import DEV_ACCOUNT_ID, DEV_TOKEN, BrokerConfig, Credentials
from actors.broker.emulator import AdminClient, EmulatorOptions, running_emulator
from actors.broker.oanda.client import OandaBroker
from actors.core.timefmt import format_rfc3339, parse_time
from tests.conftest import FAST
from tests.faults.invariants import (
    BrokerRecord,
    Limits,
    Timing,
    back_by_itself,
    back_only_after_resume,
    check_run,
    fault_timing,
    limits_of,
    record_broker,
    settle,
    wait_no_trade,
)
from tests.helpers import REPO, Host, JournalRow, poll_until, run_cli, running_host, session_table, short_tmp_dir

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]

WEEKDAY = "2024-03-06T14:00:00Z"
# As tests/integration/test_orders.py LIVE: an accelerated weekday market (an M15 bar every 3 s),
# a gate that lets nearly every signal through, live orders; plus short resolve and poll times.
MATRIX = [
    *FAST,
    'host.mode="live"',
    f'broker.emulator.start="{WEEKDAY}"',
    "broker.emulator.speed=300",
    "feed.bar_wait_s=2",
    "risk.min_probability=0.5001",
    "risk.cooldown_after_loss_s=0",
    "execution.time_exit_bars=0",
    "execution.resolve_timeout_s=5",
    "reconciler.poll_interval_s=1",
    "reconciler.repair_deadline_s=5",  # a short deadline keeps the refused-repair test quick
]
# A stalled order answer lasts this long: the order is in the air while a process is killed, and
# the client's 10 s timeout (broker.timeout_s) is not reached first.
IN_THE_AIR_S = 6.0
SECOND_HOST_TAG = "tradehost-0123456789ab"
CENTS = Decimal("0.02")  # 2 % of the price: far beyond any stop the gate sets, far below a 5 % spike
SETTLE_S = 90.0  # every order's outcome in, after the pause (resolve_timeout_s plus lots of load)
NS = 1_000_000_000


# --- the table ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the README's fault table."""

    fault: str
    outcome: str
    timing: Timing
    order: tuple[int, ...] = ()

    def line(self) -> str:
        """The Markdown line."""
        to, back = self.timing.cells()
        return f"| {self.fault} | {self.outcome} | {to} | {back} |"


TABLE: list[Row] = []
TABLE_FILE = REPO / ".cache" / "fault-matrix.md"  # the last run's table, for the README
TABLE_HEADER = [
    "| fault | outcome | time to NO_TRADE | time back to TRADING |",
    "|---|---|---|---|",
]
_CURRENT: list[tuple[int, ...]] = [(0,)]  # the running test's place in this module (see _row_order)


@pytest.fixture(autouse=True)
def _row_order(request: pytest.FixtureRequest) -> None:
    """Where the running test's row goes in the table: the order of the tests in this file
    (workers run them in any order), a parametrized test's rows in the order of its values."""
    callspec = getattr(request.node, "callspec", None)
    indices = tuple(callspec.indices.values()) if callspec is not None else ()
    _CURRENT[0] = (request.node.function.__code__.co_firstlineno, *indices)


@pytest.fixture(scope="module", autouse=True)
def _print_table(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hands the rows of the tests just run to the session (a worker may set this module up more
    than once); tests/conftest.py writes the table to TABLE_FILE and prints it once every worker
    is done."""
    yield
    if TABLE:
        rows = [(row.order, row.line()) for row in TABLE]
        session_table(request.config, TABLE_FILE, "fault matrix (issue 14)", TABLE_HEADER, rows)
        TABLE.clear()


def _table_row(fault: str, outcome: str, rows: list[JournalRow], fault_ns: int) -> None:
    row = Row(fault, outcome, fault_timing(rows, fault_ns), _CURRENT[0])
    TABLE.append(row)
    print(row.line())


# --- small helpers ------------------------------------------------------------------------------


def _admin(host: Host) -> AdminClient:
    return AdminClient(host.status()["broker"]["api_url"])


def _broker(url: str) -> OandaBroker:
    return OandaBroker(
        BrokerConfig(kind="emulator", api_url=url), Credentials(token=DEV_TOKEN, account_id=DEV_ACCOUNT_ID)
    )


def _order_posts(admin: AdminClient, after_ns: int) -> list[dict[str, Any]]:
    return [r for r in admin.requests() if r["method"] == "POST" and r.get("order_type") and r["ts_ns"] > after_ns]


def _next_order_post(admin: AdminClient, after_ns: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """The first order POST the emulator received after ``after_ns``."""
    posts: list[dict[str, Any]] = poll_until(
        lambda: _order_posts(admin, after_ns), timeout_s=timeout_s, what="an order"
    )
    return posts[0]


def _bodies(host: Host, *kinds: str) -> list[dict[str, Any]]:
    return [r.body for r in host.journal_rows() if r.kind in kinds]


def _outcome_of(host: Host, intent_id: str, timeout_s: float = 90.0) -> list[JournalRow]:
    """The outcome rows of one intent (filled, resolved, ...), once there is one."""
    kinds = ("exec.filled", "exec.resolved", "exec.cancelled", "exec.rejected")
    found: list[JournalRow] = poll_until(
        lambda: [r for r in host.journal_rows() if r.kind in kinds and r.body.get("intent_id") == intent_id],
        timeout_s=timeout_s,
        what=f"the outcome of {intent_id}",
    )
    return found


def _left_trading(host: Host, since_ns: int, code_prefix: str, timeout_s: float = 30.0) -> JournalRow:
    """The ``state.changed`` row that took the system to NO_TRADE with a ``code_prefix`` reason
    after ``since_ns`` (from the journal: a short NO_TRADE may be over before a status poll)."""

    def find() -> JournalRow:
        changes = [r for r in host.journal_rows("state.changed") if r.ts_ns >= since_ns]
        for r in changes:
            if r.body["to"] == "NO_TRADE" and any(c.startswith(code_prefix) for c in r.body["reasons"]):
                return r
        seen = [(r.body["to"], r.body["reasons"]) for r in changes]
        raise AssertionError(f"state changes since the fault: {seen or 'none'}")  # the last value seen

    row: JournalRow = poll_until(find, timeout_s=timeout_s, what=f"NO_TRADE with a {code_prefix} reason")
    return row


def _one_trade_for(admin: AdminClient, client_id: str) -> None:
    trades = [t for t in admin.state()["trades"] if t["client_id"] == client_id]
    assert len(trades) == 1, trades


def _finish(
    host: Host,
    admin: AdminClient,
    limits: Limits,
    *,
    earlier: tuple[BrokerRecord, ...] = (),
    outages: tuple[int, ...] = (),
) -> list[JournalRow]:
    """End the run's trading and assert the invariants over all of it; returns the journal."""
    rows = settle(host, SETTLE_S)
    check_run(rows, [*earlier, record_broker(admin)], limits, outages=outages)
    return rows


@contextlib.contextmanager
def _external_emulator(**options: Any) -> Iterator[tuple[str, AdminClient, list[str], dict[str, str]]]:
    """An emulator outside the host (in this process), so the broker outlives the host: yields its
    URL, admin client, and the overrides and environment that point a host at it."""
    opts = EmulatorOptions(start=WEEKDAY, speed=300.0, heartbeat_s=2.0, **options)
    with running_emulator(opts) as (url, admin):
        # Its prices run at 300x from 2024: not on the wall clock (the watchdog knows that of an
        # embedded emulator only).
        overrides = [*MATRIX, 'broker.kind="oanda"', f'broker.api_url="{url}"', "watchdog.max_clock_skew_s=0"]
        env = {"OANDA_TOKEN": DEV_TOKEN, "OANDA_ACCOUNT_ID": DEV_ACCOUNT_ID}
        yield url, admin, overrides, env


def _descendants(host: Host) -> list[psutil.Process]:
    return [p for p in host.children() if p.is_running()]


# --- kill -9 of each trading role, mid-order ----------------------------------------------------


@pytest.mark.parametrize("role", ["execution", "risk", "reconciler", "feed", "model"])
def test_kill_9_of_a_trading_role_mid_order_leaves_one_trade_and_trading_comes_back_by_itself(role: str) -> None:
    with running_host(MATRIX) as host:
        admin, limits = _admin(host), limits_of(host)
        armed_ns = time.time_ns()
        admin.fault("order_no_answer", mode="stall", seconds=IN_THE_AIR_S)
        in_air = _next_order_post(admin, armed_ns)
        pid = host.status()["actors"][role]["pid"]
        fault_ns = time.time_ns()
        os.kill(pid, signal.SIGKILL)  # the order is at the broker, its answer not yet back

        assert fault_ns - in_air["ts_ns"] < IN_THE_AIR_S * NS  # killed before its answer could come

        _left_trading(host, fault_ns, f"role_down:{role}")
        back_by_itself(host, fault_ns, timeout_s=60)
        (outcome,) = _outcome_of(host, in_air["client_id"])
        if role == "execution":  # the desk died with it: the restarted one finds it by its client id
            assert (outcome.kind, outcome.body["outcome"]) == ("exec.resolved", "filled")
        else:  # the desk lived: the answer was lost after the stall, the fill found by client id
            assert outcome.kind == "exec.filled" and outcome.ts_ns >= in_air["ts_ns"] + IN_THE_AIR_S * NS
        _one_trade_for(admin, in_air["client_id"])
        rows = _finish(host, admin, limits)
    _table_row(f"kill -9 {role}, an order in the air", f"NO_TRADE role_down:{role}, one trade", rows, fault_ns)


def test_kill_9_of_the_root_mid_order_then_a_restart_resolves_the_order_and_trades_again() -> None:
    with _external_emulator() as (_url, admin, overrides, env):
        with running_host(overrides, env=env) as first:
            limits = limits_of(first)
            armed_ns = time.time_ns()
            admin.fault("order_no_answer", mode="stall", seconds=IN_THE_AIR_S)
            in_air = _next_order_post(admin, armed_ns)
            tree = _descendants(first)
            assert first.proc is not None
            fault_ns = time.time_ns()
            os.kill(first.proc.pid, signal.SIGKILL)
            first.proc.wait(timeout=10)  # reaped at once, as systemd (its parent) does
            # Every child notices the root's death and exits (parent death, bus loss).
            poll_until(lambda: not [p for p in tree if p.is_running() and p.status() != "zombie"], timeout_s=30)
        with running_host(overrides, env=env, run_dir=first.run_dir) as second:  # systemd's restart
            resolved = poll_until(
                lambda: [b for b in _bodies(second, "exec.resolved") if b["intent_id"] == in_air["client_id"]],
                timeout_s=60,
            )
            assert resolved[0]["outcome"] == "filled"
            _one_trade_for(admin, in_air["client_id"])
            rows = _finish(second, admin, limits, outages=(fault_ns,))
    _table_row("kill -9 root, an order in the air; restart", "permit expires; restart resolves it, one trade",
               rows, fault_ns)  # fmt: skip


# --- broker faults ------------------------------------------------------------------------------


def test_a_lost_order_answer_becomes_exactly_one_trade_without_a_second_post() -> None:
    with running_host(MATRIX) as host:
        admin, limits = _admin(host), limits_of(host)
        fault_ns = time.time_ns()
        admin.fault("order_no_answer", mode="drop")
        lost = _next_order_post(admin, fault_ns)
        (outcome,) = _outcome_of(host, lost["client_id"])
        assert [b for b in _bodies(host, "exec.ambiguous") if b["intent_id"] == lost["client_id"]]
        assert outcome.kind == "exec.filled" and outcome.body["trade_id"]
        _one_trade_for(admin, lost["client_id"])
        rows = _finish(host, admin, limits)
    _table_row("lost order answer", "resolved by client id, one trade", rows, fault_ns)


def test_a_5xx_burst_stops_trading_and_trading_comes_back_by_itself() -> None:
    with running_host(MATRIX) as host:
        admin, limits = _admin(host), limits_of(host)
        poll_until(lambda: _bodies(host, "exec.filled"), timeout_s=90)
        fault_ns = time.time_ns()
        admin.fault("http_error", status=503, count=30, method="GET")  # every read fails for a while

        _left_trading(host, fault_ns, "broker_unreachable:rest")
        back_by_itself(host, fault_ns, timeout_s=60)
        rows = _finish(host, admin, limits)
    _table_row("5xx burst (30 reads answered 503)", "NO_TRADE broker_unreachable:rest", rows, fault_ns)


def test_an_order_whose_answer_and_look_ups_fail_latches_no_trade_until_resume() -> None:
    with running_host(MATRIX) as host:
        admin, limits = _admin(host), limits_of(host)
        fault_ns = time.time_ns()
        # The order is carried out but answered 503; every look-up by its client id fails too.
        admin.fault("http_error", status=503, count=1, method="POST", path="/orders", after=True)
        admin.fault("http_error", status=503, count=100000, method="GET", path="/orders/@")
        post = _next_order_post(admin, fault_ns)
        instrument = post["instrument"]
        poll_until(
            lambda: [
                b for b in _bodies(host, "exec.ambiguous") if b["intent_id"] == post["client_id"] and b.get("final")
            ],
            timeout_s=90,
            what="the order given up as unresolved",
        )

        wait_no_trade(host, f"order_unresolved:{instrument}", timeout_s=30)
        admin.clear_faults()
        back_only_after_resume(host, "order_unresolved", hold_s=4.0, timeout_s=60)
        rows = _finish(host, admin, limits)
    _table_row("5xx on an order and its look-ups", "NO_TRADE order_unresolved:<I> (latched)", rows, fault_ns)


def test_a_trade_whose_repair_is_refused_stops_trading_and_is_closed_by_the_deadline() -> None:
    with running_host(MATRIX) as host:
        admin, limits = _admin(host), limits_of(host)
        filled = poll_until(lambda: _bodies(host, "exec.filled"), timeout_s=90)
        trade_id = filled[0]["trade_id"]
        admin.fault("http_error", status=503, count=100000, method="PUT", path=f"/trades/{trade_id}/orders")
        with _broker(admin.base_url) as broker:
            trade = broker.trade(trade_id)
            fault_ns = time.time_ns()
            for order_id in (trade.stop_loss_order_id, trade.take_profit_order_id):
                assert order_id is not None
                broker.cancel_order(order_id)  # removed at the broker: the trade is naked

        wait_no_trade(host, f"unprotected:{trade_id}", timeout_s=30)
        poll_until(
            lambda: trade_id not in {t["id"] for t in admin.state()["trades"] if t["state"] == "OPEN"},
            timeout_s=limits.naked_limit_s + 30,
            what=f"trade {trade_id} closed after the repair deadline",
        )
        back_by_itself(host, fault_ns, timeout_s=60)
        rows = _finish(host, admin, limits)
    _table_row("refused repair (SL/TP removed, PUT 503)", "NO_TRADE unprotected:<id>; closed at the deadline",
               rows, fault_ns)  # fmt: skip


def test_a_stalled_price_stream_stops_trading_and_trading_comes_back_by_itself() -> None:
    with running_host([*MATRIX, "feed.stale_after_s=2", "broker.stream_timeout_s=30"]) as host:
        admin, limits = _admin(host), limits_of(host)
        poll_until(lambda: _bodies(host, "exec.filled"), timeout_s=90)
        fault_ns = time.time_ns()
        admin.fault("stream", action="stall", stream="pricing", seconds=10)

        _left_trading(host, fault_ns, "broker_unreachable:stream")
        back_by_itself(host, fault_ns, timeout_s=90)
        rows = _finish(host, admin, limits)
    _table_row("price stream stall (10 s)", "NO_TRADE broker_unreachable:stream", rows, fault_ns)


def test_spiked_prices_are_rejected_and_never_reach_an_order() -> None:
    with running_host(MATRIX) as host:
        admin, limits = _admin(host), limits_of(host)
        poll_until(lambda: _bodies(host, "exec.filled"), timeout_s=90)
        fault_ns = time.time_ns()
        # Only 5 % spikes for EUR_USD during five bars: any decision then sees a spiked quote.
        admin.fault("bad_tick", instrument="EUR_USD", kind="spike", seconds=15)
        poll_until(lambda: time.time_ns() - fault_ns > 18 * 10**9 and _bodies(host, "md.bar"), timeout_s=60)
        rows = _finish(host, admin, limits)
        history = admin.transactions()

    # Assert: the broker never got an order with stops set around a spiked price.
    created = {tx["id"]: tx for tx in history if tx["type"] == "MARKET_ORDER" and tx.get("clientExtensions")}
    cancels = [tx for tx in history if tx["type"] == "ORDER_CANCEL" and tx["orderID"] in created]
    spiked = [(c["clientOrderID"], c["reason"]) for c in cancels if c["reason"].endswith("_ON_FILL_LOSS")]
    assert spiked == [], f"orders with stops around a spiked price (cancelled by the broker): {spiked}"
    for fill in (tx for tx in history if tx["type"] == "ORDER_FILL" and tx.get("orderID") in created):
        order, price = created[fill["orderID"]], Decimal(fill["price"])
        for key in ("stopLossOnFill", "takeProfitOnFill"):
            level = Decimal(order[key]["price"])
            assert abs(level - price) / price < CENTS, (order["clientExtensions"]["id"], key, level, price)
    assert host.journal_rows("feed.tick_rejected"), "spiked ticks were not rejected by the feed"
    _table_row("spiked prices (5 % for 15 s)", "ticks rejected, no order on them", rows, fault_ns)


def test_a_second_hosts_trade_latches_no_trade_until_resume() -> None:
    # AUD_USD: an instrument this host does not trade, so the foreign trade nets against nothing.
    instruments = 'broker.emulator.instruments=["EUR_USD", "GBP_USD", "USD_JPY", "AUD_USD"]'
    with running_host([*MATRIX, instruments]) as host:
        admin, limits = _admin(host), limits_of(host)
        poll_until(lambda: _bodies(host, "exec.filled"), timeout_s=90)
        fault_ns = time.time_ns()
        admin.fault(
            "open_trade", instrument="AUD_USD", units=1000, tag=SECOND_HOST_TAG, id="other-host-intent",
            stop_loss_distance="0.0050", take_profit_distance="0.0050",
        )  # fmt: skip

        _left_trading(host, fault_ns, "another_host")
        back_only_after_resume(host, "another_host", hold_s=4.0, timeout_s=60)
        rows = _finish(host, admin, limits)
    _table_row("a second host's trade (tag tradehost-0123456789ab)", "NO_TRADE another_host (latched)",
               rows, fault_ns)  # fmt: skip


FRESH_ACCOUNT_LAST_ID = 2  # an emulator account starts with CREATE and TRANSFER_FUNDS


def _saved_id(host: Host) -> str:
    saved: str = json.loads((host.run_dir / "recon-state.json").read_text())["last_transaction_id"]
    return saved


def test_an_unknown_last_transaction_id_falls_back_to_a_full_reconciliation_and_trades() -> None:
    with _external_emulator() as (_url, admin, overrides, env):
        with running_host(overrides, env=env) as first:
            limits = limits_of(first)
            poll_until(lambda: _bodies(first, "exec.filled"), timeout_s=90)
            poll_until(lambda: int(_saved_id(first)) > FRESH_ACCOUNT_LAST_ID, timeout_s=30, what="the fill reconciled")
            assert first.ctl("shutdown").returncode == 0
            assert first.wait_exit(timeout_s=60) == 0
        before = record_broker(admin)
        admin.reset()  # another account behind the same URL: the saved id means nothing to it
        assert int(_saved_id(first)) > int(admin.state()["last_transaction_id"]) == FRESH_ACCOUNT_LAST_ID

        fault_ns = time.time_ns()
        with running_host(overrides, env=env, run_dir=first.run_dir, wait=None) as second:
            back_by_itself(second, fault_ns, timeout_s=60)
            rows = _finish(second, admin, limits, earlier=(before,))
            reasons = [r.body["code"] for r in rows if r.kind == "reason.raised" and r.ts_ns >= fault_ns]
            assert not [c for c in reasons if c.startswith("broker_unreachable:rest")], reasons
    _table_row("unknown last transaction id (account reset)", "full reconciliation, trades", rows, fault_ns)


# --- a holiday closure in replayed data ---------------------------------------------------------

H1_MODEL_DIR = REPO / ".cache" / "test-model-eurusd-h1"
EURUSD_H1 = ["EUR_USD"]


def _eurusd_h1_csv(work: Path) -> Path:
    """backtesting.py's real EURUSD hours (2017-04..2018-02) as a candle file (times: UTC starts)."""
    data = pytest.importorskip("backtesting.test", reason="real EURUSD hours come from `backtesting` (test extra)")
    path = work / "EUR_USD-H1.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time", "open", "high", "low", "close", "volume"])
        for stamp, o, h, low, c, volume in data.EURUSD[["Open", "High", "Low", "Close", "Volume"]].itertuples():
            writer.writerow([stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), o, h, low, c, int(volume)])
    return path


def _eurusd_h1_model(csv_path: Path) -> Path:
    """A model for EUR_USD H1 trained on the file's hours before the replay (built once, rebuilt
    when the features changed, like tests.helpers.ensure_test_model)."""
    from actors.ml import modelstore
    from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION

    try:
        modelstore.load(
            H1_MODEL_DIR, features_version=FEATURES_VERSION, feature_names=FEATURE_NAMES, granularity="H1",
            instruments=EURUSD_H1,
        )  # fmt: skip
        return H1_MODEL_DIR
    except (modelstore.ModelMissingError, modelstore.ModelMismatchError):
        shutil.rmtree(H1_MODEL_DIR, ignore_errors=True)
    res = run_cli(
        "train", "--data", f"EUR_USD={csv_path}", "--granularity", "H1", "--to", "2017-12-01",
        "--set", f"feed.instruments={json.dumps(EURUSD_H1)}", "--seed", "3", "--out", str(H1_MODEL_DIR),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return H1_MODEL_DIR


def test_bars_resume_after_the_christmas_and_new_year_closures_of_replayed_eurusd() -> None:
    csv_path = _eurusd_h1_csv(short_tmp_dir("h1"))
    model = _eurusd_h1_model(csv_path)
    replay = [
        *MATRIX,
        f"model.dir={json.dumps(str(model))}",
        f"feed.instruments={json.dumps(EURUSD_H1)}",
        'feed.granularity="H1"',
        f"broker.emulator.instruments={json.dumps(EURUSD_H1)}",
        f"broker.emulator.data={json.dumps([f'EUR_USD={csv_path}'])}",
        'broker.emulator.start="2017-12-20T00:00:00Z"',
        "broker.emulator.speed=28800",  # eight market hours a second: an H1 bar every 0.125 s
    ]
    with running_host(replay) as host:
        admin, limits = _admin(host), limits_of(host)
        fault_ns = time.time_ns()
        # Eight hours past the New Year reopening (2018-01-01 22:00), 13 market days, ~40 s; and the
        # host's bars past it too (a loaded machine may publish them a few wall seconds later: 8
        # market hours are one wall second here). Bars that never resume time this wait out.
        new_year_ns = parse_time("2018-01-01T22:00:00Z")
        poll_until(
            lambda: (
                admin.state()["time"] > "2018-01-02T06:00:00"
                and [r for r in host.journal_rows("md.bar") if r.body["bar_ts"] >= new_year_ns]
            ),
            timeout_s=180,
            what="market and bars past New Year",
        )
        rows = _finish(host, admin, limits)

    bars = [r.body["bar_ts"] for r in rows if r.kind == "md.bar"]
    opens = [(r.body["open"], format_rfc3339(r.body["since_ns"])) for r in rows if r.kind == "feed.market"]
    story = f"last bar {format_rfc3339(bars[-1]) if bars else None}; feed.market (open, since): {opens}"
    christmas = [t for t in bars if parse_time("2017-12-25T22:00:00Z") <= t < parse_time("2017-12-29T22:00:00Z")]
    new_year = [t for t in bars if t >= parse_time("2018-01-01T22:00:00Z")]
    assert christmas, f"no bar after the Christmas reopening; {story}"
    assert new_year, f"no bar after the New Year reopening; {story}"
    overdue = [r.body for r in rows if r.kind == "reason.raised" and r.body["code"].startswith("bar_overdue")]
    assert overdue == [], "a holiday is expected silence, not an overdue bar"
    _table_row("holiday closure (EURUSD H1, Christmas/New Year)", "bars resume after each reopening",
               rows, fault_ns)  # fmt: skip
