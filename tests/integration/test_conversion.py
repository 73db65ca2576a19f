"""A configuration whose prices cannot value a trade in the account currency is refused at start
(issue 16, defect 10): EUR_GBP on a USD account without GBP_USD (or USD_GBP) would size nothing
and skip every signal as ``no_conversion_rate``, silently, for as long as the host ran."""

from __future__ import annotations

import pytest

from tests.conftest import FAST
from tests.helpers import poll_until, running_host

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

# The embedded emulator offers EUR_GBP beside the default instruments.
_OFFERED = ['broker.emulator.instruments=["EUR_USD", "GBP_USD", "USD_JPY", "EUR_GBP"]']


def test_eur_gbp_on_a_usd_account_without_gbp_usd_is_refused_at_start_naming_the_pair() -> None:
    # Arrange: the emulator's account is in USD; no configured price converts GBP into USD (neither
    # GBP_USD nor a cross such as EUR_GBP with EUR_USD).
    overrides = [*FAST, *_OFFERED, 'feed.instruments=["EUR_GBP", "USD_JPY"]']
    with running_host(overrides, wait=None) as host:
        # Act
        code = host.wait_exit(timeout_s=60)
        refused = [e["body"] for e in host.journal("host.refused")]
        states = [e["body"]["to"] for e in host.journal("state.changed")]
        said = [line for line in host.log_text().splitlines() if "GBP_USD" in line]

    # Assert: exit 2 (configuration refused) before any trading, one line naming the pair
    assert code == 2, host.log_text()[-3000:]
    assert "TRADING" not in states
    [body] = refused
    assert "EUR_GBP" in body["detail"] and "GBP_USD" in body["detail"] and "USD" in body["detail"]
    assert "\n" not in body["detail"]
    assert said and all("EUR_GBP" in line for line in said)


def test_eur_gbp_with_gbp_usd_configured_is_not_refused() -> None:
    # GBP_USD's price converts GBP into USD: the host reads the account and runs on.
    overrides = [*FAST, *_OFFERED, 'feed.instruments=["EUR_GBP", "USD_JPY", "GBP_USD"]']
    with running_host(overrides, wait=None) as host:
        # The account is read (its positions are in the status): the supervisor has seen its currency.
        status = poll_until(lambda: (s := host.status())["positions"] is not None and s, timeout_s=60)
        assert status["state"] in ("TRADING", "NO_TRADE")  # NO_TRADE: the test model has no EUR_GBP
        assert host.journal("host.refused") == []
        assert host.proc is not None and host.proc.poll() is None
