"""The REST session of ``OandaBroker``: one request to OANDA (or the emulator), paced, bounded and
translated.

Base URLs other than OANDA's own (the emulator, a proxy) are registered as a new key of
oandapyV20's ``TRADING_ENVIRONMENTS`` (never overwriting "practice" or "live"); every request
passes ``request_params={"timeout": ...}``, waits for the request and new-connection pacing
(``actors.broker.oanda.pacing``), and is reported to the ``on_request_outcome`` hook; every failure
becomes the ``actors.core.errors`` hierarchy with ``raise ... from e`` (an order-path request whose
outcome is unknown is ambiguous, never temporary). Reads are retried through one ``Retrier``;
streams keep their connection open. The token never reaches a log line: oandapyV20's own records
are scrubbed too. ``actors.broker.oanda.client.OandaBroker`` builds the ``Broker``'s calls on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import oandapyV20
import oandapyV20.oandapyV20 as oanda_core  # noqa: N813 - the submodule shares the package name
import requests
from oandapyV20.exceptions import V20Error
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from actors.broker.config import BrokerConfig, Credentials, emulator_base_url
from actors.broker.oanda.pacing import RateLimiter, Retrier
from actors.broker.oanda.translate import error_from_status
from actors.core.domain import Instrument
from actors.core.errors import BrokerAmbiguousError, BrokerTemporaryError, ConfigError

__all__ = ["OandaSession", "register_environment"]


# The broker's log lines keep the one logger name of OandaBroker's module, whichever part logs.
log = logging.getLogger("actors.broker.oanda.client")
LOOKUP_DELAYS_S = (0.25, 0.5, 1.0)
MAX_OUTCOME_CHARS = 300

RequestOutcome = Callable[[bool, str], None]


class _ScrubSecrets(logging.Filter):
    """Removes registered tokens from oandapyV20's own log records (it logs exception texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(secret in message for secret in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, ()
        return True


_SCRUB = _ScrubSecrets()
logging.getLogger(oanda_core.__name__).addFilter(_SCRUB)


def register_environment(api_url: str, stream_url: str = "") -> str:
    """Register base URLs under a new ``TRADING_ENVIRONMENTS`` key and return the key."""
    stream_url = stream_url or api_url
    digest = hashlib.sha256(f"{api_url}|{stream_url}".encode()).hexdigest()[:12]
    key = f"tradehost-{digest}"
    oanda_core.TRADING_ENVIRONMENTS[key] = {"api": api_url, "stream": stream_url}
    return key


def _not_sent(e: requests.RequestException) -> bool:
    # Connection refused or connect timeout: the request never left this host.
    if isinstance(e, requests.ConnectTimeout):
        return True
    reason = getattr(e.args[0], "reason", None) if e.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_OUTCOME_CHARS]


def _api_unwell(status: int) -> bool:
    # 5xx and 429: the API did not serve the request; any other status is an answer.
    return status >= 500 or status == 429


REQUEST_BURST = 10.0


class OandaSession:
    """The REST session and its plumbing (constructed as ``OandaBroker``, which documents the
    arguments)."""

    def __init__(
        self,
        config: BrokerConfig,
        credentials: Credentials,
        *,
        api_url: str | None = None,
        stream_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        retrier: Retrier | None = None,
        lookup_delays_s: Sequence[float] = LOOKUP_DELAYS_S,
        on_request_outcome: RequestOutcome | None = None,
    ) -> None:
        self.config = config
        self._on_request_outcome = on_request_outcome
        self._credentials = credentials
        if credentials.token:
            _SCRUB.secrets.add(credentials.token)
        self.account_id = credentials.account_id
        url = api_url or config.api_url
        if not url and config.kind == "emulator":
            url = emulator_base_url(config.emulator)
        if url:
            self.environment = register_environment(url, stream_url or config.stream_url)
        elif config.kind == "oanda":
            self.environment = config.environment
        else:
            raise ConfigError("broker.api_url: no URL for the emulator")
        self._sleep = sleep
        self._retrier = retrier or Retrier(sleep=sleep, on_retry=self._log_retry)
        self._lookup_delays_s = tuple(lookup_delays_s)
        # Small buckets: rate + burst must stay under OANDA's 120 requests and 2 connections a second.
        self._requests = RateLimiter(config.max_requests_per_s, burst=REQUEST_BURST, clock=clock, sleep=sleep)
        self._connections = RateLimiter(config.max_new_connections_per_s, burst=1, clock=clock, sleep=sleep)
        self._lock = threading.Lock()
        self._api: oandapyV20.API | None = None
        self._instruments: dict[str, Instrument] = {}

    # Plumbing --------------------------------------------------------------------------------
    def _log_retry(self, attempt: int, error: BaseException, delay_s: float) -> None:
        log.warning("broker: retry %d in %.2fs after %s", attempt + 1, delay_s, self._scrub(str(error)))

    def _scrub(self, text: str) -> str:
        return self._credentials.scrub(text)

    def _new_api(self, timeout: float | tuple[float, float], extra: dict[str, Any] | None = None) -> oandapyV20.API:
        params: dict[str, Any] = {"timeout": timeout, **(extra or {})}
        return oandapyV20.API(access_token=self._credentials.token, environment=self.environment, request_params=params)

    def _client(self) -> oandapyV20.API:
        with self._lock:
            if self._api is None:
                self._connections.acquire()
                self._api = self._new_api(self.config.timeout_s)
            return self._api

    def _drop_client(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    def _report(self, ok: bool, detail: str) -> None:
        if self._on_request_outcome is None:
            return
        try:
            self._on_request_outcome(ok, "ok" if ok else _one_line(self._scrub(detail)))
        except Exception:  # a health hook must never break the request it reports on
            log.warning("broker: the on_request_outcome hook failed", exc_info=True)

    def _send(self, endpoint: Any, op: str, *, order_post: bool = False) -> dict[str, Any]:
        self._requests.acquire()
        api = self._client()
        try:
            response: Any = api.request(endpoint)
        except V20Error as e:
            error = error_from_status(e.code, str(e.msg), op=op, order_post=order_post, scrub=self._scrub)
            self._report(not _api_unwell(e.code), str(error))
            raise error from e
        except requests.RequestException as e:
            self._drop_client()
            text = self._scrub(f"{op}: {type(e).__name__}: {e}")
            self._report(False, text)
            if order_post and not _not_sent(e):
                raise BrokerAmbiguousError(text) from e
            raise BrokerTemporaryError(text) from e
        except ValueError as e:
            # A 2xx with a non-JSON body or an unexpected status code (oandapyV20 raises ValueError).
            text = self._scrub(f"{op}: unexpected answer: {e}")
            self._report(False, text)
            if order_post:
                raise BrokerAmbiguousError(text) from e
            raise BrokerTemporaryError(text) from e
        if not isinstance(response, dict):
            text = f"{op}: malformed broker answer: the body is a {type(response).__name__}, not an object"
            self._report(False, text)
            if order_post:
                raise BrokerAmbiguousError(text)
            raise BrokerTemporaryError(text)
        self._report(True, "ok")
        return response

    def _read(self, factory: Callable[[], Any], op: str) -> dict[str, Any]:
        return self._retrier.call(lambda: self._send(factory(), op))

    def _stream(self, endpoint_factory: Callable[[], Any], op: str) -> Iterator[dict[str, Any]]:
        self._requests.acquire()
        self._connections.acquire()
        responses: list[requests.Response] = []

        def keep(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            responses.append(response)

        api = self._new_api((self.config.timeout_s, self.config.stream_timeout_s), {"hooks": {"response": [keep]}})
        lines: Any = None
        try:
            lines = api.request(endpoint_factory())
            yield from lines
            raise BrokerTemporaryError(f"{op}: the server ended the stream")
        except V20Error as e:
            raise error_from_status(e.code, str(e.msg), op=op, scrub=self._scrub) from e
        except requests.RequestException as e:
            raise BrokerTemporaryError(self._scrub(f"{op}: {type(e).__name__}: {e}")) from e
        except ValueError as e:
            raise BrokerTemporaryError(self._scrub(f"{op}: malformed stream line: {e}")) from e
        finally:
            if lines is not None:
                lines.close()
            for response in responses:
                response.close()
            api.close()

    def close(self) -> None:
        """Close the REST session."""
        self._drop_client()
