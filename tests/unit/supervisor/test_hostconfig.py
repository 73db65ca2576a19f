"""``HostConfig`` from the role registry, and the broker factory's shadow guard."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from actors.broker import MarketOrderRequest
from actors.broker.connect import ShadowGuard
from actors.core.config import FeedConfig, ReconcilerConfig
from actors.core.errors import BrokerTemporaryError, ConfigError, InvariantViolation
from supervisor.config import ROLE_SECTIONS, load_config
from supervisor.hostconfig import HostConfig
from tests.fakebroker import InMemoryBroker

pytestmark = pytest.mark.unit


def test_role_sections_come_from_the_registry_and_are_built_with_each_actors_config_class() -> None:
    cfg = load_config(None, ["feed.stale_after_s=12.5", "reconciler.poll_interval_s=2"])

    assert ROLE_SECTIONS == ("broker", "alerts", "watchdog", "reconciler", "feed", "model", "risk", "execution")
    feed = cfg.role_config("feed")
    assert isinstance(feed, FeedConfig) and feed.stale_after_s == 12.5
    assert cfg.section("reconciler", ReconcilerConfig).poll_interval_s == 2.0
    assert cfg.role_config("emulator") is cfg.broker.emulator
    assert cfg.role_config("risk") is cfg.roles["risk"]


def test_a_role_section_is_validated_like_any_other_with_its_dotted_key() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, ["feed.stale_after_s=0.1", "feed.colour=1"])

    assert any(p.startswith("feed.stale_after_s: 0.1 is below the minimum") for p in e.value.problems)
    assert any(p.startswith("feed.colour: unknown key") for p in e.value.problems)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["risk.exits_wait_s=30", "watchdog.decision_deadline_s=30"], "watchdog.decision_deadline_s"),
        (["reconciler.poll_interval_s=90", "watchdog.account_max_age_s=100"], "risk.intent_expiry_s"),
        (["reconciler.poll_interval_s=61"], "watchdog.account_max_age_s"),
        (["execution.max_intent_age_s=90", "broker.timeout_s=30"], "risk.intent_expiry_s"),
    ],
)
def test_a_deadline_shorter_than_the_wait_it_covers_is_refused(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)

    (problem,) = e.value.problems
    assert problem.startswith(f"{key}: must be longer than")


def test_deadlines_longer_than_their_waits_are_accepted() -> None:
    load_config(None, ["risk.exits_wait_s=29", "reconciler.poll_interval_s=59"])


def test_an_unknown_section_names_the_role_sections_among_the_known_ones() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, ["feeed.stale_after_s=3"])

    (problem,) = e.value.problems
    assert problem.startswith("feeed: unknown key") and "feed" in problem and "reconciler" in problem


def test_a_missing_role_config_is_an_error_never_a_silent_default() -> None:
    cfg = dataclasses.replace(HostConfig(), roles={})

    with pytest.raises(ConfigError, match="the configuration of role feed is missing"):
        cfg.role_config("feed")


def test_the_shadow_guard_reads_through_and_refuses_every_order_path_call() -> None:
    inner = InMemoryBroker()
    guard = ShadowGuard(inner)
    request = MarketOrderRequest(
        instrument="EUR_USD",
        units=Decimal(1000),
        client_id="abc",
        stop_loss=Decimal("1.0"),
        take_profit=Decimal("1.2"),
    )

    assert guard.account_summary() == inner.account_summary()
    for call in (
        lambda: guard.submit_market_order(request),
        lambda: guard.cancel_order("1"),
        lambda: guard.close_trade("1"),
        lambda: guard.set_trade_orders("1", stop_loss=Decimal("1.0")),
    ):
        with pytest.raises(InvariantViolation, match="shadow mode"):
            call()


def test_the_reconcilers_guard_reads_the_book_but_still_makes_a_rest_round_trip_to_the_real_account() -> None:
    # The REST API's health in shadow mode must be the broker's, not the book file's.
    real, book = InMemoryBroker(balance=Decimal(100_000)), InMemoryBroker(balance=Decimal(5_000))
    guard = ShadowGuard(real, reads=lambda: book)

    summary = guard.account_summary()

    assert summary.balance == Decimal(5_000)  # the book's account
    assert "account_summary" in real.calls  # and one real round trip
    real.fail_next(BrokerTemporaryError("timed out"))
    with pytest.raises(BrokerTemporaryError, match="timed out"):
        guard.account_summary()


def test_one_wrong_value_is_one_line_even_when_a_sections_own_check_also_sees_it() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, ["risk.min_probability=2", "risk.risk_per_trade=-1"])

    keys = [p.split(":", 1)[0] for p in e.value.problems]
    assert keys.count("risk.min_probability") == 1
    assert keys.count("risk.risk_per_trade") == 1
