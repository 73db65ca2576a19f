"""Prometheus metrics of the tree, served by the root process (``metrics.listen``).

The root already knows everything the metrics show, so nothing here asks a role anything:

- **the status document** (``Operator.status()``, the same one ``ctl status`` prints): the
  supervisor offers it to the ``MetricsBoard`` from its own thread once a second (a swap of one
  reference); a scrape renders the last one it got, so a scrape never waits for the supervisor
  and never reaches a role. ``tradehost_status_age_seconds`` says how old it is (a supervisor
  that stopped offering one shows there);
- **the bus events the root sees**: a SUB socket of the root's own (thread ``metrics-bus``) on
  the event proxy, subscribed to bars, signals, the risk gate's decisions and the execution
  reports. PUB/SUB never blocks a publisher (past its high-water mark a slow subscriber loses
  messages), so counting them cannot slow a role. They give the decisions by reason, the orders
  by outcome and the latency histograms;
- **the processes' memory**: USS is read with psutil from ``/proc`` at most every
  ``USS_EVERY_S`` on a scrape (RSS comes with the heartbeats).

The HTTP server is prometheus_client's WSGI app (``make_wsgi_app``) on the standard library's
server, on its own daemon thread (as ``start_http_server`` does, with a shorter wake-up so that a
shutdown does not wait half a second for it), with a registry of its own. Nothing secret is in
the metrics: the labels are role names, states, reason codes, skip reasons, order outcomes, the
account currency, broker sources and check names; free-text details (reasons' details, errors,
URLs) are never exported. ``start_metrics`` binds at start-up: a port in use refuses the start
(``ConfigError``, exit 2) rather than running unwatched.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psutil
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.core.bartime import bar_end
from actors.core.domain import SkipReason
from actors.core.errors import ConfigError, MessageDecodeError
from actors.runtime import transport
from actors.runtime.messages import (
    TOPIC_EXEC_REPORT,
    TOPIC_MD_BAR,
    TOPIC_MD_BARS,
    TOPIC_MODEL_SIGNAL,
    TOPIC_RISK_INTENT,
    TOPIC_RISK_SKIP,
    Bar,
    BarsClosed,
    Envelope,
    ExecutionReport,
    IntentSkipped,
    RiskIntent,
    SignalProduced,
    SystemState,
    decode,
)
from supervisor.coreconfig import split_listen
from supervisor.health import REASONS

__all__ = ["MetricsBoard", "MetricsServer", "start_metrics"]

log = logging.getLogger(__name__)

MB = 1024 * 1024
SNAPSHOT_S = 1.0  # how often the supervisor offers its status document
USS_EVERY_S = 5.0  # USS reads /proc/PID/smaps (a few ms a process): at most this often
ROOT = "root"  # the root process (supervisor, bus, ctl, metrics) among the roles' rows
REMEMBERED = 4096  # bars and signals remembered to join the later messages of their chain
ORDER_OUTCOMES = ("SENDING", "FILLED", "REJECTED", "CANCELLED", "AMBIGUOUS", "RESOLVED", "UNRESOLVED", "CLOSED")
ENTER = "enter"  # the decision label of an intent to enter (a skip is labelled with its reason)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SLOW_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_disable_created: Callable[[], None] = disable_created_metrics  # (untyped in prometheus_client)
SERVE_POLL_S = 0.05  # the HTTP loop's wake-up: how long stopping it may take (its default 0.5 s slowed every shutdown)
SUBSCRIBED = (TOPIC_MD_BARS, TOPIC_MD_BAR, TOPIC_MODEL_SIGNAL, TOPIC_RISK_INTENT, TOPIC_RISK_SKIP, TOPIC_EXEC_REPORT)


def _number(text: Any) -> float | None:
    """A decimal string (or number) of the status document as a float; None when absent."""
    if text is None or text == "":
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class MetricsBoard:
    """What the metrics show (see the module docstring): the last status document and the bus tallies.

    Args:
        close_latency: whether bar closes are timed against the wall clock (the market's clock is
            the wall clock: OANDA, or the emulator at speed 1 from now); else no close is timed.
        monotonic: the clock of the snapshot's age.
    """

    def __init__(self, *, close_latency: bool, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.close_latency = close_latency
        self.monotonic = monotonic
        self._status: dict[str, Any] | None = None
        self._status_at = 0.0
        self._last_offer = float("-inf")
        self._lock = threading.Lock()  # the bus thread's joins (the scrape reads only counters)
        self._bars: OrderedDict[str, int] = OrderedDict()  # bar id -> its md.bar envelope ts
        self._signals: OrderedDict[tuple[str, str], int] = OrderedDict()  # (bar id, instrument) -> signal ts
        self._uss: dict[int, tuple[float, float]] = {}  # pid -> (read at, USS bytes)
        self._procs: dict[int, psutil.Process] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "tradehost_decisions",
            "The risk gate's decisions from risk.intent and risk.skip: reason 'enter', or why not.",
            ["reason"],
            registry=r,
        )
        for reason in (ENTER, *(s.value for s in SkipReason)):
            self.decisions.labels(reason=reason)
        self.orders = Counter(
            "tradehost_orders",
            "Execution reports (exec.report) by outcome (status, lower case).",
            ["outcome"],
            registry=r,
        )
        for outcome in ORDER_OUTCOMES:
            self.orders.labels(outcome=outcome.lower())
        self.close_to_bars = Histogram(
            "tradehost_close_to_bars_seconds",
            "Bar close (its end, UTC) to md.bars (every bar of the close published); only when the market "
            "clock is the wall clock.",
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        self.bar_to_signal = Histogram(
            "tradehost_bar_to_signal_seconds",
            "md.bar published to its model.signal published (wall clock, same host).",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.signal_to_wire = Histogram(
            "tradehost_signal_to_wire_seconds",
            "model.signal published to the execution role's SENDING report (the order leaves).",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.order_round_trip = Histogram(
            "tradehost_order_round_trip_seconds",
            "The broker's answer to a market order, as the execution role timed it (latency_ms).",
            buckets=SLOW_BUCKETS,
            registry=r,
        )
        r.register(_StatusCollector(self))

    # --- the supervisor's thread ---

    def offer(self, now: float, status: Callable[[], dict[str, Any]]) -> None:
        """Take ``status()`` when the last one is ``SNAPSHOT_S`` old (the supervisor's tick)."""
        if now - self._last_offer < SNAPSHOT_S:
            return
        self._last_offer = now
        document = status()
        self._status, self._status_at = document, self.monotonic()  # one reference each: a scrape sees either

    # --- the bus thread ---

    def observe(self, env: Envelope) -> None:
        """Count one bus message and time its chain (bar -> signal -> order)."""
        body = env.body
        if isinstance(body, Bar):
            if env.corr is not None:
                with self._lock:
                    _remember(self._bars, env.corr, env.ts)
        elif isinstance(body, SignalProduced):
            with self._lock:
                bar_ts = self._bars.get(env.corr) if env.corr is not None else None
                if env.corr is not None:
                    _remember(self._signals, (env.corr, body.instrument), env.ts)
            if bar_ts is not None:
                self.bar_to_signal.observe(max(0.0, (env.ts - bar_ts) / 1e9))
        elif isinstance(body, RiskIntent):
            self.decisions.labels(reason=ENTER).inc()
        elif isinstance(body, IntentSkipped):
            self.decisions.labels(reason=body.reason).inc()
        elif isinstance(body, ExecutionReport):
            self._on_report(env, body)
        elif isinstance(body, BarsClosed) and self.close_latency:
            with contextlib.suppress(ValueError):
                lag_ns = env.ts - bar_end(body.ts, body.granularity)
                if lag_ns >= 0:
                    self.close_to_bars.observe(lag_ns / 1e9)

    def _on_report(self, env: Envelope, body: ExecutionReport) -> None:
        self.orders.labels(outcome=body.status.lower()).inc()
        if body.status == "SENDING" and env.corr is not None:
            with self._lock:
                signal_ts = self._signals.pop((env.corr, body.instrument), None)
            if signal_ts is not None:
                self.signal_to_wire.observe(max(0.0, (env.ts - signal_ts) / 1e9))
        if body.latency_ms is not None and body.status in ("FILLED", "REJECTED", "CANCELLED"):
            self.order_round_trip.observe(body.latency_ms / 1000)

    # --- the HTTP thread ---

    def snapshot(self) -> tuple[dict[str, Any] | None, float]:
        """The last status document and its age in seconds (None: none yet)."""
        status, at = self._status, self._status_at
        return status, (self.monotonic() - at if status is not None else 0.0)

    def uss_bytes(self, pid: int) -> float | None:
        """The USS of ``pid``, read at most every ``USS_EVERY_S`` (None: gone or not readable)."""
        now = self.monotonic()
        cached = self._uss.get(pid)
        if cached is not None and now - cached[0] < USS_EVERY_S:
            return cached[1]
        try:
            proc = self._procs.get(pid)
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
            uss = float(proc.memory_full_info().uss)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.pop(pid, None)
            self._uss.pop(pid, None)
            return None
        self._uss[pid] = (now, uss)
        return uss

    def forget_pids(self, alive: set[int]) -> None:
        """Drop the cached processes not in ``alive``."""
        for pid in set(self._procs) - alive:
            self._procs.pop(pid, None)
            self._uss.pop(pid, None)


def _remember(table: OrderedDict[Any, int], key: Any, ts: int) -> None:
    table[key] = ts
    while len(table) > REMEMBERED:
        table.popitem(last=False)


class _StatusCollector(Collector):
    """The status document as metric families, built on each scrape from the board's snapshot."""

    def __init__(self, board: MetricsBoard) -> None:
        self.board = board

    def describe(self) -> list[Metric]:
        return []  # built per scrape; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        status, age_s = self.board.snapshot()
        yield GaugeMetricFamily(
            "tradehost_status_age_seconds",
            "Age of the supervisor's status document these metrics show (offered every second).",
            value=age_s,
        )
        if status is None:
            return
        yield from _state(status)
        yield from _roles(status, self.board)
        yield from _broker(status)
        yield from _account(status)
        yield from _pipeline(status)
        yield from _mail(status)
        yield from _journal(status)


def _journal(status: dict[str, Any]) -> Iterator[Metric]:
    journal = status.get("journal")
    if not isinstance(journal, dict) or not isinstance(journal.get("mb"), int | float):
        return
    yield GaugeMetricFamily(
        "tradehost_journal_megabytes", "The journal's size on disk (with its -wal), in MB.", value=float(journal["mb"])
    )
    yield GaugeMetricFamily(
        "tradehost_journal_warn",
        "1 when the journal is over host.journal_warn_mb: archive old rows (tradehost journal archive).",
        value=1.0 if journal.get("warn") else 0.0,
    )


def _state(status: dict[str, Any]) -> Iterator[Metric]:
    state = GaugeMetricFamily(
        "tradehost_state", "1 for the system state the host is in, 0 for the others.", labels=["state"]
    )
    for s in SystemState:
        state.add_metric([s.value], 1.0 if status.get("state") == s.value else 0.0)
    yield state
    counts = dict.fromkeys(REASONS, 0)
    latched = dict.fromkeys(REASONS, 0)
    for r in status.get("reasons") or []:
        base = str(r.get("code", "")).split(":", 1)[0]  # memory_limit:feed, unprotected:<trade id>
        counts[base] = counts.get(base, 0) + 1
        latched[base] = latched.get(base, 0) + (1 if r.get("latched") else 0)
    reasons = GaugeMetricFamily(
        "tradehost_no_trade_reasons",
        "No-trade reasons raised, by code (the part before ':'); 0 for every known code not raised.",
        labels=["reason"],
    )
    latched_family = GaugeMetricFamily(
        "tradehost_no_trade_reasons_latched", "Of those, the latched ones (they need `ctl resume`).", labels=["reason"]
    )
    for code in sorted(counts):
        reasons.add_metric([code], counts[code])
        latched_family.add_metric([code], latched[code])
    yield reasons
    yield latched_family
    yield GaugeMetricFamily(
        "tradehost_paused", "1 while the operator's pause is set.", value=1.0 if status.get("paused") else 0.0
    )
    yield GaugeMetricFamily(
        "tradehost_uptime_seconds", "Seconds since the root started.", value=status.get("uptime_s") or 0.0
    )
    mode = GaugeMetricFamily("tradehost_mode", "1 for the host's mode (shadow or live).", labels=["mode"])
    mode.add_metric([str(status.get("mode"))], 1.0)
    yield mode


def _roles(status: dict[str, Any], board: MetricsBoard) -> Iterator[Metric]:
    labels = ["role"]
    up = GaugeMetricFamily("tradehost_role_up", "1 while the role's process runs and heartbeats.", labels=labels)
    restarts = CounterMetricFamily(
        "tradehost_role_restarts", "Restarts of the role since the host started.", labels=labels
    )
    rss = GaugeMetricFamily("tradehost_role_rss_bytes", "Resident memory (the role's last heartbeat).", labels=labels)
    uss = GaugeMetricFamily("tradehost_role_uss_bytes", "Unique memory of the process (psutil).", labels=labels)
    age = GaugeMetricFamily("tradehost_role_heartbeat_age_seconds", "Since the role's last heartbeat.", labels=labels)
    queue = GaugeMetricFamily("tradehost_role_queue_depth", "The role's actor inbox (last heartbeat).", labels=labels)
    pids: dict[str, int] = {}
    for role, a in (status.get("actors") or {}).items():
        up.add_metric([role], 1.0 if a.get("status") == "running" and a.get("alive") else 0.0)
        restarts.add_metric([role], float(a.get("restarts") or 0))
        if a.get("rss_mb") is not None:
            rss.add_metric([role], float(a["rss_mb"]) * MB)
        if a.get("heartbeat_age_s") is not None:
            age.add_metric([role], float(a["heartbeat_age_s"]))
        if a.get("queue_depth") is not None:
            queue.add_metric([role], float(a["queue_depth"]))
        if a.get("alive") and isinstance(a.get("pid"), int):
            pids[role] = a["pid"]
    root_pid = os.getpid()
    with contextlib.suppress(psutil.Error):
        rss.add_metric([ROOT], float(psutil.Process(root_pid).memory_info().rss))
    pids[ROOT] = root_pid
    for role, pid in pids.items():
        value = board.uss_bytes(pid)
        if value is not None:
            uss.add_metric([role], value)
    board.forget_pids(set(pids.values()))
    yield from (up, restarts, rss, uss, age, queue)


def _broker(status: dict[str, Any]) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "tradehost_broker_connected", "1 up, 0 down per broker connection (absent: unknown).", labels=["source"]
    )
    for source, h in ((status.get("broker") or {}).get("sources") or {}).items():
        if h.get("connected") is not None:
            family.add_metric([source], 1.0 if h["connected"] else 0.0)
    yield family


def _account(status: dict[str, Any]) -> Iterator[Metric]:
    account = status.get("account")
    if not isinstance(account, dict):
        return
    currency = [str(account.get("currency") or "")]
    for name, key, doc in (
        ("tradehost_nav", "nav", "Net asset value of the account (the reconciler's last read)."),
        ("tradehost_balance", "balance", "Balance of the account."),
        ("tradehost_unrealized_pnl", "unrealized_pl", "Unrealized P&L of the open trades."),
        ("tradehost_daily_pnl", "daily_pnl", "Today's P&L against the day-start NAV (17:00 New York)."),
        ("tradehost_peak_nav", "peak_nav", "The peak NAV the drawdown is measured from."),
    ):
        number = _number(account.get(key))
        if number is not None:
            family = GaugeMetricFamily(name, doc, labels=["currency"])
            family.add_metric(currency, number)
            yield family
    yield GaugeMetricFamily(
        "tradehost_drawdown_ratio",
        "Drawdown from the peak NAV (0.05 = 5%).",
        value=float(account.get("drawdown") or 0.0),
    )
    yield GaugeMetricFamily(
        "tradehost_drawdown_zone",
        "The drawdown zone (0: full size; the last: no new entries).",
        value=float(account.get("zone") or 0),
    )
    yield GaugeMetricFamily(
        "tradehost_size_multiplier", "The zone's size multiplier.", value=float(account.get("multiplier") or 0.0)
    )
    yield GaugeMetricFamily(
        "tradehost_open_positions",
        "Open trades at the broker (last reconciliation).",
        value=len(status.get("positions") or []),
    )
    yield GaugeMetricFamily(
        "tradehost_pending_orders", "Pending orders at the broker.", value=float(account.get("pending_orders") or 0)
    )
    if isinstance(account.get("ts"), int):
        yield GaugeMetricFamily(
            "tradehost_account_age_seconds",
            "Since the reconciler's last account read.",
            value=max(0.0, (time.time_ns() - account["ts"]) / 1e9),
        )


def _pipeline(status: dict[str, Any]) -> Iterator[Metric]:
    market = status.get("market")
    if isinstance(market, dict):
        bars = CounterMetricFamily(
            "tradehost_bars",
            "Bars the feed published or rejected (the feed's count: restarts with it).",
            labels=["outcome"],
        )
        bars.add_metric(["published"], float(market.get("bars_published") or 0))
        bars.add_metric(["rejected"], float(market.get("bars_rejected") or 0))
        yield bars
        yield CounterMetricFamily(
            "tradehost_ticks_rejected",
            "Stream prices refused by the tick checks (the feed's count).",
            value=float(market.get("ticks_rejected") or 0),
        )
        if isinstance(market.get("last_bar_ns"), int):
            yield GaugeMetricFamily(
                "tradehost_last_bar_age_seconds",
                "Since the start of the last bar published (market time).",
                value=max(0.0, (time.time_ns() - market["last_bar_ns"]) / 1e9),
            )
    model = status.get("model")
    if isinstance(model, dict):
        signals = CounterMetricFamily(
            "tradehost_signals", "The model's predictions and skipped bars (the model's count).", labels=["outcome"]
        )
        signals.add_metric(["produced"], float(model.get("predictions") or 0))
        signals.add_metric(["skipped"], float(model.get("skipped") or 0))
        yield signals
        loaded = GaugeMetricFamily("tradehost_model_loaded", "1 while a model is loaded.", labels=["version"])
        loaded.add_metric([str(model.get("version") or "")], 1.0 if model.get("state") == "loaded" else 0.0)
        yield loaded


def _mail(status: dict[str, Any]) -> Iterator[Metric]:
    watchdog = status.get("watchdog")
    if not isinstance(watchdog, dict):
        return
    yield GaugeMetricFamily(
        "tradehost_mail_enabled", "1 when alert mail is configured.", value=1.0 if watchdog.get("mail") == "on" else 0.0
    )
    yield GaugeMetricFamily(
        "tradehost_mail_queue", "Alert mails waiting to be sent.", value=float(watchdog.get("mail_queued") or 0)
    )
    yield CounterMetricFamily(
        "tradehost_mail_sent", "Alert mails sent (the watchdog's count).", value=float(watchdog.get("mail_sent") or 0)
    )
    yield CounterMetricFamily(
        "tradehost_mail_failed",
        "Alert mails that failed (the watchdog's count).",
        value=float(watchdog.get("mail_failed") or 0),
    )
    checks = GaugeMetricFamily(
        "tradehost_watchdog_check_breach",
        "1 while a watchdog check is in breach, 0 ok (absent: unknown).",
        labels=["check"],
    )
    for c in watchdog.get("checks") or []:
        if isinstance(c, dict) and c.get("verdict") in ("ok", "breach"):
            checks.add_metric([str(c.get("name"))], 1.0 if c["verdict"] == "breach" else 0.0)
    yield checks


class _Quiet(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request (a slow scraper never holds up the next); daemon threads."""

    daemon_threads = True


def _serve(host: str, port: int, registry: CollectorRegistry) -> tuple[WSGIServer, threading.Thread]:
    """prometheus_client's WSGI app on ``host:port`` (IPv4 or IPv6), served on a daemon thread."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(_Server):
        address_family = family

    httpd = make_server(host, port, make_wsgi_app(registry), Server, handler_class=_Quiet)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": SERVE_POLL_S}, name="metrics-http", daemon=True
    )
    thread.start()
    return httpd, thread


class MetricsServer:
    """The HTTP endpoint and the bus subscription of one ``MetricsBoard`` (see ``start_metrics``)."""

    def __init__(self, board: MetricsBoard, httpd: Any, thread: threading.Thread, bus: transport.SocketThread) -> None:
        self.board = board
        self.httpd = httpd
        self.thread = thread
        self.bus = bus

    def stop(self) -> None:
        """Stop serving and close the bus socket (before the zmq context ends)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2.0)
        self.bus.stop()


def start_metrics(listen: str, ctx: Any, events_out: str, *, close_latency: bool) -> MetricsServer:
    """Bind ``listen`` (``HOST:PORT``) and subscribe to the bus at ``events_out``.

    Raises:
        ConfigError: the address cannot be bound (in use, or not this machine's): one line.
    """
    parts = split_listen(listen)
    if parts is None:
        raise ConfigError(f"metrics.listen: expected HOST:PORT, got {listen!r}")
    host, port = parts
    _disable_created()  # no *_created series beside every counter and histogram
    board = MetricsBoard(close_latency=close_latency)
    try:
        httpd, thread = _serve(host, port, board.registry)
    except OSError as e:
        why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise ConfigError(
            f'metrics.listen: cannot serve on {listen}: {why}; choose a free HOST:PORT, or metrics.listen = "" to run '
            "without metrics"
        ) from e
    bus = transport.SocketThread(ctx, "metrics-bus")
    try:
        sock = transport.make_socket(ctx, transport.SUB, connect=events_out, subscribe=SUBSCRIBED)
    except transport.ZMQError:
        httpd.shutdown()
        httpd.server_close()
        raise

    def on_bus(frames: list[bytes]) -> None:
        if len(frames) != 2:
            return
        try:
            env = decode(frames[1])
        except MessageDecodeError:
            return  # the roles count and log their own; the metrics only miss one
        board.observe(env)

    bus.add("sub", sock, on_bus)
    bus.start()
    log.info("metrics served at http://%s/metrics", listen)
    return MetricsServer(board, httpd, thread, bus)
