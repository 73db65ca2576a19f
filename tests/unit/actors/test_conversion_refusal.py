"""Instruments whose quote currency the configured prices cannot convert into the account currency
are named at start (issue 16, defect 10): the rule ``tradehost run`` and ``tradehost backtest`` refuse
a configuration by, the same route ``quote_to_home`` takes at every decision."""

from __future__ import annotations

import pytest

from actors.core.money import conversion_refusal, quote_to_home

pytestmark = pytest.mark.unit

MIDS = {"EUR_USD": 1.0850, "GBP_USD": 1.2650, "USD_JPY": 149.80, "EUR_GBP": 0.8577, "EUR_JPY": 162.53}


def test_eur_gbp_on_a_usd_account_without_gbp_usd_is_refused_naming_the_pair_to_add():
    refusal = conversion_refusal(["EUR_GBP", "USD_JPY"], "USD")

    assert refusal.startswith("feed.instruments: EUR_GBP is quoted in GBP")
    assert "add GBP_USD (or USD_GBP)" in refusal and "account currency USD" in refusal
    assert "\n" not in refusal
    # What the host would meet at every decision: no factor for GBP.
    assert quote_to_home("GBP", "USD", {k: MIDS[k] for k in ("EUR_GBP", "USD_JPY")}) is None


@pytest.mark.parametrize(
    ("instruments", "home"),
    [
        (["EUR_GBP", "USD_JPY", "GBP_USD"], "USD"),  # direct
        (["EUR_GBP", "EUR_USD"], "USD"),  # across EUR: EUR_GBP inverted, then EUR_USD
        (["EUR_USD", "GBP_USD", "USD_JPY"], "USD"),  # the default configuration
        (["EUR_GBP", "EUR_JPY"], "EUR"),  # a EUR account: GBP and JPY are both EUR_xxx inverted
    ],
    ids=["direct", "cross", "default", "eur account"],
)
def test_a_configuration_whose_prices_convert_every_quote_currency_is_not_refused(instruments, home):
    assert conversion_refusal(instruments, home) == ""
    assert all(quote_to_home(n.split("_")[1], home, {k: MIDS[k] for k in instruments}) for n in instruments)


def test_every_unconvertible_quote_currency_is_named_once_with_its_instruments():
    refusal = conversion_refusal(["EUR_GBP", "AUD_JPY", "EUR_JPY"], "USD")

    assert refusal.count("; ") == 1
    assert "AUD_JPY, EUR_JPY are quoted in JPY" in refusal and "add JPY_USD (or USD_JPY)" in refusal
    assert "EUR_GBP is quoted in GBP" in refusal
