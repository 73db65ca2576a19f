"""Pure logic of the broker layer: precision, pacing, retries, time formats, config, credentials."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from actors.broker import MarketOrderRequest
from actors.broker.config import (
    DEV_ACCOUNT_ID,
    DEV_TOKEN,
    BrokerConfig,
    Credentials,
    check_live_guard,
    load_credentials,
)
from actors.broker.oanda.pacing import RateLimiter, Retrier, RetryPolicy
from actors.broker.oanda.precision import build_market_order, build_trade_orders, format_price, format_units
from actors.core.domain import Instrument
from actors.core.errors import BrokerRejectedError, BrokerTemporaryError, ConfigError
from actors.core.golive import GoLiveEvidence
from actors.core.timefmt import format_rfc3339, format_unix, parse_time

pytestmark = pytest.mark.unit

JPY = Instrument(
    name="USD_JPY", type="CURRENCY", display_precision=3, pip_location=-2, trade_units_precision=0,
    minimum_trade_size=Decimal(1), maximum_order_units=Decimal(100_000_000), margin_rate=Decimal("0.04"),
)  # fmt: skip
EUR = Instrument(
    name="EUR_USD", type="CURRENCY", display_precision=5, pip_location=-4, trade_units_precision=0,
    minimum_trade_size=Decimal(1), maximum_order_units=Decimal(100_000_000), margin_rate=Decimal("0.0333"),
)  # fmt: skip


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_prices_are_rounded_to_display_precision():
    assert format_price(Decimal("151.3724999"), JPY) == "151.372"
    assert format_price(Decimal("151.3725"), JPY) == "151.373"
    assert format_price(Decimal("1.12247999999999"), EUR) == "1.12248"
    assert format_price(Decimal("1.1"), EUR) == "1.10000"
    with pytest.raises(BrokerRejectedError):
        format_price(Decimal("-1"), EUR)


def test_units_round_toward_zero_and_keep_their_sign():
    assert format_units(Decimal("1000.9"), EUR) == "1000"
    assert format_units(Decimal("-2500.5"), EUR) == "-2500"
    with pytest.raises(BrokerRejectedError) as e:
        format_units(Decimal("0.4"), EUR)
    assert e.value.reason == "UNITS_INVALID"


def test_market_order_body_is_all_strings_and_has_client_extensions():
    body = build_market_order(
        MarketOrderRequest(
            instrument="USD_JPY", units=Decimal(-5000), client_id="i-1", trade_client_id="i-1-t",
            stop_loss=Decimal("151.8721"), take_profit=Decimal("150.8719"), price_bound=Decimal("151.3"),
        ),
        JPY,
    )  # fmt: skip
    order = body["order"]
    assert order["units"] == "-5000" and order["timeInForce"] == "FOK"
    assert order["stopLossOnFill"]["price"] == "151.872" and order["takeProfitOnFill"]["price"] == "150.872"
    assert order["priceBound"] == "151.300"
    assert order["clientExtensions"] == {"id": "i-1"} and order["tradeClientExtensions"] == {"id": "i-1-t"}


def test_trade_orders_body_sets_and_cancels():
    body = build_trade_orders(
        EUR, stop_loss=None, take_profit=Decimal("1.2"), cancel_stop_loss=True, cancel_take_profit=False
    )
    assert body == {"stopLoss": None, "takeProfit": {"price": "1.20000", "timeInForce": "GTC"}}
    with pytest.raises(BrokerRejectedError):
        build_trade_orders(EUR, stop_loss=None, take_profit=None, cancel_stop_loss=False, cancel_take_profit=False)


def test_rate_limiter_allows_a_burst_then_paces():
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        assert limiter.acquire() == 0.0
    for _ in range(10):
        limiter.acquire()
    assert clock.now == pytest.approx(1.0)
    # Over any window the count stays within rate x window + burst.
    clock.now += 100
    stamps = []
    for _ in range(50):
        limiter.acquire()
        stamps.append(clock.now)
    assert stamps[-1] - stamps[10] == pytest.approx(3.9)


def test_connection_limiter_paces_at_two_per_second():
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=2, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        limiter.acquire()
    assert clock.now == pytest.approx(2.0)


def test_retrier_retries_only_the_named_errors_with_growing_jittered_delays():
    clock = FakeClock()
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise BrokerTemporaryError("timeout")
        return "ok"

    retrier = Retrier(RetryPolicy(attempts=4, base_delay_s=0.1), sleep=clock.sleep, rng=random.Random(1))
    assert retrier.call(flaky) == "ok"
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.1 and 0 <= clock.sleeps[1] <= 0.2

    @retrier
    def rejected() -> None:
        calls.append(2)
        raise BrokerRejectedError("no", reason="X")

    with pytest.raises(BrokerRejectedError):
        rejected()
    assert calls.count(2) == 1


def test_retrier_gives_up_after_the_attempts():
    clock = FakeClock()
    retrier = Retrier(RetryPolicy(attempts=3, base_delay_s=1, max_delay_s=1.5), sleep=clock.sleep)
    with pytest.raises(BrokerTemporaryError):
        retrier.call(lambda: (_ for _ in ()).throw(BrokerTemporaryError("x")))
    assert len(clock.sleeps) == 2 and max(clock.sleeps) <= 1.5


def test_time_formats_round_trip_with_nanoseconds():
    ns = 1709649000412803517
    assert format_rfc3339(ns) == "2024-03-05T14:30:00.412803517Z"
    assert format_unix(ns) == "1709649000.412803517"
    assert parse_time("2024-03-05T14:30:00.412803517Z") == ns
    assert parse_time("1709649000.412803517") == ns
    assert parse_time("2019-06-20T00:00:00Z") == 1560988800 * 10**9
    assert parse_time("2024-03-05T15:30:00+01:00") == 1709649000 * 10**9
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_missing_credentials_give_one_clear_line():
    with pytest.raises(ConfigError) as e:
        load_credentials({"OANDA_ACCOUNT_ID": "101-1"})
    assert str(e.value).startswith("broker: OANDA_TOKEN is not set")
    dev = load_credentials({}, kind="emulator")
    assert dev.token == DEV_TOKEN and dev.account_id == DEV_ACCOUNT_ID


def test_credentials_never_show_the_token():
    creds = Credentials(token="abc-secret-xyz", account_id="101-1")  # noqa: S106 - fake
    assert "abc-secret-xyz" not in repr(creds) and "abc-secret-xyz" not in str(creds)
    assert creds.scrub("Bearer abc-secret-xyz failed") == "Bearer *** failed"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(creds)


def _ready() -> GoLiveEvidence:
    now = 1_800_000_000 * 10**9
    verdict = {"passed": True, "written_ns": now - 86_400 * 10**9, "model_version": "0123456789ab", "lines": []}
    return GoLiveEvidence(
        verdict_path="var/report.json",
        verdict=verdict,
        model_version="0123456789abcdef",
        smtp_host="mail.example.com",
        max_report_age_days=30.0,
        now_ns=now,
    )


def test_live_environment_needs_live_mode_and_confirmation():
    live = BrokerConfig(kind="oanda", environment="live")
    with pytest.raises(ConfigError):
        check_live_guard(live, "shadow", {"TRADEHOST_CONFIRM_LIVE": "yes"}, _ready())
    with pytest.raises(ConfigError):
        check_live_guard(live, "live", {}, _ready())
    check_live_guard(live, "live", {"TRADEHOST_CONFIRM_LIVE": "yes"}, _ready())
    check_live_guard(BrokerConfig(), "shadow", {})


def test_broker_config_fields_are_documented_and_validated():
    import dataclasses

    for f in dataclasses.fields(BrokerConfig):
        assert f.metadata.get("doc"), f.name
    with pytest.raises(ConfigError):
        BrokerConfig(kind="paper")
    with pytest.raises(ConfigError):
        BrokerConfig(api_url="http://x/")


def test_emulator_options_follow_the_config_and_the_credentials():
    from actors.broker.config import EmulatorConfig
    from actors.broker.emulator import options_from_config

    creds = load_credentials({}, kind="emulator")
    options = options_from_config(EmulatorConfig(seed=9, speed=60.0), creds)
    assert (options.seed, options.speed, options.token, options.account_id) == (9, 60.0, DEV_TOKEN, DEV_ACCOUNT_ID)


def test_a_url_override_pointing_at_oandas_live_hosts_needs_the_live_guard_too():
    sneaky = BrokerConfig(kind="oanda", environment="practice", api_url="https://api-fxtrade.oanda.com")
    with pytest.raises(ConfigError) as e:
        check_live_guard(sneaky, "live", {"TRADEHOST_CONFIRM_LIVE": "yes"}, _ready())
    assert any("broker.api_url" in p for p in e.value.problems)
    honest = BrokerConfig(kind="oanda", environment="live", api_url="https://api-fxtrade.oanda.com")
    check_live_guard(honest, "live", {"TRADEHOST_CONFIRM_LIVE": "yes"}, _ready())
    with pytest.raises(ConfigError):
        check_live_guard(honest, "live", {}, _ready())


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"verdict": None, "verdict_error": "no such file"},
         "a passed `tradehost report` verdict (var/report.json: no such file)"),
        ({"verdict": {"passed": False, "written_ns": 1_799_999_000 * 10**9, "model_version": "0123456789ab",
                      "lines": [{"key": "duration", "passed": False}, {"key": "crashes", "passed": True}]}},
         "a report that passed (var/report.json failed: duration)"),
        ({"verdict": {"passed": True, "written_ns": 1_800_000_000 * 10**9 - 31 * 86_400 * 10**9,
                      "model_version": "0123456789ab"}},
         "a report younger than host.max_report_age_days = 30 (var/report.json is 31.0 days old)"),
        ({"verdict": {"passed": True, "written_ns": 1_800_000_000 * 10**9, "model_version": "fedcba987654"}},
         "a report on the configured model 0123456789ab (var/report.json names fedcba987654)"),
        ({"model_version": None, "model_error": "no such file"},
         "the configured model's version (model.dir: no such file)"),
        ({"smtp_host": ""}, "alert mail (alerts.smtp_host is empty)"),
    ],
)  # fmt: skip
def test_the_go_live_gate_says_in_one_line_what_a_live_start_lacks(change: dict[str, object], words: str) -> None:
    import dataclasses

    live = BrokerConfig(kind="oanda", environment="live")
    evidence = dataclasses.replace(_ready(), **change)  # type: ignore[arg-type]

    with pytest.raises(ConfigError) as e:
        check_live_guard(live, "live", {"TRADEHOST_CONFIRM_LIVE": "yes"}, evidence)

    assert e.value.problems == [f'broker.environment: "live" refused, missing: {words}']


def test_the_operators_confirmation_is_asked_last() -> None:
    live = BrokerConfig(kind="oanda", environment="live")
    with pytest.raises(ConfigError) as e:
        check_live_guard(live, "live", {}, GoLiveEvidence(
            verdict_path="r.json", verdict=None, verdict_error="no such file", model_version=None,
            smtp_host="", max_report_age_days=30.0, now_ns=0,
        ))  # fmt: skip
    assert len(e.value.problems) == 1 and "TRADEHOST_CONFIRM_LIVE" not in e.value.problems[0]
    assert e.value.problems[0].endswith(
        "missing: a passed `tradehost report` verdict (r.json: no such file); alert mail (alerts.smtp_host is empty)"
    )
    with pytest.raises(ConfigError) as e:
        check_live_guard(live, "live", {}, _ready())
    assert e.value.problems == [
        'broker.environment: "live" needs TRADEHOST_CONFIRM_LIVE=yes in the environment (the last step)'
    ]
