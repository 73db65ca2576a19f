"""Against the real emulator: the REST health hook hears a hung API at its first timeout, client
hang-ups are quiet debug lines while real internal errors keep their traceback, and the emulator
serves on IPv6 loopback too."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from actors.broker.config import DEV_ACCOUNT_ID, DEV_TOKEN, BrokerConfig, Credentials
from actors.broker.emulator import EmulatorOptions, EmulatorServer, running_emulator
from actors.broker.emulator.streams import reset_socket
from actors.broker.oanda.client import OandaBroker
from actors.core.errors import BrokerTemporaryError
from tests.integration.emulator.conftest import START, Emu, poll_until

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SERVER_LOG = "actors.broker.emulator.server"


def test_the_health_hook_hears_a_hung_api_at_the_first_timeout_long_before_the_retries_end(emu: Emu):
    # Arrange: a 0.3 s timeout, the default retrier (4 attempts with backoff), every answer 5 s late.
    heard: list[tuple[float, bool, str]] = []
    t0 = time.monotonic()

    def hook(ok: bool, detail: str) -> None:
        heard.append((time.monotonic() - t0, ok, detail))

    broker = OandaBroker(
        BrokerConfig(kind="emulator", api_url=emu.url, timeout_s=0.3),
        Credentials(token=DEV_TOKEN, account_id=DEV_ACCOUNT_ID),
        on_request_outcome=hook,
    )
    assert broker.account_summary().id == DEV_ACCOUNT_ID
    emu.admin.fault("latency", seconds=5.0)
    try:
        # Act
        t0 = time.monotonic()
        heard.clear()
        with pytest.raises(BrokerTemporaryError):
            broker.account_summary()
        gave_up_s = time.monotonic() - t0
    finally:
        emu.admin.clear_faults()
        broker.close()

    # Assert: one failure per attempt; the first arrives after one timeout, not after all of them.
    assert [ok for _, ok, _ in heard] == [False] * 4, heard
    first_s, _, reason = heard[0]
    assert 0.25 <= first_s < 1.0, heard
    assert gave_up_s - first_s > 0.8 and first_s < gave_up_s / 2, (first_s, gave_up_s)
    assert "timed out" in reason.lower() and "\n" not in reason and DEV_TOKEN not in reason


def _raw_request(url: str, path: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {DEV_TOKEN}\r\n\r\n".encode())
    return sock


def test_a_client_that_hangs_up_before_the_answer_is_one_debug_line_not_a_traceback(
    emu: Emu, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger=SERVER_LOG)
    path = f"/v3/accounts/{DEV_ACCOUNT_ID}/summary"
    emu.admin.fault("latency", seconds=1.0, count=1)
    sock = _raw_request(emu.url, path)
    # The server has read the request and sits in the injected delay: now the client gives up (RST).
    poll_until(lambda: any(r["path"] == path for r in emu.admin.requests()))
    reset_socket(sock)

    hung_up = poll_until(lambda: [r for r in caplog.records if "hung up" in r.getMessage()])

    assert len(hung_up) == 1 and hung_up[0].levelno == logging.DEBUG and hung_up[0].exc_info is None
    assert path in hung_up[0].getMessage()
    noisy = [r for r in caplog.records if r.name.startswith("actors.broker.emulator") and r.levelno >= logging.WARNING]
    assert noisy == []
    assert emu.admin.state()["request_count"] >= 1  # and the emulator still serves


def test_a_real_internal_error_is_still_logged_at_error_level_with_its_traceback(caplog: pytest.LogCaptureFixture):
    with EmulatorServer(EmulatorOptions(start=START)) as server:

        def broken(method: str, path: str) -> None:
            raise RuntimeError("emulator bug")

        server.emulator.log_request = broken  # type: ignore[method-assign]
        request = urllib.request.Request(  # noqa: S310 - http to the loopback emulator
            f"{server.base_url}/v3/accounts/{DEV_ACCOUNT_ID}/summary", headers={"Authorization": f"Bearer {DEV_TOKEN}"}
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310 - http to the loopback emulator
        assert e.value.code == 500
        assert "RuntimeError" in json.loads(e.value.read())["errorMessage"]
        e.value.close()
    errors = [r for r in caplog.records if r.name == SERVER_LOG and r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "internal error" in errors[0].getMessage()


def test_the_emulator_serves_on_ipv6_loopback_and_the_broker_reaches_it():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with running_emulator(EmulatorOptions(host="::1", start=START)) as (url, admin):
        assert url.startswith("http://[::1]:")
        broker = OandaBroker(
            BrokerConfig(kind="emulator", api_url=url), Credentials(token=DEV_TOKEN, account_id=DEV_ACCOUNT_ID)
        )
        try:
            assert broker.account_summary().id == DEV_ACCOUNT_ID
        finally:
            broker.close()
        assert admin.state()["request_count"] == 1
