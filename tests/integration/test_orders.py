"""Decisions and orders in the real tree against the emulator: live orders, faults, the broker's truth."""

from __future__ import annotations

import json
import os
import signal
from decimal import Decimal
from typing import Any

import pytest

from actors.broker.config import DEV_ACCOUNT_ID, DEV_TOKEN, BrokerConfig, Credentials
from actors.broker.emulator import AdminClient
from actors.broker.oanda.client import OandaBroker
from actors.core.config import ExecutionConfig
from actors.core.fills import market_fill, slippage_price
from tests.bustap import tick_tap
from tests.conftest import FAST
from tests.helpers import Host, poll_until, running_host

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

WEEKDAY = '"2024-03-06T14:00:00Z"'
# An accelerated weekday market, and a gate that lets nearly every signal through.
TRADING = [
    *FAST,
    f"broker.emulator.start={WEEKDAY}",
    "broker.emulator.speed=300",
    "feed.bar_wait_s=2",
    "risk.min_probability=0.5001",
    "risk.cooldown_after_loss_s=0",
    "execution.time_exit_bars=0",
]
LIVE = [*TRADING, 'host.mode="live"']
INSTRUMENTS = ("EUR_USD", "GBP_USD", "USD_JPY")


def _admin(host: Host) -> AdminClient:
    return AdminClient(host.status()["broker"]["api_url"])


def _broker(host: Host) -> OandaBroker:
    cfg = BrokerConfig(kind="emulator", api_url=host.status()["broker"]["api_url"])
    return OandaBroker(cfg, Credentials(token=DEV_TOKEN, account_id=DEV_ACCOUNT_ID))


def _market_orders(host: Host) -> list[dict[str, Any]]:
    with _broker(host) as broker:
        page = broker.transactions_since("1")
    return [t.raw for t in page.transactions if t.type in ("MARKET_ORDER", "MARKET_ORDER_REJECT")]


def _bodies(host: Host, kind: str) -> list[dict[str, Any]]:
    return [e["body"] for e in host.journal(kind)]


def test_every_live_order_carries_its_sl_tp_and_the_intent_id_and_is_sent_once() -> None:
    with running_host(LIVE) as host:
        filled = poll_until(lambda: (f := _bodies(host, "exec.filled")) and len(f) >= 2 and f, timeout_s=90)
        intents = {b["intent_id"]: b for b in _bodies(host, "risk.intent")}
        tag = "tradehost-" + (host.run_dir / "host-id").read_text().strip()

        orders = _market_orders(host)
        sent = _bodies(host, "exec.sending")
        assert len(orders) == len(sent)  # nothing sent twice, nothing sent unjournaled
        for order in orders:
            client = order["clientExtensions"]["id"]
            assert client in intents
            assert order["clientExtensions"]["tag"] == tag
            assert Decimal(order["stopLossOnFill"]["price"]) == Decimal(intents[client]["stop_loss"])
            assert Decimal(order["takeProfitOnFill"]["price"]) == Decimal(intents[client]["take_profit"])
            assert order["timeInForce"] == "FOK"
        # One story per trade: the same corr from the signal to the fill.
        corr = {e["body"]["intent_id"]: e for e in host.journal("exec.filled")}
        for f in filled:
            assert f["model_version"] and f["trade_id"]
        assert corr


@pytest.mark.parametrize(
    ("fault", "kind", "reason"),
    [("order_cancel", "exec.cancelled", "INSUFFICIENT_MARGIN"), ("order_reject", "exec.rejected", "MARKET_HALTED")],
)
def test_a_cancel_or_a_reject_is_journaled_alerted_and_never_retried(fault: str, kind: str, reason: str) -> None:
    with running_host(LIVE) as host:
        _admin(host).fault(fault, reason=reason)
        refused = poll_until(lambda: _bodies(host, kind), timeout_s=90)
        client = refused[0]["intent_id"]
        assert refused[0]["reason"] == reason
        poll_until(
            lambda: (
                [a for a in _bodies(host, "alert") if reason in a.get("detail", "") or a["code"].startswith("order_")]
                or None
            ),
            timeout_s=30,
        )
        same = [o for o in _market_orders(host) if o["clientExtensions"]["id"] == client]
        assert len(same) == 1  # never retried


def test_an_order_whose_answer_is_lost_becomes_exactly_one_trade() -> None:
    with running_host([*LIVE, "broker.timeout_s=2"]) as host:
        _admin(host).fault("order_no_answer", mode="drop")
        ambiguous = poll_until(lambda: _bodies(host, "exec.ambiguous"), timeout_s=90)
        client = ambiguous[0]["intent_id"]
        outcome = poll_until(
            lambda: [
                b for b in _bodies(host, "exec.filled") + _bodies(host, "exec.resolved") if b["intent_id"] == client
            ],
            timeout_s=60,
        )
        assert outcome
        assert len([o for o in _market_orders(host) if o["clientExtensions"]["id"] == client]) == 1
        trades = [t for t in _admin(host).state()["trades"] if t["client_id"] == client]
        assert len(trades) == 1


def test_kill_9_of_execution_with_an_order_in_the_air_leaves_exactly_one_trade() -> None:
    with running_host([*LIVE, "broker.timeout_s=20"]) as host:
        _admin(host).fault("order_no_answer", mode="drop")
        sending = poll_until(lambda: _bodies(host, "exec.sending"), timeout_s=90)
        client = sending[0]["intent_id"]
        # The order has reached the broker (``exec.sending`` is journaled just before the POST: a
        # kill -9 between the two leaves an order never placed, which is latched as unresolved).
        poll_until(
            lambda: [o for o in _market_orders(host) if o["clientExtensions"]["id"] == client],
            timeout_s=15,
            what="the order at the broker",
        )
        os.kill(host.status()["actors"]["execution"]["pid"], signal.SIGKILL)  # before it learns the outcome
        resolved = poll_until(
            lambda: [b for b in _bodies(host, "exec.resolved") if b["intent_id"] == client], timeout_s=90
        )
        assert resolved
        assert len([o for o in _market_orders(host) if o["clientExtensions"]["id"] == client]) == 1


def test_a_foreign_trade_is_adopted_repaired_and_its_close_behind_the_back_is_booked_with_its_pl() -> None:
    with running_host([*LIVE, "risk.min_probability=0.99"]) as host:  # the host opens nothing itself
        admin = _admin(host)
        trade_id = admin.fault("open_trade", instrument="EUR_USD", units=1000)["trade_id"]
        diffs = poll_until(
            lambda: "adopted" in {d["kind"] for d in _bodies(host, "recon.difference") if d["trade_id"] == trade_id},
            timeout_s=60,
        )
        assert diffs
        # Naked at the broker: a no-trade reason from the first sight (the reconciler's poll or the
        # execution role's exit check, whichever came first), until it is repaired.
        poll_until(
            lambda: [r for r in _bodies(host, "reason.raised") if r["code"] == f"unprotected:{trade_id}"],
            timeout_s=30,
        )

        def protected() -> bool:
            with _broker(host) as broker:
                trade = broker.trade(trade_id)
            return trade.stop_loss_price is not None and trade.take_profit_price is not None

        poll_until(protected, timeout_s=60, what="SL and TP set on the adopted trade")
        assert any(a["code"] == "recon_adopted:EUR_USD" for a in _bodies(host, "alert"))
        admin.fault("close_trade", trade=trade_id)
        closed = poll_until(
            lambda: [
                d for d in _bodies(host, "recon.difference") if d["kind"] == "closed" and d["trade_id"] == trade_id
            ],
            timeout_s=60,
        )
        assert Decimal(closed[0]["realized_pl"]) != 0 or closed[0]["realized_pl"] == "0.0000"


def test_sigterm_with_open_trades_leaves_every_one_with_sl_and_tp_at_the_broker() -> None:
    with running_host([*LIVE, "risk.min_probability=0.99"]) as host:
        admin = _admin(host)
        for name in ("EUR_USD", "GBP_USD"):
            admin.fault("open_trade", instrument=name, units=-2000)  # no SL, no TP
        os.kill(host.proc.pid, signal.SIGTERM)
        assert host.wait_exit(timeout_s=30) == 0
        (check,) = _bodies(host, "shutdown.protection")
        assert check["complete"] is True
        assert check["trades"] and all(v in ("protected", "repaired") for v in check["trades"].values()), check


def test_shadow_mode_sends_no_order_fills_virtually_and_closes_on_virtual_sl_tp() -> None:
    shadow = [*TRADING, "risk.sl_atr_mult=0.3", "risk.reward_ratio=0.5"]  # tight stops: closes come fast
    with running_host(shadow) as host, tick_tap(host, INSTRUMENTS) as tap:
        poll_until(lambda: _bodies(host, "exec.filled"), timeout_s=90)
        closed = poll_until(lambda: _bodies(host, "exec.closed"), timeout_s=120)
        assert "SL/TP" in closed[0]["reason"]
        requests = _admin(host).requests()
        order_path = [r for r in requests if r["method"] in ("POST", "PUT") and "/accounts/" in r["path"]]
        assert order_path == []  # nothing reached the broker's order path
        assert _admin(host).state()["trades"] == []
        assert (host.run_dir / "shadow-book.db").exists()
        fills = _bodies(host, "exec.filled")
        intents = {b["intent_id"]: b for b in _bodies(host, "risk.intent")}
        with _broker(host) as broker:
            meta = {i.name: i for i in broker.instruments(INSTRUMENTS)}
        slippage_pips = host.config().section("execution", ExecutionConfig).slippage_pips

    # Every fill is at the ask (a buy) or the bid (a sell) of a price the feed published, made
    # worse by execution.slippage_pips: never better than the market. Measured from the decision
    # price instead, a fill may be better or worse: the market moves between the decision and the
    # fill (the journal's slippage_pips says by how much, signed).
    assert fills
    for fill in fills:
        intent, instrument = intents[fill["intent_id"]], meta[fill["instrument"]]
        sign = 1 if intent["direction"] == "long" else -1
        slippage, digits = slippage_price(slippage_pips, instrument), instrument.display_precision
        at_quotes = {
            round(market_fill(sign, float(t.bid), float(t.ask), slippage=slippage, precision=digits), digits)
            for t in tap.of(fill["instrument"])
        }
        price = float(fill["fill_price"])
        assert round(price, digits) in at_quotes, (fill, intent)
        pip = 10.0**instrument.pip_location
        assert fill["slippage_pips"] == round((price - intent["decision_price"]) * sign / pip, 3), (fill, intent)


def test_paused_means_no_entries_while_exits_are_still_managed() -> None:
    with running_host([*TRADING, "execution.time_exit_bars=2"]) as host:
        filled = poll_until(lambda: _bodies(host, "exec.filled"), timeout_s=90)
        assert host.ctl("pause").returncode == 0
        paused_at = host.journal("operator.pause")[0]["seq"]
        closed = poll_until(
            lambda: [
                e for e in host.journal("exec.closed") if e["seq"] > paused_at and e["body"]["reason"] == "time_exit"
            ],
            timeout_s=120,
        )
        assert closed and filled
        later = [e["body"] for e in host.journal("risk.skip") if e["seq"] > paused_at]
        assert later and all(b["reason"] == "no_permit" for b in later)
        assert not [e for e in host.journal("exec.sending") if e["seq"] > paused_at]
        # The exit pass that closed it went on to the other trades and did not fail the role.
        assert host.journal("role.crashed") == []
        assert host.status()["actors"]["execution"]["restarts"] == 0


def test_flatten_lists_without_yes_and_closes_everything_then_pauses_with_it() -> None:
    with running_host([*LIVE, "risk.min_probability=0.99"]) as host:
        admin = _admin(host)
        admin.fault("open_trade", instrument="EUR_USD", units=1000)
        poll_until(lambda: host.status()["positions"], timeout_s=60)
        dry = host.ctl("flatten")
        assert dry.returncode == 1 and "would close 1 open trades" in dry.stderr
        done = host.ctl("flatten", "--yes")
        assert done.returncode == 0, done.stderr
        poll_until(lambda: not host.status()["positions"], timeout_s=60)
        assert host.status()["paused"] is True


def test_ctl_reconcile_goes_through_reconciling_and_back_to_trading() -> None:
    with running_host(TRADING) as host:
        res = host.ctl("reconcile")
        assert res.returncode == 0, res.stderr
        assert any(e["body"]["why"] == "ctl reconcile" for e in host.journal("recon.required"))
        host.wait_state("TRADING", timeout_s=30)
        states = [e["body"]["to"] for e in host.journal("state.changed")]
        assert states.count("RECONCILING") >= 2
        assert json.loads(host.ctl("status", "--json").stdout)["positions"] is not None


# --- issue 16: every open trade has its exits managed, with or without the entry's memo -------------


def _closed_by_time_exit_within(host: Host, trade_id: str, instrument: str, *, after_seq: int, closes: int) -> Any:
    """The ``exec.closed`` row of ``trade_id``, or None once ``closes`` closes of ``instrument``
    have passed since ``after_seq`` without it (both truthy for poll_until)."""
    closed = [b for b in _bodies(host, "exec.closed") if b["trade_id"] == trade_id]
    if closed:
        return closed[0]
    bars = [e for e in host.journal("md.bar") if e["seq"] > after_seq and e["body"]["instrument"] == instrument]
    return {"still_open_after_closes": len(bars)} if len(bars) >= closes else None


def test_an_adopted_trade_is_closed_by_the_time_exit_from_its_open_time_at_the_broker() -> None:
    # Arrange: a trade opened by hand with SL and TP 100 pips away (nothing triggers them in an
    # hour of this market), the host opening nothing itself, a time exit after 4 bars.
    with running_host([*LIVE, "risk.min_probability=0.99", "execution.time_exit_bars=4"]) as host:
        admin = _admin(host)
        start = max((e["seq"] for e in host.journal()), default=0)
        trade_id = admin.fault("open_trade", instrument="EUR_USD", units=1000, stop_loss_distance=0.01,
                               take_profit_distance=0.01)["trade_id"]  # fmt: skip
        with _broker(host) as broker:
            opened = broker.trade(trade_id)

        # Act: let up to 10 closes pass
        outcome = poll_until(
            lambda: _closed_by_time_exit_within(host, trade_id, "EUR_USD", after_seq=start, closes=10), timeout_s=120
        )

        # Assert: closed by the time exit once 4 bars were held, counted from the broker's open time
        assert outcome.get("reason") == "time_exit", outcome
        closed_seq = next(e["seq"] for e in host.journal("exec.closed") if e["body"]["trade_id"] == trade_id)
        held = {
            e["body"]["bar_ts"]
            for e in host.journal("md.bar")
            if e["body"]["instrument"] == "EUR_USD" and e["seq"] < closed_seq
            and e["body"]["bar_ts"] + 900 * 10**9 > opened.open_ts
        }  # fmt: skip
        assert len(held) == 4, sorted(held)
        [managed] = [b for b in _bodies(host, "exec.managed") if b["trade_id"] == trade_id]
        assert Decimal(managed["initial_stop_loss"]) == opened.stop_loss_price
        assert managed["why"] == "adopted"
        with _broker(host) as broker:
            assert broker.trade(trade_id).state == "CLOSED"


# --- issue 16, defect 11: one P&L per close, the broker's, partial reductions included -------------


def _trade_pl(host: Host, trade_id: str) -> Decimal:
    """The realized P&L of ``trade_id`` from the broker's transactions: the sum of ``realizedPL``
    over every fill that reduced or closed it."""
    with _broker(host) as broker:
        page = broker.transactions_since("1")
    total = Decimal(0)
    for tx in page.transactions:
        entries = [
            *(tx.raw.get("tradesClosed") or []),
            *([tx.raw["tradeReduced"]] if tx.raw.get("tradeReduced") else []),
        ]
        total += sum((Decimal(e["realizedPL"]) for e in entries if e["tradeID"] == trade_id), Decimal(0))
    return total


def test_a_partly_reduced_trade_has_one_pl_the_brokers_in_the_journal_the_report_and_the_alert() -> None:
    # Arrange: two trades of 100,000 EUR_USD opened by hand, each reduced by 40,000 by hand at the broker.
    with running_host([*LIVE, "risk.min_probability=0.99", "reconciler.poll_interval_s=1.0"]) as host:
        admin = _admin(host)
        opened = [
            admin.fault("open_trade", instrument="EUR_USD", units=100_000, stop_loss_distance=0.01,
                        take_profit_distance=0.01)["trade_id"]
            for _ in range(2)
        ]  # fmt: skip
        poll_until(lambda: {b["trade_id"] for b in _bodies(host, "exec.managed")} >= set(opened), timeout_s=60)
        with _broker(host) as broker:
            for trade_id in opened:
                broker.close_trade(trade_id, units=Decimal(40_000))
        behind_its_back, by_the_host = opened

        # Act: one closed behind the host's back, the other by the host (ctl flatten)
        admin.fault("close_trade", trade=behind_its_back)
        alert = poll_until(
            lambda: [a for a in _bodies(host, "alert")
                     if a["code"] == "recon_closed:EUR_USD" and f"trade {behind_its_back} " in a["detail"]],
            timeout_s=60,
        )[0]  # fmt: skip
        assert host.ctl("flatten", "--yes").returncode == 0
        closed = poll_until(
            lambda: (c := {b["trade_id"]: b for b in _bodies(host, "exec.closed")}).keys() >= set(opened) and c,
            timeout_s=60,
        )
        recon = {b["trade_id"]: b for b in _bodies(host, "recon.difference") if b["kind"] == "closed"}
        truth = {trade_id: _trade_pl(host, trade_id) for trade_id in opened}

    # Assert: every figure of each close is the sum of its broker transactions (reduction included)
    assert all(truth.values())
    assert Decimal(closed[behind_its_back]["realized_pl"]) == truth[behind_its_back]
    assert f"(P&L {format(truth[behind_its_back], 'f')})" in alert["detail"], (alert["detail"], truth)
    assert Decimal(recon[behind_its_back]["realized_pl"]) == truth[behind_its_back]
    assert Decimal(closed[by_the_host]["realized_pl"]) == truth[by_the_host], (closed[by_the_host], truth)


# --- issue 18: the send-time check answers from the transaction stream, never on a view it cannot vouch for


# The reconciler does not poll (it would tell the risk role of a trade opened behind the host's
# back, and the risk role would then never send the intent the send-time check must stop).
UNPOLLED = [
    *LIVE,
    "reconciler.poll_interval_s=3600",
    "watchdog.account_max_age_s=7200",
    "risk.intent_expiry_s=7200",
    "broker.emulator.heartbeat_s=1.0",
]


def _view_states(host: Host, after_seq: int = 0) -> list[str]:
    return [e["body"]["state"] for e in host.journal("exec.trade_view") if e["seq"] > after_seq]


def _open_behind_the_back(host: Host) -> dict[str, str]:
    admin = _admin(host)
    return {name: admin.fault("open_trade", instrument=name, units=1000)["trade_id"] for name in INSTRUMENTS}


def test_a_trade_opened_behind_the_hosts_back_blocks_an_entry_on_its_instrument_through_the_stream_view() -> None:
    with running_host(UNPOLLED) as host:
        assert host.ctl("pause").returncode == 0
        poll_until(lambda: "synced" in _view_states(host), timeout_s=60, what="the trade view synced")
        before = host.journal()[-1]["seq"]
        trades = _open_behind_the_back(host)

        assert host.ctl("resume").returncode == 0
        refused = poll_until(
            lambda: [e["body"] for e in host.journal("exec.rejected") if e["seq"] > before and not e["body"]["sent"]],
            timeout_s=90,
            what="an entry refused at send time",
        )

        # Refused from the stream's view (no open-trades read), naming the trade the broker opened.
        for row in refused:
            assert row["reason"] == (
                f"position_open at send time: trade {trades[row['instrument']]} on {row['instrument']} "
                "is open at the broker (transaction stream)"
            ), row
        assert not [e for e in host.journal("exec.sending") if e["seq"] > before]
        assert "down" not in _view_states(host, before)

        # Closed behind its back too: the view hears it and entries leave again, checked by the stream.
        for trade_id in trades.values():
            _admin(host).fault("close_trade", trade=trade_id)
        sent = poll_until(lambda: [e["body"] for e in host.journal("exec.sending") if e["seq"] > before], timeout_s=90)
        assert all(b["position_check"] == "stream" for b in sent), sent


def test_a_dropped_transaction_stream_falls_back_to_reading_the_open_trades() -> None:
    with running_host(UNPOLLED) as host:
        admin = _admin(host)
        assert host.ctl("pause").returncode == 0
        poll_until(lambda: "synced" in _view_states(host), timeout_s=60, what="the trade view synced")
        # The stream ends and cannot come back (every reconnect is a 503).
        admin.fault("http_error", status=503, path="/transactions/stream", count=100_000)
        dropped = host.journal()[-1]["seq"]
        admin.fault("stream", action="end", stream="transactions")
        poll_until(lambda: "down" in _view_states(host, dropped), timeout_s=30, what="the trade view down")
        before = host.journal()[-1]["seq"]
        trades = _open_behind_the_back(host)

        assert host.ctl("resume").returncode == 0
        refused = poll_until(
            lambda: [e["body"] for e in host.journal("exec.rejected") if e["seq"] > before and not e["body"]["sent"]],
            timeout_s=90,
            what="an entry refused at send time",
        )

        # Refused by the broker's own list of open trades: the view was never used while down.
        for row in refused:
            assert row["reason"] == (
                f"position_open at send time: trade {trades[row['instrument']]} on {row['instrument']} "
                "is open at the broker"
            ), row
        assert not [e for e in host.journal("exec.sending") if e["seq"] > before]
        assert "synced" not in _view_states(host, dropped)
        for trade_id in trades.values():
            admin.fault("close_trade", trade=trade_id)
        sent = poll_until(lambda: [e["body"] for e in host.journal("exec.sending") if e["seq"] > before], timeout_s=90)
        assert all(b["position_check"] == "broker" for b in sent), sent
