"""The go-live path end to end: the report of a 14-market-day replayed shadow run, the gate of a
live start, and ``ctl status`` into a closed pipe.

The replay: three instruments of the embedded emulator's synthetic market as H1 candle files
(continuous, as in ``tests/integration/test_backtest.py``), a model trained before the window, the
whole tree in shadow mode at 14400x (an H1 bar every 0.25 s: 14.6 market days, three weekends'
worth of calendar, in about 110 s of wall time), a backtest of the same window and
``tradehost report`` with its default thresholds and no ``--allow-unobserved``. The lines a
replay does not meet by itself are made to happen for real: the price stream is reset through the
emulator's admin API during the first weekend (a disconnection the feed must recover from, with
no decision lost to it).

The gate: ``broker.environment = "live"`` with ``broker.api_url`` at loopback (a closed port for the
refusals, a standalone emulator for the start), so nothing here can reach a real broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from actors.broker.emulator import AdminClient
from actors.core.timefmt import format_rfc3339, parse_time
from supervisor.offline.report.checks import market_days
from tests.conftest import FAST
from tests.helpers import (
    REPO,
    Host,
    ensure_test_model,
    poll_until,
    run_cli,
    running_host,
    short_tmp_dir,
    tradehost_cmd,
)
from tests.synthetic import emulator_candles, write_candle_files

pytestmark = [pytest.mark.integration]

INSTRUMENTS = ("EUR_USD", "GBP_USD", "USD_JPY")
H1 = 3600 * 10**9
START, END = "2024-03-04T00:00:00Z", "2024-03-23T00:00:00Z"  # a Monday; the files end on a Saturday


def _decided(host: Host) -> list[int]:
    return [e["body"]["bar_ts"] for e in host.journal("risk.skip") + host.journal("risk.intent")]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_14_market_day_replay_at_high_speed_passes_every_line_of_the_report() -> None:
    # Arrange: H1 candle files of the emulator's market, a model trained before the window
    work = short_tmp_dir("thgl")
    frames = emulator_candles(INSTRUMENTS, "2024-01-08T00:00:00Z", END, granularity="H1")
    items = write_candle_files(frames, work / "data")
    trained = run_cli(
        "train", "--data", *items, "--granularity", "H1", "--to", START, "--out", str(work / "model"), "--seed", "1"
    )
    assert trained.returncode == 0, trained.stderr
    rules = ["risk.min_probability=0.52", "risk.daily_loss_limit=0.5", 'feed.granularity="H1"']
    data = f"broker.emulator.data={json.dumps(items)}"
    shadow = [
        *FAST,
        *rules,
        data,
        f"broker.emulator.start={json.dumps(START)}",
        "broker.emulator.speed=14400",
        "broker.emulator.heartbeat_s=1",
        f"model.dir={json.dumps(str(work / 'model'))}",
        "feed.bar_wait_s=1",
        "watchdog.memory_sample_s=1",
    ]

    # Act: the shadow run, with the price stream reset during the first weekend, until 14.2
    # market days were decided
    with running_host(shadow, run_dir=work / "run") as host:
        admin = AdminClient(host.status()["broker"]["api_url"])
        poll_until(
            lambda: admin.state()["time_ns"] >= parse_time("2024-03-09T06:00:00Z"), timeout_s=120, what="Saturday"
        )
        admin.fault("stream", action="reset", stream="pricing")
        poll_until(
            lambda: (d := _decided(host)) and market_days(min(d), max(d) + H1) >= 14.2,
            timeout_s=240,
            what="14.2 market days decided",
        )
        decided = _decided(host)
        skips = host.journal("risk.skip")
        intents = host.journal("risk.intent")
    permitted = min(
        {e["body"]["bar_ts"] for e in skips if e["body"]["reason"] not in ("no_permit", "not_ready")}
        | {e["body"]["bar_ts"] for e in intents}
    )
    backtest = run_cli(
        "backtest", "--set", data, "--set", f"broker.emulator.start={json.dumps(END)}",
        *[arg for rule in rules for arg in ("--set", rule)],
        "--from", format_rfc3339(permitted), "--to", format_rfc3339(max(decided) + H1),
        "--model", str(work / "model"), "--journal", "all", "--quiet", "--out", str(work / "backtest"),
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    report = run_cli(
        "report",
        "--journal",
        str(work / "run" / "journal.sqlite"),
        "--backtest",
        str(work / "backtest"),
        "--out",
        str(work / "report"),
    )

    # Assert: every line PASS (slippage of simulated fills is not judged), exit 0, a passed verdict
    print(report.stdout, report.stderr)
    verdicts = {line["key"]: line for line in json.loads((work / "report" / "report.json").read_text())["lines"]}
    assert {k: v["verdict"] for k, v in verdicts.items()} == {
        "duration": "PASS",
        "win_rate": "PASS",
        "crashes": "PASS",
        "weekends": "PASS",
        "disconnections": "PASS",
        "memory": "PASS",
        "match": "PASS",
        "slippage": "NOT JUDGED",
        "latency": "PASS",
        "data_quality": "PASS",
    }, report.stdout
    assert report.returncode == 0


def test_the_readme_walk_throughs_two_minute_run_fails_duration_and_says_why(tmp_path: Path) -> None:
    # ~30 M15 bars of a shadow run at 300x, as the README's walk-through makes them
    from actors.core.domain import bar_id
    from actors.runtime.journal import Journal

    first = parse_time("2024-03-06T08:00:00Z")
    rows: list[tuple[str, dict[str, Any], str | None, int]] = [("host.started", {"mode": "shadow"}, None, 0)]
    for k in range(30):
        bar = first + k * 900 * 10**9
        body = {"instrument": "EUR_USD", "bar_ts": bar, "reason": "below_threshold", "p_up": 0.5}
        rows.append(("risk.skip", body, bar_id("EUR_USD", "M15", bar), k))
    for name, src in (("run", "risk"), ("bt", "backtest")):
        (tmp_path / name).mkdir()
        journal = Journal(tmp_path / name / "journal.sqlite", src=src)
        done = {"granularity": "M15", "model_version": "m", "instruments": ["EUR_USD"], "journal": "all"}
        journal.write_many(rows if name == "run" else [*rows[1:], ("backtest.completed", done, None, 99)])
        journal.close()

    res = run_cli(
        "report", "--journal", str(tmp_path / "run" / "journal.sqlite"), "--backtest", str(tmp_path / "bt"),
        "--out", str(tmp_path / "r"),
    )  # fmt: skip

    assert res.returncode == 1
    line = next(x for x in res.stdout.splitlines() if "duration" in x)
    assert line.startswith("FAIL  duration at least 14 market days: 0.3 market days decided")
    assert "fewer than --min-days 14" in line


# --- the go-live gate ---

LIVE = ['broker.kind="oanda"', 'broker.environment="live"', 'host.mode="live"']


def _live_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRADEHOST_CONFIRM_LIVE"}
    return {**env, "OANDA_TOKEN": "tradehost-emulator-dev-token", "OANDA_ACCOUNT_ID": "101-001-0000000-001", **extra}


def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def test_a_live_start_without_a_report_or_alert_mail_is_refused_in_one_line_before_anything_starts() -> None:
    run_dir = short_tmp_dir() / "run"
    overrides = [
        *LIVE,
        f"host.run_dir={json.dumps(str(run_dir))}",
        'broker.api_url="http://127.0.0.1:9"',  # nothing listens there: never a real broker
    ]

    res = run_cli("run", *_sets(overrides), env=_live_env(TRADEHOST_CONFIRM_LIVE="yes"))

    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith('tradehost: config error: broker.environment: "live" refused, missing: ')
    assert f"a passed `tradehost report` verdict ({run_dir}/report.json: no such file)" in res.stderr
    assert "alert mail (alerts.smtp_host is empty)" in res.stderr
    assert not run_dir.exists()


def _passed_report(work: Path, model_version: str) -> Path:
    """A verdict file that passed, written by ``tradehost report`` over a (hand-made) run on the model."""
    from actors.core.domain import bar_id
    from actors.runtime.journal import Journal

    first = parse_time("2024-03-06T10:00:00Z")
    rows: list[tuple[str, dict[str, Any], str | None, int]] = []
    for k in range(4):
        bar, corr = first + k * 900 * 10**9, bar_id("EUR_USD", "M15", first + k * 900 * 10**9)
        rows += [
            ("md.bar", {"instrument": "EUR_USD", "bar_ts": bar}, corr, k * 10),
            ("model.signal", {"instrument": "EUR_USD", "bar_ts": bar, "p_up": 0.9, "model_version": model_version},
             corr, k * 10 + 1),
            ("risk.intent", {"intent_id": f"i{k}", "instrument": "EUR_USD", "direction": "long", "bar_ts": bar},
             corr, k * 10 + 2),
            ("exec.sending", {"intent_id": f"i{k}", "instrument": "EUR_USD"}, corr, k * 10 + 3),
            ("exec.filled", {"intent_id": f"i{k}", "trade_id": str(k), "slippage_pips": 0.2}, corr, k * 10 + 4),
            ("exec.closed", {"trade_id": str(k), "reason": "take_profit", "realized_pl": "5.0"}, corr, k * 10 + 5),
        ]  # fmt: skip
    for name, src in (("run", "risk"), ("bt", "backtest")):
        (work / name).mkdir()
        journal = Journal(work / name / "journal.sqlite", src=src)
        done = {"granularity": "M15", "model_version": model_version, "instruments": ["EUR_USD"], "journal": "all"}
        journal.write_many(
            [("host.started", {"mode": "shadow"}, None, 0), *rows]
            if name == "run"
            else [*rows, ("backtest.completed", done, None, 99)]
        )
        journal.close()
    res = run_cli(
        "report", "--journal", str(work / "run" / "journal.sqlite"), "--backtest", str(work / "bt"),
        "--out", str(work / "report"), "--min-days", "0.01", "--min-trades", "4",
        "--allow-unobserved", "weekends", "--allow-unobserved", "disconnections", "--allow-unobserved", "memory",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    return work / "report" / "report.json"


def test_a_live_start_with_a_passed_report_and_alert_mail_asks_the_confirmation_last_then_starts() -> None:
    # Arrange: a passed verdict on the configured (test) model, alert mail, a standalone emulator
    from actors.broker.emulator import EmulatorOptions, running_emulator

    work = short_tmp_dir("thgo")
    model = ensure_test_model()
    version = json.loads((model / "model.json").read_text())["version"]
    verdict = _passed_report(work, version[:12])
    mail = [
        'alerts.smtp_host="127.0.0.1"', "alerts.smtp_port=9", 'alerts.security="none"',
        'alerts.sender="host@example.com"', 'alerts.recipients=["ops@example.com"]',
    ]  # fmt: skip
    with running_emulator(EmulatorOptions(port=0, speed=60.0, start="2024-03-06T10:00:00Z")) as (url, _admin):
        overrides = [
            *FAST,
            *LIVE,
            *mail,
            f"broker.api_url={json.dumps(url)}",
            f"model.dir={json.dumps(str(model))}",
            f"host.go_live_report={json.dumps(str(verdict))}",
        ]

        # Act 1: everything but the operator's confirmation
        unconfirmed = run_cli(
            "run", *_sets([*overrides, f"host.run_dir={json.dumps(str(work / 'refused'))}"]), env=_live_env()
        )

        # Act 2: confirmed: the host starts in live mode against the emulator
        with running_host(overrides, env=_live_env(TRADEHOST_CONFIRM_LIVE="yes"), run_dir=work / "run") as host:
            status = host.status()

    # Assert
    assert unconfirmed.returncode == 2
    assert unconfirmed.stderr == (
        'tradehost: config error: broker.environment: "live" needs TRADEHOST_CONFIRM_LIVE=yes in the environment '
        "(the last step)\n"
    )
    assert status["mode"] == "live" and status["state"] == "TRADING"
    assert status["broker"]["api_url"] == url


def test_a_report_on_another_model_or_too_old_is_refused_by_the_live_gate() -> None:
    work = short_tmp_dir("thgo")
    model = ensure_test_model()
    verdict_path = _passed_report(work, "0123456789ab")
    old = json.loads(verdict_path.read_text())
    old["written_ns"] -= 31 * 86_400 * 10**9
    aged = work / "aged.json"
    aged.write_text(json.dumps(old))
    common = [*LIVE, 'broker.api_url="http://127.0.0.1:9"', 'alerts.smtp_host="127.0.0.1"',
              'alerts.sender="host@example.com"', 'alerts.recipients=["ops@example.com"]',
              f"model.dir={json.dumps(str(model))}"]  # fmt: skip

    other = run_cli("run", *_sets([*common, f"host.go_live_report={json.dumps(str(verdict_path))}"]), env=_live_env())
    stale = run_cli("run", *_sets([*common, f"host.go_live_report={json.dumps(str(aged))}"]), env=_live_env())

    assert other.returncode == 2 and stale.returncode == 2
    assert "a report on the configured model" in other.stderr and "names 0123456789ab" in other.stderr
    assert "a report younger than host.max_report_age_days = 30" in stale.stderr
    assert "31.0 days old" in stale.stderr


# --- ctl status | head ---


def test_ctl_status_into_a_pipe_closed_early_prints_no_traceback(host: Host) -> None:
    # The reader goes away before the status is written, as `| head` does after its lines.
    proc = subprocess.Popen(
        [*tradehost_cmd(), "ctl", "-c", str(REPO / "conf/default.toml"), *host.set_args, "status"],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()
    started = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 30
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 0
