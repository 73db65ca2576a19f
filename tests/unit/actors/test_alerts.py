"""The pure alert path: ``[alerts]`` validation, the mail policy (dedup, hourly limit, digest,
recovery) and mail composition (subject, operator-ready body, no secret ever)."""

from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from actors.alerting.composition import (
    WITHHELD,
    MailContext,
    compose_mail,
    format_duration,
    make_mail,
    scrub,
)
from actors.alerting.config import ENV_SMTP_PASSWORD, AlertsConfig, load_smtp_password
from actors.alerting.desk import positions_of
from actors.alerting.policy import (
    AlertDecision,
    AlertEvent,
    AlertPolicy,
    CauseCleared,
    DecisionReason,
    Notice,
    NoticeKind,
)
from actors.core.errors import ConfigError
from actors.runtime.messages import AccountSnapshot, Reason, TradeView
from supervisor.config import build_section, documented_keys

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

S = 10**9
T0 = 1_780_000_000 * S  # 2026-05-28 ...
HOUR = 3600 * S
MAIL_ON: dict[str, Any] = {
    "smtp_host": "smtp.example.com",
    "sender": "host@example.com",
    "recipients": ["ops@example.com"],
}


def _build(data: dict[str, Any]) -> tuple[AlertsConfig, list[str]]:
    problems: list[str] = []
    cfg = build_section(AlertsConfig, data, "alerts", problems)
    return cfg, problems


def _mail_on(**kw: Any) -> AlertsConfig:
    return AlertsConfig(**{**MAIL_ON, "recipients": ("ops@example.com",), **kw})


def _raise(cause: str, t_ns: int, severity: str = "critical", detail: str = "it broke") -> AlertEvent:
    return AlertEvent(cause=cause, severity=severity, detail=detail, ts_ns=t_ns)


def _sends(decisions: list[AlertDecision]) -> list[AlertDecision]:
    return [d for d in decisions if d.send]


# --- [alerts] ------------------------------------------------------------------------------------


def test_the_default_section_is_valid_and_leaves_mail_off() -> None:
    cfg = AlertsConfig()

    assert not cfg.enabled
    assert cfg.security == "starttls"
    assert cfg.smtp_port == 587


def test_the_config_loader_builds_the_section_from_toml_values() -> None:
    cfg, problems = _build({**MAIL_ON, "recipients": ["a@example.com", "b@example.org"], "max_per_hour": 4})

    assert problems == []
    assert cfg.enabled
    assert cfg.recipients == ("a@example.com", "b@example.org")
    assert cfg.max_per_hour == 4


def test_every_key_of_the_section_is_documented() -> None:
    docs = documented_keys(AlertsConfig, "alerts")

    for key in ("smtp_host", "smtp_port", "security", "username", "sender", "recipients"):
        assert f"alerts.{key}" in docs
    assert ("alerts.dedup_window_s" in docs) and ("alerts.max_per_hour" in docs)
    assert all(doc for doc in docs.values()), docs
    # The password itself is never a key; password_file names the file it is read from (issue 19).
    assert [key for key in docs if "password" in key] == ["alerts.password_file"]


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"smtp_host": "smtp.example.com", "sender": "host@example.com"}, "alerts.recipients"),
        ({"smtp_host": "smtp.example.com", "recipients": ["ops@example.com"]}, "alerts.sender"),
        ({**MAIL_ON, "recipients": ["not an address"]}, "alerts.recipients[0]"),
        ({**MAIL_ON, "recipients": ["ops@example.com", "ops@example.com"]}, "alerts.recipients"),
        ({**MAIL_ON, "sender": "host@"}, "alerts.sender"),
        ({**MAIL_ON, "sender": "Host <host@example.com>"}, "alerts.sender"),
        ({**MAIL_ON, "recipients": ["ops@example.com\nBcc: evil@example.com"]}, "alerts.recipients[0]"),
        ({**MAIL_ON, "security": "tls"}, "alerts.security"),
        ({**MAIL_ON, "security": "ssl", "smtp_port": 587}, "alerts.smtp_port"),
        ({**MAIL_ON, "security": "starttls", "smtp_port": 465}, "alerts.smtp_port"),
        ({**MAIL_ON, "smtp_host": "smtp.example.com:587"}, "alerts.smtp_host"),
        ({**MAIL_ON, "smtp_port": 0}, "alerts.smtp_port"),
        ({**MAIL_ON, "max_per_hour": 0}, "alerts.max_per_hour"),
        ({**MAIL_ON, "retry_initial_s": 10.0, "retry_max_s": 1.0}, "alerts.retry_max_s"),
        ({**MAIL_ON, "security": "none", "smtp_port": 25, "username": "host"}, "alerts.username"),
        ({**MAIL_ON, "password": "hunter2"}, "alerts.password"),
    ],
)
def test_a_bad_section_is_refused_with_the_key_named(data: dict[str, Any], key: str) -> None:
    _cfg, problems = _build(data)

    assert any(p.startswith(f"{key}:") for p in problems), problems


def test_a_plain_login_is_allowed_on_loopback_only() -> None:
    _cfg, problems = _build({**MAIL_ON, "smtp_host": "127.0.0.1", "security": "none", "smtp_port": 25, "username": "u"})

    assert problems == []


def test_the_password_comes_only_from_the_environment_and_never_shows() -> None:
    cfg = _mail_on(username="host")

    password = load_smtp_password(cfg, {ENV_SMTP_PASSWORD: "s3cret-pw"})

    assert password is not None
    assert password.value == "s3cret-pw"
    assert "s3cret-pw" not in repr(password) + str(password) + repr(cfg)
    with pytest.raises(TypeError):
        pickle.dumps(password)


def test_a_login_without_the_password_variable_is_a_config_error() -> None:
    cfg = _mail_on(username="host")

    with pytest.raises(ConfigError) as info:
        load_smtp_password(cfg, {})

    assert info.value.problems[0].startswith("alerts.username:")
    assert ENV_SMTP_PASSWORD in info.value.problems[0]


def test_no_login_needs_no_password() -> None:
    assert load_smtp_password(AlertsConfig(), {ENV_SMTP_PASSWORD: "x"}) is None


# --- Dedup -------------------------------------------------------------------------------------


def test_the_first_alert_of_a_cause_is_sent() -> None:
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)

    [decision] = policy.on_alert(_raise("restart_intensity:feed", T0), T0)

    assert decision.send
    assert decision.reason is DecisionReason.NEW
    assert decision.notice is not None
    assert decision.notice.kind is NoticeKind.ALERT
    assert decision.notice.causes[0].cause == "restart_intensity:feed"


def test_repeats_within_the_window_are_counted_not_sent() -> None:
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)
    policy.on_alert(_raise("feed_stale", T0), T0)

    out = [policy.on_alert(_raise("feed_stale", T0 + i * S), T0 + i * S) for i in range(1, 4)]

    assert [d.reason for [d] in out] == [DecisionReason.DEDUP] * 3
    assert [d.repeats for [d] in out] == [1, 2, 3]
    assert not any(d.send for [d] in out)
    assert out[-1][0].journal_body() == {
        "decision": "suppress",
        "reason": "dedup",
        "cause": "feed_stale",
        "repeats": 3,
    }


def test_a_cause_still_raised_after_the_window_is_sent_again_with_its_count() -> None:
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)
    for i in range(5):
        policy.on_alert(_raise("feed_stale", T0 + i * S), T0 + i * S)

    [decision] = policy.on_alert(_raise("feed_stale", T0 + 601 * S), T0 + 601 * S)

    assert decision.send
    assert decision.reason is DecisionReason.REPEAT
    assert decision.repeats == 4
    assert decision.notice is not None
    summary = decision.notice.causes[0]
    assert (summary.raised, summary.since_ns, summary.last_ns) == (6, T0, T0 + 601 * S)


def test_a_higher_severity_breaks_through_the_dedup_window() -> None:
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)
    policy.on_alert(_raise("rss:model", T0, severity="warning"), T0)

    [same] = policy.on_alert(_raise("rss:model", T0 + S, severity="warning"), T0 + S)
    [worse] = policy.on_alert(_raise("rss:model", T0 + 2 * S, severity="critical"), T0 + 2 * S)

    assert not same.send
    assert worse.send
    assert worse.reason is DecisionReason.ESCALATED


def test_causes_are_deduplicated_independently() -> None:
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)
    policy.on_alert(_raise("restart:feed", T0), T0)

    [other] = policy.on_alert(_raise("restart:model", T0 + S), T0 + S)

    assert other.send


# --- Rate limit and digest ---------------------------------------------------------------------


def test_over_the_hourly_budget_alerts_are_held_and_go_out_as_one_digest() -> None:
    # Arrange: 3 mails an hour, 6 different causes in the first minute.
    policy = AlertPolicy(dedup_window_s=60, max_per_hour=3)
    first = [policy.on_alert(_raise(f"cause{i}", T0 + i * S), T0 + i * S) for i in range(6)]

    # Act: ticks up to the end of the hour, then one just past it.
    early = [d for t in range(10, 3600, 60) for d in policy.on_tick(T0 + t * S)]
    late = policy.on_tick(T0 + HOUR + S)

    # Assert
    assert [d.send for [d] in first] == [True, True, True, False, False, False]
    assert [d.reason for [d] in first[3:]] == [DecisionReason.RATE_LIMIT] * 3
    assert early == []
    [digest] = late
    assert digest.send
    assert digest.reason is DecisionReason.DIGEST
    assert digest.notice is not None
    assert digest.notice.kind is NoticeKind.DIGEST
    assert [c.cause for c in digest.notice.causes] == ["cause3", "cause4", "cause5"]
    assert digest.notice.held_since_ns == T0 + 3 * S
    assert policy.held() == ()


def test_the_hourly_budget_is_a_sliding_window() -> None:
    policy = AlertPolicy(dedup_window_s=60, max_per_hour=2)
    policy.on_alert(_raise("a", T0), T0)
    policy.on_alert(_raise("b", T0 + 1800 * S), T0 + 1800 * S)

    [held] = policy.on_alert(_raise("c", T0 + 3599 * S), T0 + 3599 * S)
    [released] = policy.on_tick(T0 + 3600 * S)

    assert not held.send
    assert released.send
    assert policy.budget(T0 + 3600 * S) == 0  # b is still inside the hour, c took the freed slot


def test_repeats_of_a_held_cause_do_not_add_mails() -> None:
    policy = AlertPolicy(dedup_window_s=1, max_per_hour=1)
    policy.on_alert(_raise("a", T0), T0)

    held = [policy.on_alert(_raise("b", T0 + i * S), T0 + i * S) for i in range(1, 30)]
    [released] = policy.on_tick(T0 + HOUR)

    assert all(not d.send and d.reason is DecisionReason.RATE_LIMIT for [d] in held)
    assert released.notice is not None
    assert released.notice.kind is NoticeKind.ALERT  # one held cause: its own mail, marked as held
    assert released.notice.causes[0].raised == 29
    assert released.repeats == 28  # the raises after the first held one


def test_a_new_alert_joins_what_is_held_instead_of_jumping_the_queue() -> None:
    policy = AlertPolicy(dedup_window_s=60, max_per_hour=1)
    policy.on_alert(_raise("a", T0), T0)
    policy.on_alert(_raise("b", T0 + S), T0 + S)

    # The budget has room again, but no tick has flushed b yet.
    [decision] = policy.on_alert(_raise("c", T0 + HOUR + S), T0 + HOUR + S)

    assert decision.send
    assert decision.notice is not None
    assert decision.notice.kind is NoticeKind.DIGEST
    assert [c.cause for c in decision.notice.causes] == ["b", "c"]


# --- Recovery ----------------------------------------------------------------------------------


def test_a_cleared_cause_gets_a_recovery_mail_with_its_duration() -> None:
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)
    policy.on_alert(_raise("feed_stale", T0), T0)
    policy.on_alert(_raise("feed_stale", T0 + 30 * S), T0 + 30 * S)

    [decision] = policy.on_cleared(CauseCleared(cause="feed_stale", ts_ns=T0 + 192 * S), T0 + 192 * S)

    assert decision.send
    assert decision.reason is DecisionReason.RESOLVED
    assert decision.notice is not None
    assert decision.notice.kind is NoticeKind.RECOVERY
    summary = decision.notice.causes[0]
    assert (summary.since_ns, summary.resolved_ns, summary.raised) == (T0, T0 + 192 * S, 2)
    mail = compose_mail(decision.notice, _context(state="TRADING"))
    assert mail.subject.endswith("TRADING: feed_stale resolved after 3 min 12 s")
    assert "Trading again." in mail.body
    assert mail.severity == "info"  # a full mail queue drops recoveries before alerts


def test_clearing_a_cause_that_is_not_raised_is_reported_not_mailed() -> None:
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)

    [decision] = policy.on_cleared(CauseCleared(cause="nothing", ts_ns=T0), T0)

    assert not decision.send
    assert decision.reason is DecisionReason.NOT_RAISED


def test_a_cause_that_clears_while_held_shows_as_resolved_in_the_digest() -> None:
    policy = AlertPolicy(dedup_window_s=60, max_per_hour=1)
    policy.on_alert(_raise("a", T0), T0)
    policy.on_alert(_raise("b", T0 + S), T0 + S)
    policy.on_alert(_raise("c", T0 + 2 * S), T0 + 2 * S)

    [cleared] = policy.on_cleared(CauseCleared(cause="b", ts_ns=T0 + 45 * S), T0 + 45 * S)
    [digest] = policy.on_tick(T0 + HOUR + S)

    assert not cleared.send
    assert cleared.reason is DecisionReason.RATE_LIMIT
    assert digest.notice is not None
    by_cause = {c.cause: c for c in digest.notice.causes}
    assert by_cause["b"].resolved_ns == T0 + 45 * S
    assert by_cause["c"].resolved_ns is None
    body = compose_mail(digest.notice, _context()).body
    assert "b (critical): resolved after 44 s" in body
    assert "c (critical): STILL FAILING since" in body


def test_a_flapping_cause_is_mailed_again_once_the_window_has_passed() -> None:
    # Arrange: raised, mailed, cleared (recovery mailed), back 10 s later.
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)
    policy.on_alert(_raise("feed_stale", T0), T0)
    policy.on_cleared(CauseCleared(cause="feed_stale", ts_ns=T0 + 20 * S), T0 + 20 * S)

    # Act
    [back] = policy.on_alert(_raise("feed_stale", T0 + 30 * S), T0 + 30 * S)
    quiet = policy.on_tick(T0 + 600 * S)
    [again] = policy.on_tick(T0 + 621 * S)

    # Assert: the operator last read "resolved"; once the window allows, they read the truth.
    assert not back.send
    assert back.reason is DecisionReason.DEDUP
    assert quiet == []
    assert again.send
    assert again.reason is DecisionReason.FAILING_AGAIN
    assert again.notice is not None
    assert again.notice.causes[0].since_ns == T0 + 30 * S


def test_ten_flaps_inside_the_window_give_one_alert_one_recovery_and_one_digest_after_it() -> None:
    # Arrange: ten raises of one cause, each cleared 2 s later, within 60 s.
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)
    decisions: list[AlertDecision] = []
    for i in range(10):
        t = T0 + i * 6 * S
        decisions += policy.on_alert(_raise("role_down:risk", t, severity="warning"), t)
        decisions += policy.on_cleared(CauseCleared(cause="role_down:risk", ts_ns=t + 2 * S), t + 2 * S)

    # Act
    early = policy.on_tick(T0 + 500 * S)
    [digest] = policy.on_tick(T0 + 607 * S)
    later = policy.on_tick(T0 + 2000 * S)

    # Assert: the alert and its recovery went out; the nine other raises, none lost, in one digest.
    sent = _sends(decisions)
    assert [d.notice.kind for d in sent if d.notice] == [NoticeKind.ALERT, NoticeKind.RECOVERY]
    assert {d.reason for d in decisions if not d.send} == {DecisionReason.DEDUP}
    assert early == [] and later == []
    assert digest.send and digest.reason is DecisionReason.FLAPPED
    assert digest.notice is not None and digest.notice.kind is NoticeKind.DIGEST
    assert digest.notice.causes[0].unmailed == 9
    mail = compose_mail(digest.notice, _context(state="TRADING"))
    assert mail.subject.endswith("TRADING: digest: role_down:risk raised 9 more times since the last mail")
    assert "resolved after" in mail.body


def test_a_flap_digest_over_the_budget_is_held_with_the_rest() -> None:
    policy = AlertPolicy(dedup_window_s=60, max_per_hour=2)
    policy.on_alert(_raise("x", T0), T0)
    policy.on_cleared(CauseCleared(cause="x", ts_ns=T0 + S), T0 + S)  # 2 mails: the budget is spent
    policy.on_alert(_raise("x", T0 + 2 * S), T0 + 2 * S)
    policy.on_cleared(CauseCleared(cause="x", ts_ns=T0 + 3 * S), T0 + 3 * S)

    held = policy.on_tick(T0 + 62 * S)
    waiting = policy.held()
    [out] = _sends(policy.on_tick(T0 + HOUR + S))

    assert _sends(held) == [] and waiting == ("x",) and policy.held() == ()
    assert out.notice is not None and out.notice.causes[0].unmailed == 1


def test_settled_causes_are_forgotten_after_the_window() -> None:
    policy = AlertPolicy(dedup_window_s=60, max_per_hour=10)
    policy.on_alert(_raise("x", T0), T0)
    policy.on_cleared(CauseCleared(cause="x", ts_ns=T0 + S), T0 + S)
    policy.on_tick(T0 + 62 * S)

    [decision] = policy.on_alert(_raise("x", T0 + 63 * S), T0 + 63 * S)

    assert decision.send
    assert decision.reason is DecisionReason.NEW


_op = st.one_of(
    st.tuples(st.just("raise"), st.sampled_from("abc"), st.sampled_from(["warning", "critical"])),
    st.tuples(st.just("clear"), st.sampled_from("abc"), st.just("")),
    st.tuples(st.just("tick"), st.just(""), st.just("")),
)


@settings(max_examples=300, deadline=None)
@example(
    ops=[(("raise", "a", "critical"), 0), (("clear", "a", ""), 5), (("raise", "a", "critical"), 5)],
    max_per_hour=4,
    window_s=900,
)
@given(
    ops=st.lists(st.tuples(_op, st.sampled_from([0, 1, 5, 59, 61, 600, 901, 1800, 3601])), max_size=60),
    max_per_hour=st.integers(min_value=1, max_value=4),
    window_s=st.sampled_from([1, 60, 900]),
)
def test_the_budget_always_holds_and_the_last_mail_about_each_cause_ends_up_true(
    ops: list[tuple[tuple[str, str, str], int]], max_per_hour: int, window_s: int
) -> None:
    policy = AlertPolicy(dedup_window_s=window_s, max_per_hour=max_per_hour)
    now = T0
    sends: list[int] = []
    active: set[str] = set()
    raised: set[str] = set()
    told: dict[str, bool] = {}  # cause -> the last mail said it was failing

    def take(decisions: list[AlertDecision], *, answered: bool = True) -> None:
        assert decisions or not answered  # every raise and clear gets a decision
        for d in decisions:
            if d.send:
                assert d.notice is not None
                sends.append(d.at_ns)
                for c in d.notice.causes:
                    told[c.cause] = c.resolved_ns is None

    for (op, cause, severity), gap_s in ops:
        now += gap_s * S
        if op == "raise":
            take(policy.on_alert(_raise(cause, now, severity), now))
            active.add(cause)
            raised.add(cause)
        elif op == "clear":
            take(policy.on_cleared(CauseCleared(cause=cause, ts_ns=now), now))
            active.discard(cause)
        else:
            take(policy.on_tick(now), answered=False)
    for _ in range(12):  # quiet hours: whatever is held or owed goes out
        now += HOUR + window_s * S
        take(policy.on_tick(now), answered=False)

    for i, t in enumerate(sends):
        assert len([u for u in sends[: i + 1] if u > t - HOUR]) <= max_per_hour
    assert policy.held() == ()
    assert set(told) == raised
    assert {c for c, failing in told.items() if failing} == active


# --- Composition -------------------------------------------------------------------------------


def _trade(
    instrument: str, units: str, price: str, *, sl: str | None = None, tp: str | None = None, upl: str = ""
) -> TradeView:
    # An open trade as the reconciler's snapshot sends it (and the mail shows it).
    return TradeView(
        trade_id="7", instrument=instrument, units=units, price=price, open_ts=T0, unrealized_pl=upl,  # type: ignore[arg-type]
        stop_loss=sl, take_profit=tp,
    )  # fmt: skip


def _context(state: str = "NO_TRADE", **kw: Any) -> MailContext:
    reasons = (
        Reason(
            code="restart_intensity:feed",
            detail="feed restarted 5 times in 60 s",
            latched=True,
            since_ns=T0,
        ),
    )
    base: dict[str, Any] = {
        "account_id": "101-001-0000000-001",
        "mode": "shadow",
        "state": state,
        "reasons": reasons if state == "NO_TRADE" else (),
    }
    return MailContext(**{**base, **kw})


def _alert_notice(cause: str = "restart_intensity:feed", detail: str = "feed restarted 5 times in 60 s") -> Notice:
    policy = AlertPolicy(dedup_window_s=600, max_per_hour=10)
    [decision] = policy.on_alert(_raise(cause, T0, detail=detail), T0 + 250 * S)
    assert decision.notice is not None
    return decision.notice


def test_the_subject_is_exactly_host_account_mode_state_and_cause() -> None:
    mail = compose_mail(_alert_notice(), _context())

    assert mail.subject == "[tradehost 101-001-0000000-001 shadow] NO_TRADE: restart_intensity:feed"


def test_the_body_tells_an_operator_what_happened_what_the_host_did_and_what_to_do() -> None:
    # Arrange
    context = _context(
        positions=(
            _trade("EUR_USD", "10000", "1.08450", sl="1.08000", tp="1.09000", upl="12.30"),
            _trade("USD_JPY", "-5000", "151.200"),
        ),
        daily_pnl=Decimal("-123.45"),
        currency="USD",
    )
    journal = [f"03:1{i}:00 supervisor role.restarted feed exit 70" for i in range(5)]

    # Act
    body = compose_mail(_alert_notice(), context, journal_lines=journal).body

    # Assert
    assert "feed restarted 5 times in 60 s" in body
    assert "Since 2026-05-28 20:26:40 UTC, 4 min 10 s before this mail." in body
    # A trade without stops is the first thing said, and no line claims stops it does not have.
    assert body.splitlines()[0] == "NO STOP AT THE BROKER: USD_JPY short 5000 @ 151.200 (no SL and no TP)"
    assert "No new trades; NOT EVERY OPEN TRADE HAS ITS SL/TP (see above)" in body
    assert "keep their broker-side SL/TP" not in body
    assert "Current state: NO_TRADE" in body
    assert "restart_intensity:feed (latched, needs `tradehost ctl resume`)" in body
    assert "EUR_USD long 10000 @ 1.08450, SL 1.08000, TP 1.09000, unrealized +12.30 USD" in body
    assert "USD_JPY short 5000 @ 151.200, NO SL AT THE BROKER, no TP" in body
    assert "Today's P&L: -123.45 USD" in body
    for command in ("tradehost ctl status", "tradehost ctl restart feed", "tradehost ctl resume"):
        assert command in body
    assert "tradehost ctl pause" not in body  # already not trading
    assert all(line in body for line in journal)


def test_a_mail_whose_trades_all_have_their_stops_says_so_and_starts_with_the_cause() -> None:
    context = _context(positions=(_trade("EUR_USD", "10000", "1.08450", sl="1.08000", tp="1.09000"),))

    body = compose_mail(_alert_notice(), context).body

    assert body.splitlines()[0] == "restart_intensity:feed (critical)"
    assert "No new trades; open trades keep their broker-side SL/TP" in body


def test_the_shutdown_mail_names_the_trades_without_a_stop_in_its_first_line() -> None:
    detail = "NO STOP VERIFIED AT THE BROKER: trade 7 EUR_USD 1000 (SL NONE, TP NONE; failed: HTTP 503)"
    notice = _alert_notice(cause="shutdown_unprotected", detail=detail)

    body = compose_mail(notice, _context(state="SHUTTING_DOWN")).body

    assert body.splitlines()[0] == detail


def _snapshot(*trades: TradeView, daily_pnl: str = "-12.50") -> AccountSnapshot:
    return AccountSnapshot(
        currency="USD", balance="1000", nav="1000", unrealized_pl="0", margin_used="0", open_trades=len(trades),
        pending_orders=0, last_transaction_id="9", ts=T0, trades=trades, daily_pnl=daily_pnl,
    )  # fmt: skip


def test_a_fractional_position_is_mailed_with_its_side_and_its_whole_size() -> None:
    # A CFD traded in tenths: 0.5 units long is neither "short" nor "0" (the mail once truncated
    # the units to an integer, and took the side from what was left).
    positions, pnl = positions_of(_snapshot(_trade("DE30_EUR", "0.5", "18250.1", sl="18100.0", tp="18400.0")))

    body = compose_mail(_alert_notice(), _context(positions=positions, daily_pnl=pnl, currency="EUR")).body

    assert "  DE30_EUR long 0.5 @ 18250.1, SL 18100.0, TP 18400.0" in body.splitlines()
    assert "Today's P&L: -12.50 EUR" in body


def test_a_snapshot_with_a_number_that_is_not_a_decimal_leaves_the_positions_unknown() -> None:
    assert positions_of(_snapshot(_trade("EUR_USD", "10000", "1.0845", upl="n/a"))) == (None, Decimal("-12.50"))
    assert positions_of(_snapshot(_trade("EUR_USD", "ten", "1.0845"))) == (None, Decimal("-12.50"))
    assert positions_of(None) == (None, None)


def test_unknown_positions_and_pnl_are_said_to_be_unknown() -> None:
    body = compose_mail(_alert_notice(), _context()).body

    assert "Open positions: unknown" in body
    assert "Today's P&L: unknown" in body


def test_while_trading_the_mail_says_so_and_offers_pause() -> None:
    body = compose_mail(_alert_notice("order_rejected:EUR_USD"), _context(state="TRADING")).body

    assert "Still trading" in body
    assert "tradehost ctl pause" in body
    assert "tradehost ctl restart" not in body  # EUR_USD is not a role


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ("PAUSED", "Paused by an operator: no new trades"),
        ("RECONCILING", "no new trades yet"),
        ("SHUTTING_DOWN", "Shutting down: no new trades"),
        ("STOPPED", "but nothing manages them"),
        ("UNKNOWN", "State unknown"),
    ],
)
def test_what_the_host_did_follows_the_state(state: str, said: str) -> None:
    body = compose_mail(_alert_notice(), _context(state=state)).body

    assert said in body
    assert f"Current state: {state}" in body


def test_only_the_last_journal_lines_are_included_and_long_lines_are_cut() -> None:
    lines = [f"line {i:03d} " + "x" * 1000 for i in range(50)]

    body = compose_mail(_alert_notice(), _context(), journal_lines=lines).body

    assert "line 029" not in body
    assert "line 030" in body and "line 049" in body
    assert "x" * 400 not in body


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Cc")), min_size=8, max_size=40),
    junk=st.text(max_size=30),
)
def test_no_secret_given_to_the_composer_appears_in_any_mail(secret: str, junk: str) -> None:
    # Arrange: the secret leaks into every input an alert source controls.
    leak = f"{junk}{secret}{junk}"
    policy = AlertPolicy(dedup_window_s=1, max_per_hour=1)
    [alert] = policy.on_alert(_raise(f"cause:{secret}", T0, detail=leak), T0)
    policy.on_alert(_raise("other", T0 + S, detail=leak), T0 + S)
    policy.on_alert(_raise("third", T0 + 2 * S, detail=leak), T0 + 2 * S)
    [digest] = policy.on_tick(T0 + HOUR + S)
    context = _context(
        account_id=f"acct-{secret}",
        reasons=(Reason(code="x", detail=leak, latched=False, since_ns=T0),),
    )
    notices = [alert.notice, digest.notice]

    # Act
    mails = [
        compose_mail(n, context, journal_lines=[leak, secret], secrets=[secret, "other-secret-value"])
        for n in notices
        if n is not None
    ]

    # Assert
    assert len(mails) == 2
    for mail in mails:
        assert secret not in mail.subject
        assert secret not in mail.body
        assert secret not in mail.cause


def test_a_secret_made_of_mask_characters_withholds_the_text() -> None:
    assert scrub("pw is aa*", ["a*"]) == WITHHELD
    assert scrub("token abc123 and abc123", ["abc123", ""]) == "token *** and ***"


def test_a_mail_has_one_line_subject_and_a_stable_safe_id() -> None:
    one = make_mail(subject="a\nBcc: x@example.com", body="b", created_ns=T0, cause="c")
    two = make_mail(subject="a\nBcc: x@example.com", body="b", created_ns=T0, cause="c")

    assert "\n" not in one.subject
    assert one.mail_id == two.mail_id
    assert one.mail_id.startswith(f"{T0:020d}-")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (0.9, "0 s"),
        (45, "45 s"),
        (60, "1 min"),
        (192, "3 min 12 s"),
        (3600, "1 h"),
        (7500, "2 h 5 min"),
        (90000, "1 d 1 h"),
        (172800, "2 d"),
        (-5, "0 s"),
    ],
)
def test_durations_read_like_an_operator_would_say_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
