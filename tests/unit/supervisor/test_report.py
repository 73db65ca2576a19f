"""``tradehost report``'s verdicts on hand-made journals: crashes, weekends, reconnects, memory, matches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors.core.domain import bar_id
from actors.runtime.journal import Journal
from supervisor import cli
from supervisor.offline.report.checks import (
    ReportLimits,
    check_crashes,
    check_data_quality,
    check_disconnections,
    check_duration,
    check_memory,
    check_slippage,
    check_weekends,
    check_win_rate,
    market_days,
    wilson_interval,
)
from supervisor.offline.report.match import check_match
from supervisor.offline.report.run import read_journal, write_report
from supervisor.offline.report.sides import Side, compared_window, percentiles

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

M15 = 900 * 10**9
WED = 1_709_719_200 * 10**9  # 2024-03-06T10:00:00Z, a Wednesday
FRI_CLOSE = 1_709_935_200 * 10**9  # 2024-03-08T22:00:00Z: Friday 17:00 New York (EST)
LIMITS = ReportLimits()
S = 10**9


def _write(path: Path, rows: list[tuple[str, dict[str, Any], str | None, int]], src: str = "test") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = Journal(path, src=src)
    journal.write_many(rows)
    journal.close()
    return path


def _side(tmp_path: Path, name: str, rows: list[tuple[str, dict[str, Any], str | None, int]]) -> Side:
    return Side(name, read_journal(_write(tmp_path / f"{name}.sqlite", rows)))


def _decision(
    instrument: str,
    bar: int,
    *,
    p_up: float,
    entered: str | None = None,
    reason: str = "below_threshold",
    trade: str | None = None,
    pnl: str | None = None,
    t: int = 0,
) -> list[tuple[str, dict[str, Any], str | None, int]]:
    corr = bar_id(instrument, "M15", bar)
    rows: list[tuple[str, dict[str, Any], str | None, int]] = [
        ("md.bar", {"instrument": instrument, "bar_ts": bar, "close": "1.0"}, corr, t),
        ("model.signal", {"instrument": instrument, "bar_ts": bar, "p_up": p_up, "model_version": "m"}, corr, t + 1),
    ]
    if entered is None:
        rows.append(
            (
                "risk.skip",
                {
                    "instrument": instrument,
                    "bar_ts": bar,
                    "reason": reason,
                    "detail": "",
                    "direction": None,
                    "p_up": p_up,
                    "model_version": "m",
                },
                corr,
                t + 2,
            )
        )
        return rows
    intent = f"main.{instrument}.{bar}.{entered[0].upper()}"
    rows += [
        (
            "risk.intent",
            {
                "intent_id": intent,
                "instrument": instrument,
                "direction": entered,
                "bar_ts": bar,
                "p_up": p_up,
                "model_version": "m",
            },
            corr,
            t + 2,
        ),
        ("exec.sending", {"intent_id": intent, "instrument": instrument}, corr, t + 3 * 10**6),
        (
            "exec.filled",
            {"intent_id": intent, "instrument": instrument, "trade_id": trade, "slippage_pips": 0.2},
            corr,
            t + 4 * 10**6,
        ),
    ]
    if pnl is not None:
        rows.append(
            (
                "exec.closed",
                {"trade_id": trade, "instrument": instrument, "reason": "stop_loss", "realized_pl": pnl},
                corr,
                t + 5 * 10**6,
            )
        )
    return rows


def test_a_role_that_crashed_and_restarted_fails_no_crashes_with_its_name(tmp_path: Path) -> None:
    side = _side(
        tmp_path,
        "shadow",
        [
            ("role.exited", {"role": "model", "pid": 7, "exitcode": -9, "cause": "killed by SIGKILL"}, None, 1),
            ("role.restarted", {"role": "model", "pid": 8, "restarts": 1}, None, 2),
            ("role.exited", {"role": "feed", "pid": 9, "exitcode": 0, "cause": "restarted by operator"}, None, 3),
        ],
    )
    line = check_crashes(side)
    assert not line.passed
    assert line.figures == "1 role exits, 1 restarts, 0 roles given up, 0 host crashes (model)"
    assert check_crashes(_side(tmp_path, "clean", [("host.started", {}, None, 1)])).passed


def test_a_weekend_with_no_order_and_no_gap_passes_and_counts_the_closure(tmp_path: Path) -> None:
    rows = [
        ("feed.market", {"instrument": "EUR_USD", "open": False, "why": "weekend", "since_ns": FRI_CLOSE}, None, 1),
        (
            "feed.market",
            {"instrument": "EUR_USD", "open": True, "why": None, "since_ns": FRI_CLOSE + 48 * 3600 * S},
            None,
            2,
        ),
        *_decision("EUR_USD", FRI_CLOSE + 48 * 3600 * S, p_up=0.9, entered="long", trade="1", t=3),
    ]
    line = check_weekends(_side(tmp_path, "shadow", rows), "M15")
    assert line.passed
    assert line.figures.startswith("1 weekend closures")


def test_an_order_while_the_market_was_closed_or_a_gap_in_a_closed_market_fails_weekends(tmp_path: Path) -> None:
    saturday = FRI_CLOSE + 20 * 3600 * S
    rows = [
        ("feed.market", {"instrument": "EUR_USD", "open": False, "why": "weekend", "since_ns": FRI_CLOSE}, None, 1),
        *_decision("EUR_USD", saturday, p_up=0.9, entered="long", trade="1", t=2),
        (
            "feed.bar_rejected",
            {"instrument": "GBP_USD", "bar_ts": saturday, "reason": "missing"},
            bar_id("GBP_USD", "M15", saturday),
            3,
        ),
    ]
    line = check_weekends(_side(tmp_path, "shadow", rows), "M15")
    assert not line.passed
    assert "1 false gaps, 1 orders while closed" in line.figures


def test_a_reconnect_passes_and_a_connection_still_down_at_the_end_fails(tmp_path: Path) -> None:
    recovered = _side(
        tmp_path,
        "a",
        [
            ("broker.down", {"source": "stream", "detail": "reset"}, None, 10 * S),
            ("broker.up", {"source": "stream", "reconnects": 1}, None, 13 * S),
        ],
    )
    still_down = _side(
        tmp_path,
        "b",
        [
            ("broker.down", {"source": "stream", "detail": "reset"}, None, 10 * S),
            ("broker.up", {"source": "stream", "reconnects": 1}, None, 13 * S),
            ("broker.down", {"source": "rest", "detail": "timeout"}, None, 20 * S),
        ],
    )
    ok, bad = check_disconnections(recovered), check_disconnections(still_down)
    assert ok.passed and ok.figures == "1 disconnections, 1 recovered (longest 3.0 s)"
    assert not bad.passed and bad.figures.endswith("still down at the end: rest")


def test_memory_is_unknown_without_samples_judged_by_slope_with_them_and_failed_by_a_breach(tmp_path: Path) -> None:
    none = _side(tmp_path, "none", [("watchdog.started", {}, None, 1)])
    flat = _side(
        tmp_path,
        "flat",
        [("sample", {"name": "model", "rss_mb": 100.0 + (k % 2)}, None, k * 60 * S) for k in range(30)],
    )
    leaking = _side(
        tmp_path, "leak", [("sample", {"name": "feed", "rss_mb": 100.0 + k}, None, k * 60 * S) for k in range(30)]
    )
    breach = _side(
        tmp_path,
        "breach",
        [("watchdog.check", {"check": "memory_rss:model", "verdict": "breach", "detail": "1100 MB"}, None, 1)],
    )
    assert check_memory(none, LIMITS).verdict == "NOT OBSERVED" and not check_memory(none, LIMITS).passed
    assert check_memory(flat, LIMITS).passed
    line = check_memory(leaking, LIMITS)
    assert not line.passed and "+60.00 MB/h (feed)" in line.figures
    assert not check_memory(breach, LIMITS).passed


def test_the_watchdogs_memory_rows_are_judged_by_private_memory(tmp_path: Path) -> None:
    # RSS of a forked role moves with its siblings' pages; the USS is what it owns.
    rows = [
        (
            "watchdog.memory",
            {
                "processes": [
                    {"name": "risk", "pid": 7, "rss_mb": 100.0 + 3 * k, "uss_mb": 20.0},
                    {"name": "root", "pid": 1, "rss_mb": 80.0, "uss_mb": 40.0 + k},
                ]
            },
            None,
            k * 60 * S,
        )
        for k in range(30)
    ]

    line = check_memory(_side(tmp_path, "mem", rows), LIMITS)

    assert not line.passed and "+60.00 MB/h (root)" in line.figures
    assert any(d.startswith("risk: +0.00 MB/h") for d in line.details)


def test_the_match_rate_counts_entries_and_explains_a_difference_by_both_sides_rows(tmp_path: Path) -> None:
    # Arrange: three bars; the shadow still held EUR_USD at the third, the backtest entered again
    b0, b1, b2 = WED, WED + M15, WED + 2 * M15
    shadow_rows = [
        *_decision("EUR_USD", b0, p_up=0.7, entered="long", trade="10", t=1),
        *_decision("EUR_USD", b1, p_up=0.5, t=10),
        *_decision("EUR_USD", b2, p_up=0.3, reason="position_open", t=20),
    ]
    backtest_rows = [
        *_decision("EUR_USD", b0, p_up=0.7, entered="long", trade="1", pnl="-10.0", t=1),
        *_decision("EUR_USD", b1, p_up=0.5, t=10),
        *_decision("EUR_USD", b2, p_up=0.3, entered="short", trade="2", t=20),
    ]
    shadow, backtest = _side(tmp_path, "shadow", shadow_rows), _side(tmp_path, "backtest", backtest_rows)
    window = compared_window(shadow, backtest)
    assert window is not None

    # Act
    line, differences = check_match(shadow, backtest, window, LIMITS, "M15")

    # Assert
    assert not line.passed
    assert line.figures.startswith("50.0%: 1 matched, 0 shadow only, 1 backtest only")
    assert len(differences) == 1
    d = differences[0]
    assert (d.instrument, d.bar_ts) == ("EUR_USD", b2)
    assert d.shadow.startswith("skipped: position_open") and d.backtest.startswith("entered short")
    assert "shadow's EUR_USD entry of the 10:00 bar was still open" in d.why
    assert "backtest's EUR_USD entry of the 10:00 bar closed before this decision (stop_loss)" in d.why


def test_the_window_starts_at_the_shadows_first_bar_with_a_permit(tmp_path: Path) -> None:
    shadow = _side(
        tmp_path,
        "shadow",
        [
            *_decision("EUR_USD", WED, p_up=0.9, reason="no_permit"),
            *_decision("EUR_USD", WED + M15, p_up=0.5),
            *_decision("EUR_USD", WED + 2 * M15, p_up=0.5, reason="no_permit"),
        ],
    )
    backtest = _side(
        tmp_path, "backtest", [r for b in (WED, WED + M15, WED + 2 * M15) for r in _decision("EUR_USD", b, p_up=0.5)]
    )
    window = compared_window(shadow, backtest)
    assert window is not None and (window.first_ns, window.last_ns) == (WED + M15, WED + 2 * M15)


def test_win_rates_five_points_apart_pass_and_unknown_ones_fail(tmp_path: Path) -> None:
    def trades(pnls: list[str], side: str) -> Side:
        rows = []
        for k, pnl in enumerate(pnls):
            rows += _decision("EUR_USD", WED + k * M15, p_up=0.9, entered="long", trade=str(k), pnl=pnl, t=k)
        return _side(tmp_path, side, rows)

    shadow = trades(["1", "-1", "1", "-1"] * 10, "s")  # 50 %
    backtest = trades(["1", "-1", "1", "-1"] * 10 + ["1"], "b")  # 51.2 %
    window = compared_window(shadow, backtest)
    assert window is not None
    assert check_win_rate(shadow, backtest, window, LIMITS).passed
    assert not check_win_rate(shadow, trades(["1"] * 40, "c"), window, LIMITS).passed
    assert "too few trades" in check_win_rate(trades([], "d"), backtest, window, LIMITS).figures


def test_percentiles_use_the_nearest_rank() -> None:
    p = percentiles([float(v) for v in range(1, 101)])
    assert (p["p50"], p["p90"], p["p99"], p["mean"]) == (50.0, 90.0, 99.0, 50.5)
    assert percentiles([]) == {}


def test_the_report_command_writes_report_md_and_exits_1_when_a_line_fails(tmp_path: Path, capsys: Any) -> None:
    # Arrange: the same entry on both sides; no RSS samples, so memory is unknown (a FAIL)
    rows = _decision("EUR_USD", WED, p_up=0.9, entered="long", trade="1", pnl="5.0", t=1)
    shadow = _write(tmp_path / "run" / "journal.sqlite", [("role.started", {}, None, 0), *rows])
    _write(
        tmp_path / "bt" / "journal.sqlite",
        [
            *rows,
            (
                "backtest.completed",
                {"granularity": "M15", "model_version": "m", "instruments": ["EUR_USD"], "journal": "all"},
                None,
                9,
            ),
        ],
    )

    # Act
    code = cli.main(
        ["report", "--journal", str(shadow), "--backtest", str(tmp_path / "bt"), "--out", str(tmp_path / "r")]
    )

    # Assert
    out = capsys.readouterr().out
    assert code == 1
    assert "PASS  trade-by-trade match at least 95%" in out and "NOT OBSERVED  memory stable" in out
    text = (tmp_path / "r" / "report.md").read_text()
    assert "| **NOT OBSERVED** | `memory` | memory stable" in text and "![cumulative P&L](pnl.png)" in text
    assert all(
        (tmp_path / "r" / name).is_file() for name in ("pnl.png", "slippage.png", "latency.png", "differences.csv")
    )
    unobserved = frozenset({"memory", "weekends", "disconnections"})
    limits = ReportLimits(min_days=0.01, min_trades=1, allow_unobserved=unobserved)
    report = write_report(shadow, tmp_path / "bt", tmp_path / "r2", limits=limits)
    assert report.passed, report.summary()


def test_a_missing_journal_is_a_one_line_error_and_exit_2(tmp_path: Path, capsys: Any) -> None:
    code = cli.main(
        [
            "report",
            "--journal",
            str(tmp_path / "nope.sqlite"),
            "--backtest",
            str(tmp_path),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"tradehost report: error: {tmp_path / 'nope.sqlite'}: no such journal"


def _backtest_dir(tmp_path: Path, rows: list[tuple[str, dict[str, Any], str | None, int]]) -> Path:
    done = {"granularity": "M15", "model_version": "m", "instruments": ["EUR_USD"], "journal": "all"}
    _write(tmp_path / "bt" / "journal.sqlite", [*rows, ("backtest.completed", done, None, 9)], src="backtest")
    return tmp_path / "bt"


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--min-match", "2"], "--min-match: 2.0 must be above 0 and at most 1"),
        (["--min-match", "nan"], "--min-match: nan must be above 0"),
        (["--max-latency-ms", "-5"], "--max-latency-ms: -5.0 must be a finite number"),
        (["--max-win-rate-gap", "inf"], "--max-win-rate-gap: inf must be a finite number"),
    ],
)
def test_a_threshold_that_decides_every_run_alike_is_refused(
    tmp_path: Path, capsys: Any, flags: list[str], words: str
) -> None:
    rows = _decision("EUR_USD", WED, p_up=0.9, entered="long", trade="1", pnl="5.0", t=1)
    shadow = _write(tmp_path / "run" / "journal.sqlite", rows)
    backtest = _backtest_dir(tmp_path, rows)

    code = cli.main(
        ["report", "--journal", str(shadow), "--backtest", str(backtest), "--out", str(tmp_path / "r"), *flags]
    )

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and words in err
    assert not (tmp_path / "r").exists()


def test_a_journal_that_is_not_a_shadow_runs_is_refused(tmp_path: Path, capsys: Any) -> None:
    rows = _decision("EUR_USD", WED, p_up=0.9, entered="long", trade="1", pnl="5.0", t=1)
    backtest = _backtest_dir(tmp_path, rows)
    empty = _write(tmp_path / "empty" / "journal.sqlite", [("role.started", {}, None, 0)])
    cases = {
        "a backtest's journal, not a shadow run's": backtest / "journal.sqlite",
        "no decision in this journal": empty,
    }

    for words, journal in cases.items():
        code = cli.main(
            ["report", "--journal", str(journal), "--backtest", str(backtest), "--out", str(tmp_path / "r")]
        )
        err = capsys.readouterr().err
        assert code == 2, words
        assert err.count("\n") == 1 and words in err
        assert not (tmp_path / "r").exists()


def test_an_out_directory_with_an_earlier_report_is_refused_and_kept(tmp_path: Path, capsys: Any) -> None:
    rows = _decision("EUR_USD", WED, p_up=0.9, entered="long", trade="1", pnl="5.0", t=1)
    shadow = _write(tmp_path / "run" / "journal.sqlite", rows)
    backtest = _backtest_dir(tmp_path, rows)
    earlier = tmp_path / "r" / "report.md"
    earlier.parent.mkdir()
    earlier.write_text("the report of last week")

    code = cli.main(["report", "--journal", str(shadow), "--backtest", str(backtest), "--out", str(tmp_path / "r")])

    assert code == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert earlier.read_text() == "the report of last week"


# --- issue 17: a go-live report that cannot pass on nothing ---

MON = 1_709_510_400 * 10**9  # 2024-03-04T00:00:00Z, a Monday
DAY = 86_400 * S


def test_market_days_count_open_trading_days_in_market_time() -> None:
    # A calendar week from Monday 00:00 UTC is five trading days: the weekend counts nothing.
    sunday_open = 1_708_898_400 * 10**9  # 2024-02-25T22:00:00Z: Sunday 17:00 New York (EST)
    assert market_days(sunday_open, sunday_open + 7 * DAY) == pytest.approx(5.0)
    assert market_days(sunday_open - DAY, sunday_open + DAY) == pytest.approx(1.0)
    # Friday 17:00 to Sunday 17:00 New York (EDT from that Sunday on: 21:00 UTC)
    assert market_days(FRI_CLOSE, FRI_CLOSE + 47 * 3600 * S) == 0.0
    assert market_days(MON, MON + 2 * 3600 * S) == pytest.approx(2 / 24)


def test_a_run_shorter_than_min_days_fails_duration_and_says_why(tmp_path: Path) -> None:
    # Arrange: two hours of decisions, and a replay whose bars span three calendar weeks
    short = _side(
        tmp_path, "short", [*_decision("EUR_USD", WED, p_up=0.5), *_decision("EUR_USD", WED + 8 * M15, p_up=0.5)]
    )
    replayed = _side(
        tmp_path, "long", [*_decision("EUR_USD", MON, p_up=0.5), *_decision("EUR_USD", MON + 18 * DAY, p_up=0.5)]
    )

    # Act
    failed, passed = check_duration(short, None, "M15", LIMITS), check_duration(replayed, None, "M15", LIMITS)

    # Assert
    assert not failed.passed and failed.key == "duration"
    assert failed.figures.startswith("0.1 market days decided (2024-03-06T10:00Z .. 2024-03-06T12:15Z)")
    assert "fewer than --min-days 14" in failed.figures and "to go live on" in failed.figures
    days = market_days(MON, MON + 18 * DAY + M15)
    assert 14 < days < 15
    assert passed.passed and passed.figures.startswith(f"{days:.1f} market days decided (2024-03-04T00:00Z .. ")
    assert not check_duration(replayed, None, "M15", ReportLimits(min_days=15)).passed


def test_lines_that_observed_nothing_say_not_observed_and_fail_unless_allowed(tmp_path: Path) -> None:
    # Arrange: a run without a weekend, a disconnection, memory samples or an order
    rows = _decision("EUR_USD", WED, p_up=0.5)
    shadow = _write(tmp_path / "run" / "journal.sqlite", [("host.started", {"mode": "shadow"}, None, 0), *rows])
    backtest = _backtest_dir(tmp_path, rows)

    # Act
    strict = write_report(shadow, backtest, tmp_path / "a", limits=LIMITS)
    allowed = write_report(
        shadow,
        backtest,
        tmp_path / "b",
        limits=ReportLimits(allow_unobserved=frozenset({"weekends", "disconnections"})),
    )

    # Assert
    verdicts = {line.key: (line.verdict, line.passed) for line in strict.lines}
    for key in ("weekends", "disconnections", "memory", "match", "latency"):
        assert verdicts[key] == ("NOT OBSERVED", False), key
    lines = {line.key: line for line in allowed.lines}
    assert lines["weekends"].passed and lines["weekends"].verdict == "NOT OBSERVED (allowed)"
    assert lines["disconnections"].passed and "--allow-unobserved disconnections" in lines["disconnections"].figures
    assert not lines["memory"].passed
    assert "NOT OBSERVED  every disconnection recovered: 0 disconnections" in strict.summary()


def test_an_unknown_line_for_allow_unobserved_is_refused(tmp_path: Path, capsys: Any) -> None:
    rows = _decision("EUR_USD", WED, p_up=0.9, entered="long", trade="1", pnl="5.0", t=1)
    shadow = _write(tmp_path / "run" / "journal.sqlite", rows)
    backtest = _backtest_dir(tmp_path, rows)

    code = cli.main(
        ["report", "--journal", str(shadow), "--backtest", str(backtest), "--out", str(tmp_path / "r"),
         "--allow-unobserved", "weekend"]
    )  # fmt: skip

    assert code == 2
    assert "--allow-unobserved: weekend: not a line" in capsys.readouterr().err


def test_a_host_started_again_without_a_shutdown_is_a_crash(tmp_path: Path) -> None:
    killed = _side(
        tmp_path,
        "killed",
        [
            ("host.started", {"pid": 10, "mode": "shadow"}, None, 1 * S),
            ("host.started", {"pid": 11, "mode": "shadow"}, None, 60 * S),  # the root was killed, systemd restarted it
        ],
    )
    stopped = _side(
        tmp_path,
        "stopped",
        [
            ("host.started", {"pid": 10, "mode": "shadow"}, None, 1 * S),
            ("shutdown.completed", {}, None, 50 * S),
            ("host.started", {"pid": 11, "mode": "shadow"}, None, 60 * S),
        ],
    )

    line = check_crashes(killed)

    assert not line.passed
    assert "1 host crashes (a host.started without a shutdown.completed before it)" in line.figures
    assert any("host.started (pid 11)" in d for d in line.details)
    assert check_crashes(stopped).passed


def _trades(tmp_path: Path, side: str, pnls: list[str]) -> Side:
    rows = []
    for k, pnl in enumerate(pnls):
        rows += _decision("EUR_USD", WED + k * M15, p_up=0.9, entered="long", trade=str(k), pnl=pnl, t=k)
    return _side(tmp_path, side, rows)


def test_a_win_rate_on_too_few_trades_fails_with_each_sides_interval(tmp_path: Path) -> None:
    one, other = _trades(tmp_path, "s1", ["1"]), _trades(tmp_path, "b1", ["1"])
    window = compared_window(one, other)
    assert window is not None

    line = check_win_rate(one, other, window, LIMITS)

    assert not line.passed
    assert line.figures.startswith("too few trades (--min-trades 30 a side)")
    assert "shadow 100.0% of 1 trades (95% interval 20.7%-100.0%)" in line.figures
    assert "backtest 100.0% of 1 trades (95% interval 20.7%-100.0%)" in line.figures
    many_s = _trades(tmp_path, "s40", ["1", "-1"] * 20)
    many_b = _trades(tmp_path, "b40", ["1", "-1"] * 20 + ["1"])
    window = compared_window(many_s, many_b)
    assert window is not None
    assert check_win_rate(many_s, many_b, window, LIMITS).passed
    assert wilson_interval(20, 40) == pytest.approx((0.3519, 0.6481), abs=1e-4)


def test_slippage_of_a_shadow_run_is_simulated_and_judged_only_on_a_live_run(tmp_path: Path) -> None:
    fills = [
        ("exec.filled", {"intent_id": f"i{k}", "trade_id": str(k), "slippage_pips": 3.0}, None, k) for k in range(10)
    ]
    shadow = _side(tmp_path, "shadow", [("host.started", {"mode": "shadow"}, None, 0), *fills])
    live = _side(tmp_path, "live", [("host.started", {"mode": "live"}, None, 0), *fills])
    backtest = _side(tmp_path, "backtest", [])

    simulated, judged = check_slippage(shadow, backtest, None, LIMITS), check_slippage(live, backtest, None, LIMITS)

    assert simulated.verdict == "NOT JUDGED" and simulated.passed
    assert "simulated" in simulated.name and "execution.slippage_pips" in simulated.figures
    assert judged.verdict == "FAIL" and judged.figures.startswith("live p50 3.00 / p90 3.00 / p99 3.00 pips")


def test_data_quality_counts_rejected_bars_ticks_skips_and_gaps(tmp_path: Path) -> None:
    # Arrange: 200 bars expected; 1 rejected, 1 missing (a gap), 2 ticks rejected, 1 model skip, 1 message lost
    bars = [("md.bar", {"instrument": "EUR_USD", "bar_ts": WED + k * M15}, None, k) for k in range(198)]
    bad = [
        ("feed.bar_rejected", {"instrument": "EUR_USD", "bar_ts": WED, "reason": "spike"}, None, 1),
        ("feed.bar_rejected", {"instrument": "EUR_USD", "bar_ts": WED, "reason": "missing"}, None, 2),
        ("feed.tick_rejected", {"instrument": "EUR_USD", "reason": "crossed", "counts": {"crossed": 2}}, None, 3),
        ("model.skipped", {"instrument": "EUR_USD", "bar_ts": WED, "reason": "nan_features"}, None, 4),
        ("bus.gap", {"src": "feed", "topic": "md.bar.", "expected": 7, "got": 8}, None, 5),
    ]
    clean = _side(tmp_path, "clean", bars)
    dirty = _side(tmp_path, "dirty", [*bars, *bad])

    ok, line = check_data_quality(clean, LIMITS), check_data_quality(dirty, LIMITS)

    assert ok.passed and ok.figures.startswith("0.00% (0 per 198 bars expected)")
    assert not line.passed
    assert line.figures == (
        "3.00% (6 per 200 bars expected): 1 bars rejected, 1 missing (gaps), 2 ticks rejected, 1 model skips, "
        "1 bus messages lost"
    )
    assert check_data_quality(dirty, ReportLimits(max_rejected_pct=3.0)).passed


def test_a_live_journal_is_not_called_a_shadow_journal_and_the_verdict_file_names_the_model(tmp_path: Path) -> None:
    rows = _decision("EUR_USD", WED, p_up=0.9, entered="long", trade="1", pnl="5.0", t=1)
    live = _write(tmp_path / "run" / "journal.sqlite", [("host.started", {"mode": "live"}, None, 0), *rows])
    backtest = _backtest_dir(tmp_path, rows)

    report = write_report(live, backtest, tmp_path / "r", limits=LIMITS)

    text = report.path.read_text()
    assert "Shadow journal" not in text and "# Shadow run" not in text
    assert text.startswith("# Live run vs backtest") and "- Live journal: `" in text
    verdict = json.loads((tmp_path / "r" / "report.json").read_text())
    assert verdict["passed"] is False and verdict["mode"] == "live" and verdict["model_version"] == "m"
    assert verdict["lines"][0]["key"] == "duration"
    assert verdict["written_ns"] > 0


def test_memory_of_a_replay_is_judged_per_hour_of_market_time(tmp_path: Path) -> None:
    # Arrange: a replay at 14400x: an H1 bar every 0.25 s for 100 s of wall time (400 market hours);
    # the model's private memory grows 4 MB over it: 144 MB per wall hour, 0.01 MB per market hour.
    hour = 3600 * S
    bars = [("md.bar", {"instrument": "EUR_USD", "bar_ts": MON + k * hour}, None, k * S // 4) for k in range(400)]
    memory = [
        (
            "watchdog.memory",
            {"processes": [{"name": "model", "rss_mb": 90.0, "uss_mb": 20.0 + k / 100}]},
            None,
            k * S // 4,
        )
        for k in range(400)
    ]
    leak = [
        (
            "watchdog.memory",
            {"processes": [{"name": "feed", "rss_mb": 90.0, "uss_mb": 20.0 + 60 * k}]},
            None,
            k * S // 4,
        )
        for k in range(400)
    ]
    replay = _side(tmp_path, "replay", [*bars, *memory])
    leaking = _side(tmp_path, "leaking", [*bars, *leak])  # 60 MB per market hour

    # Act
    line, leaked = check_memory(replay, LIMITS, "H1"), check_memory(leaking, LIMITS, "H1")

    # Assert
    assert line.passed, line.figures
    assert line.figures == "largest slope +0.01 MB/h (model) over 399.0 market hours, 1 processes"
    assert not leaked.passed and "+60.00 MB/h (feed)" in leaked.figures


def test_the_report_plots_the_runs_nav_from_its_account_snapshot_rows(tmp_path: Path) -> None:
    # Arrange: a run whose reconciler journaled three account figures (100,000 → 98,500 → 99,200)
    from supervisor.offline.report.run import account_equity

    rows = _decision("EUR_USD", WED, p_up=0.9, entered="long", trade="1", pnl="5.0", t=1)
    snapshots = [
        ("account.snapshot", {"currency": "USD", "nav": nav, "peak_nav": "100000.0000"}, None, ts)
        for nav, ts in (("100000.0000", WED - 60 * S), ("98500.0000", WED + 900 * S), ("99200.0000", WED + 1800 * S))
    ]
    shadow = _write(tmp_path / "run" / "journal.sqlite", [("role.started", {}, None, 0), *snapshots, *rows])
    backtest_rows = [
        *rows,
        ("backtest.completed", {"granularity": "M15", "model_version": "m", "instruments": ["EUR_USD"]}, None, 9),
    ]
    _write(tmp_path / "bt" / "journal.sqlite", backtest_rows)

    # Act
    write_report(shadow, tmp_path / "bt", tmp_path / "r", limits=LIMITS)

    # Assert: the NAV series is the rows' own, and report.md shows the plot drawn from it
    side = Side("shadow", read_journal(shadow))
    assert [nav for _, nav in account_equity(side)] == [100000.0, 98500.0, 99200.0]
    assert (tmp_path / "r" / "equity.png").stat().st_size > 1000
    assert "(equity.png)" in (tmp_path / "r" / "report.md").read_text()
