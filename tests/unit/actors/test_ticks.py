"""Tick validation (``actors.core.ticks``): every rule at prices and ATRs an operator sees.

EUR_USD around 1.0850 with an M15 ATR of 0.0009 (9 pips: the jump bound is 45 pips), USD_JPY
around 149.50 with an M15 ATR of 0.10 (the bound is 0.50 yen). The emulator's ``bad_tick``
spike multiplies bid and ask by 1.05: 543 pips of EUR_USD, 7.5 yen of USD_JPY.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.core.config import FeedConfig, TickValidationConfig
from actors.core.ticks import (
    REJECTION_LOG_PERIOD_S,
    BarSpan,
    RejectionLog,
    TickGuard,
    TickReason,
    TickVerdict,
    jump_bound,
    quote_problem,
)

pytestmark = pytest.mark.unit

NS = 1_000_000_000
T0 = 1_709_733_600 * NS  # 2024-03-06T14:00:00Z, a Wednesday
CONFIG = TickValidationConfig()
EUR_ATR = Decimal("0.0009")
JPY_ATR = Decimal("0.10")


def d(text: str) -> Decimal:
    return Decimal(text)


class Feed:
    """Drives one ``TickGuard`` as the feed does (ATR, stream time and bar close held here)."""

    def __init__(
        self,
        atr: Decimal | None = EUR_ATR,
        reference: Decimal | None = None,
        config: TickValidationConfig = CONFIG,
    ) -> None:
        self.guard = TickGuard(config)
        self.atr = atr
        self.reference = reference
        self.stream_ts: int | None = None
        self.now_s = 100.0
        self.bar: BarSpan | None = None  # the newest validated bar (the second source of a level shift)
        self.session: int | None = None  # when the market's current session began

    def tick(self, bid: str, ask: str, ts: int) -> TickVerdict:
        verdict = self.guard.check(
            bid=d(bid),
            ask=d(ask),
            ts=ts,
            atr=self.atr,
            stream_ts=self.stream_ts,
            reference_mid=self.reference,
            now_s=self.now_s,
            bar=self.bar,
            session_start_ns=self.session,
        )
        if verdict.ok:
            self.stream_ts = ts if self.stream_ts is None else max(self.stream_ts, ts)
        self.now_s += 0.5
        return verdict


def anchored_eur() -> Feed:
    feed = Feed(reference=d("1.08500"))
    assert feed.tick("1.08495", "1.08507", T0).ok
    return feed


# --- One quote ----------------------------------------------------------------------------------


def test_an_ordinary_eur_usd_tick_passes_and_becomes_the_reference() -> None:
    feed = anchored_eur()
    assert feed.tick("1.08512", "1.08524", T0 + NS).ok
    assert feed.guard.anchor is not None and feed.guard.anchor.mid == d("1.08518")


@pytest.mark.parametrize(
    ("bid", "ask", "reason"),
    [
        ("NaN", "1.08507", TickReason.NOT_FINITE),
        ("1.08495", "Infinity", TickReason.NOT_FINITE),
        ("0", "0", TickReason.NON_POSITIVE),  # the emulator's "zero" bad tick
        ("-1.08495", "1.08507", TickReason.NON_POSITIVE),
        ("1.08519", "1.08495", TickReason.CROSSED),  # the emulator's "crossed": bid above ask
    ],
)
def test_a_broken_quote_is_refused_with_its_reason(bid: str, ask: str, reason: TickReason) -> None:
    feed = anchored_eur()
    verdict = feed.tick(bid, ask, T0 + NS)
    assert (verdict.ok, verdict.reason) == (False, reason)
    assert quote_problem(d(bid), d(ask)) is not None
    assert feed.guard.anchor is not None and feed.guard.anchor.mid == d("1.08501")  # unchanged


def test_a_locked_quote_with_bid_equal_to_ask_passes() -> None:
    assert anchored_eur().tick("1.08500", "1.08500", T0 + NS).ok


def test_the_emulators_five_percent_spike_of_eur_usd_is_a_jump_and_the_next_good_tick_passes() -> None:
    feed = anchored_eur()
    spike = feed.tick("1.13920", "1.13932", T0 + NS)  # x 1.05
    assert (spike.ok, spike.reason) == (False, TickReason.JUMP)
    assert "ATR" in spike.detail and "1.08501" in spike.detail
    assert feed.tick("1.08503", "1.08515", T0 + 2 * NS).ok
    assert feed.guard.anchor is not None and feed.guard.anchor.mid == d("1.08509")


def test_a_usd_jpy_spike_is_measured_in_its_own_atr() -> None:
    feed = Feed(atr=JPY_ATR, reference=d("149.500"))
    assert feed.tick("149.494", "149.506", T0).ok
    assert feed.tick("149.880", "149.892", T0 + NS).ok  # 0.39 yen: 3.9 ATR
    verdict = feed.tick("150.500", "150.512", T0 + 2 * NS)  # another 0.62 yen: 6.2 ATR
    assert (verdict.ok, verdict.reason) == (False, TickReason.JUMP)
    assert "6.2 ATR" in verdict.detail


def test_the_jump_bound_is_five_atrs_by_default_and_one_percent_before_an_atr_exists() -> None:
    assert jump_bound(d("1.08500"), EUR_ATR, CONFIG)[0] == d("0.0045")
    assert jump_bound(d("149.50"), None, CONFIG)[0] == d("1.4950")
    assert jump_bound(d("149.50"), Decimal(0), CONFIG)[0] == d("1.4950")  # a flat history has no ATR
    assert FeedConfig().max_tick_jump_atr == 5.0 and FeedConfig().max_tick_jump_fraction == 0.01


def test_without_an_atr_the_relative_bound_refuses_the_spike_but_not_a_large_real_move() -> None:
    feed = Feed(atr=None, reference=d("149.500"))
    assert feed.tick("149.494", "149.506", T0).ok
    assert feed.tick("150.880", "150.892", T0 + NS).ok  # 0.92 %
    verdict = feed.tick("158.424", "158.437", T0 + 2 * NS)  # the 5 % spike
    assert (verdict.ok, verdict.reason) == (False, TickReason.JUMP)
    assert "no ATR yet" in verdict.detail


# --- Time ---------------------------------------------------------------------------------------


def test_a_tick_older_than_the_last_accepted_one_is_stale_and_one_at_the_same_time_passes() -> None:
    feed = anchored_eur()
    assert feed.tick("1.08498", "1.08510", T0 + 10 * NS).ok
    verdict = feed.tick("1.08499", "1.08511", T0 + 9 * NS)
    assert (verdict.ok, verdict.reason) == (False, TickReason.STALE)
    assert feed.tick("1.08500", "1.08512", T0 + 10 * NS).ok


def test_a_time_at_or_before_the_epoch_is_impossible() -> None:
    verdict = anchored_eur().tick("1.08498", "1.08510", 0)
    assert (verdict.ok, verdict.reason) == (False, TickReason.STALE)
    assert "impossible" in verdict.detail


def test_a_tick_dated_days_after_the_streams_newest_time_is_refused_as_future() -> None:
    feed = anchored_eur()
    feed.stream_ts = T0 + 5 * NS  # a heartbeat
    verdict = feed.tick("1.08498", "1.08510", T0 + 3 * 86400 * NS)
    assert (verdict.ok, verdict.reason) == (False, TickReason.FUTURE)
    assert feed.tick("1.08498", "1.08510", T0 + 6 * NS).ok  # the stream's own time goes on
    assert feed.guard.anchor is not None and feed.guard.anchor.ts == T0 + 6 * NS


def test_future_prices_never_become_the_reference_however_many_come() -> None:
    feed = anchored_eur()
    for i in range(20):
        assert not feed.tick("1.08498", "1.08510", T0 + (2 * 86400 + i) * NS).ok
    assert feed.guard.anchor is not None and feed.guard.anchor.ts == T0


# --- Reference, level shifts, frozen prices --------------------------------------------------------


def test_the_first_tick_is_checked_against_the_last_bars_close() -> None:
    feed = Feed(reference=d("1.08500"))
    verdict = feed.tick("1.13920", "1.13932", T0)
    assert (verdict.ok, verdict.reason) == (False, TickReason.JUMP)
    assert "last bar's close" in verdict.detail
    assert feed.tick("1.08520", "1.08532", T0 + NS).ok


def test_without_any_reference_ticks_are_held_until_five_agree_and_the_fifth_is_published() -> None:
    feed = Feed(atr=None, reference=None)
    held = [feed.tick("1.08495", "1.08507", T0 + i * NS) for i in range(4)]
    assert all(not v.ok and v.reason is TickReason.UNCONFIRMED for v in held)
    fifth = feed.tick("1.08496", "1.08508", T0 + 4 * NS)
    assert fifth.ok and fifth.reanchored and fifth.previous_mid is None and fifth.run == 5
    assert feed.tick("1.08497", "1.08509", T0 + 5 * NS) == TickVerdict(ok=True)


def test_a_spike_among_the_first_ticks_never_becomes_the_reference() -> None:
    feed = Feed(atr=None, reference=None)
    prices = [("1.13920", "1.13932"), *[("1.08495", "1.08507")] * 4]
    verdicts = [feed.tick(bid, ask, T0 + i * NS) for i, (bid, ask) in enumerate(prices)]
    assert not any(v.ok for v in verdicts)  # the spike started a run the good ticks broke
    assert feed.tick("1.08495", "1.08507", T0 + 5 * NS).ok
    assert feed.guard.anchor is not None and feed.guard.anchor.mid == d("1.08501")


def test_a_weekend_gap_of_100_pips_is_accepted_after_five_agreeing_ticks() -> None:
    feed = anchored_eur()  # Friday's last price
    sunday = T0 + 2 * 86400 * NS
    feed.stream_ts = sunday  # heartbeats went on through the weekend
    feed.session = sunday - NS  # the market opened again: a gap over the closure is expected
    refused = [feed.tick("1.09495", "1.09515", sunday + i * NS) for i in range(4)]
    assert [v.reason for v in refused] == [TickReason.JUMP] * 4
    fifth = feed.tick("1.09490", "1.09510", sunday + 4 * NS)
    assert fifth.ok and fifth.reanchored and fifth.previous_mid == d("1.08501") and fifth.reason is TickReason.JUMP
    assert feed.tick("1.09488", "1.09508", sunday + 5 * NS) == TickVerdict(ok=True)


def test_a_held_spike_within_a_session_never_re_anchors_while_the_bars_do_not_show_it() -> None:
    # The stream sends only a 5 % spike of EUR_USD, at a new time each, for minutes; the broker's
    # candles (validated bars) stay at the real level.
    feed = anchored_eur()
    feed.session = T0 - 3600 * NS
    feed.bar = BarSpan(T0 + 900 * NS, d("1.08440"), d("1.08560"))
    verdicts = [feed.tick("1.13920", "1.13932", T0 + i * NS) for i in range(1, 600)]
    assert not any(v.ok for v in verdicts)
    assert feed.guard.anchor is not None and feed.guard.anchor.mid == d("1.08501")


def test_a_real_move_within_a_session_re_anchors_once_a_bar_shows_it() -> None:
    feed = anchored_eur()
    feed.session = T0 - 3600 * NS
    feed.bar = BarSpan(T0, d("1.08440"), d("1.08560"))  # the bar before the move
    level = ("1.09495", "1.09515")  # 100 pips up, 12 ATRs
    assert not any(feed.tick(*level, T0 + i * NS).ok for i in range(1, 10))
    _confirmed_by_a_bar(feed, "1.09505", T0 + 900 * NS)  # the bar that closed after the move shows it
    moved = feed.tick(*level, T0 + 901 * NS)
    assert moved.ok and moved.reanchored


def test_repeated_single_spikes_between_good_ticks_are_never_published() -> None:
    feed = anchored_eur()
    for i in range(1, 50):
        spike = feed.tick("1.13920", "1.13932", T0 + (2 * i) * NS)
        assert not spike.ok and spike.reason is TickReason.JUMP
        assert feed.tick("1.08495", "1.08507", T0 + (2 * i + 1) * NS).ok


def test_spikes_that_disagree_with_each_other_never_re_anchor() -> None:
    feed = anchored_eur()
    for i in range(1, 40):
        bid = "1.13920" if i % 2 else "1.03080"  # +5 %, -5 %: 10 % apart
        ask = "1.13932" if i % 2 else "1.03092"
        assert not feed.tick(bid, ask, T0 + i * NS).ok
    assert feed.guard.anchor is not None and feed.guard.anchor.mid == d("1.08501")


def _confirmed_by_a_bar(feed: Feed, level_mid: str, end_ns: int) -> None:
    # A validated bar that closed after the run began and shows the new level.
    feed.bar = BarSpan(end_ns, d(level_mid) - d("0.0004"), d(level_mid) + d("0.0002"))


def test_a_run_that_goes_back_in_time_starts_again() -> None:
    feed = anchored_eur()
    _confirmed_by_a_bar(feed, "1.09505", T0 + 20 * NS)
    level = ("1.09495", "1.09515")
    times = [10, 11, 12, 5, 6, 7, 8, 9]  # the 4th goes back: it starts a new run, which ends at 9
    verdicts = [feed.tick(*level, T0 + t * NS) for t in times]
    assert not any(v.ok for v in verdicts[:-1])
    assert verdicts[-1].ok and verdicts[-1].reanchored and verdicts[-1].run == 5


def test_broken_quotes_inside_a_run_neither_count_nor_break_it() -> None:
    feed = anchored_eur()
    _confirmed_by_a_bar(feed, "1.09505", T0 + 20 * NS)
    level = ("1.09495", "1.09515")
    for i in range(3):
        assert not feed.tick(*level, T0 + (10 + i) * NS).ok
    assert feed.tick("0", "0", T0 + 13 * NS).reason is TickReason.NON_POSITIVE
    assert not feed.tick(*level, T0 + 14 * NS).ok  # the 4th of the run
    assert feed.tick(*level, T0 + 15 * NS).reanchored


def test_a_reference_dated_too_late_is_replaced_by_a_run_of_current_ticks() -> None:
    feed = anchored_eur()
    _confirmed_by_a_bar(feed, "1.08506", T0 + 3700 * NS)
    feed.stream_ts = T0 + 3600 * NS
    assert feed.tick("1.08498", "1.08510", T0 + 7200 * NS).ok  # an hour ahead: within the bound
    refused = [feed.tick("1.08500", "1.08512", T0 + (3601 + i) * NS) for i in range(4)]
    assert [v.reason for v in refused] == [TickReason.STALE] * 4
    assert feed.tick("1.08500", "1.08512", T0 + 3605 * NS).reanchored


def test_an_instrument_refusing_every_price_counts_as_frozen_until_one_passes() -> None:
    feed = anchored_eur()
    feed.now_s = 0.0
    for i in range(30):  # spikes twice a second, disagreeing: never re-anchored
        feed.tick("1.13920" if i % 2 else "1.03080", "1.13932" if i % 2 else "1.03092", T0 + (i + 1) * NS)
    assert feed.guard.rejecting_for(feed.now_s, recent_s=10.0) == pytest.approx(15.0)
    assert feed.tick("1.08495", "1.08507", T0 + 40 * NS).ok
    assert feed.guard.rejecting_for(feed.now_s, recent_s=10.0) is None


def test_a_spike_followed_by_silence_is_quiet_not_frozen() -> None:
    feed = anchored_eur()
    feed.now_s = 0.0
    assert not feed.tick("1.13920", "1.13932", T0 + NS).ok
    assert feed.guard.rejecting_for(5.0, recent_s=10.0) == pytest.approx(5.0)
    assert feed.guard.rejecting_for(30.0, recent_s=10.0) is None  # nothing since: the market is quiet


# --- The journal's rate limit -------------------------------------------------------------------------


def test_the_first_rejection_of_each_reason_is_journaled_at_once_and_the_rest_as_counts() -> None:
    log = RejectionLog(REJECTION_LOG_PERIOD_S, now_s=0.0)
    assert log.record("EUR_USD", "jump", 1.0) == {"jump": 1}
    assert log.record("EUR_USD", "jump", 2.0) is None
    assert log.record("USD_JPY", "jump", 2.5) == {"jump": 1}  # per instrument
    assert log.record("EUR_USD", "crossed", 3.0) == {"jump": 1, "crossed": 1}  # since the last row
    for t in range(10):
        assert log.record("EUR_USD", "jump", 4.0 + t) is None
    assert log.due(59.0) == []
    assert log.due(61.0) == [("EUR_USD", {"jump": 10})]
    assert log.due(62.0) == []
    assert log.record("EUR_USD", "jump", 70.0) == {"jump": 1}  # a new period: the first again


def test_the_counts_of_all_rows_add_up_to_every_rejection() -> None:
    log = RejectionLog(10.0, now_s=0.0)
    reasons = ["jump", "crossed", "stale", "jump", "non_positive"]
    total: dict[str, int] = {}
    rows: list[dict[str, int]] = []
    for i in range(500):
        reason = reasons[i % len(reasons)]
        total[reason] = total.get(reason, 0) + 1
        counts = log.record("GBP_USD", reason, i * 0.1)
        if counts is not None:
            rows.append(counts)
        rows.extend(c for _, c in log.due(i * 0.1))
    rows.extend(c for _, c in log.due(1000.0))
    summed: dict[str, int] = {}
    for counts in rows:
        for reason, n in counts.items():
            summed[reason] = summed.get(reason, 0) + n
    assert summed == total
    assert len(rows) <= 6 * (4 + 1)  # per period: one row per reason and one summary


def test_a_burst_of_copies_of_one_spike_counts_once_and_never_re_anchors() -> None:
    feed = anchored_eur()
    for _ in range(20):  # the same bad line repeated, all at one moment
        assert not feed.tick("1.13920", "1.13932", T0 + NS).ok
    assert feed.guard.anchor is not None and feed.guard.anchor.mid == d("1.08501")
