"""The two streaming endpoints: prices and transactions, chunked, one JSON object per line.

A stream sends its snapshot first (prices) and then new lines as they happen (a replayed
instrument also the ticks of its path a wall-time poll went past, a few at most), a HEARTBEAT every
``heartbeat_s`` wall seconds, and flushes after each line. Each poll reads the market clock once:
its prices (all instruments, oldest first) and its heartbeat are of that one time, so the stream
is in time order as a real one is and never passes a bar boundary before every instrument's
closing tick was sent, however far an accelerated market moves during the poll. Stream faults act on the socket for
real: ``end`` sends the terminating chunk, ``reset`` cuts the connection in the middle of a chunk
(RST), ``stall`` keeps the socket open and silent.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import time
from typing import Any, Protocol

from actors.broker.emulator.app import Emulator
from actors.broker.emulator.market import Market
from actors.broker.emulator.replay import ReplaySource
from actors.broker.emulator.views import price_json
from actors.broker.emulator.wire import Ts, dumps
from actors.core.timefmt import NS

__all__ = ["ChunkWriter", "StreamClosedError", "serve_pricing", "serve_transactions"]


class StreamClosedError(Exception):
    """The stream ended (by the client, a fault or server shutdown)."""


class ChunkWriter(Protocol):
    """What a stream needs from the HTTP handler."""

    def write_chunk(self, data: bytes) -> None:
        """Send one chunk (raises OSError when the peer is gone)."""
        ...

    def end_chunks(self) -> None:
        """Send the terminating zero-length chunk."""
        ...

    def raw_socket(self) -> socket.socket:
        """The raw socket (for resets)."""
        ...


def reset_socket(sock: socket.socket) -> None:
    """Close ``sock`` with an RST (SO_LINGER 0) instead of an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


class _Stream:
    def __init__(self, emu: Emulator, writer: ChunkWriter, kind: str, unix: bool) -> None:
        self.emu = emu
        self.writer = writer
        self.kind = kind
        self.unix = unix
        self.seq = emu.faults.stream_seq()
        self.last_heartbeat = time.monotonic()

    def send(self, obj: dict[str, Any]) -> None:
        try:
            self.writer.write_chunk(dumps(obj, unix=self.unix) + b"\n")
        except OSError as e:
            raise StreamClosedError from e

    def check_faults(self) -> None:
        if self.emu.stop_event.is_set():
            self.writer.end_chunks()
            raise StreamClosedError
        fault = self.emu.faults.stream_fault_after(self.seq, self.kind)
        if fault is None:
            return
        self.seq = fault.seq
        if fault.action == "end":
            self.writer.end_chunks()
        elif fault.action == "reset":
            # Announce a 125-byte chunk, send a few bytes of it, then cut the connection.
            with contextlib.suppress(OSError):
                self.writer.raw_socket().sendall(b'7d\r\n{"type":"HEARTBE')
            reset_socket(self.writer.raw_socket())
        else:
            self.emu.stop_event.wait(fault.seconds)
            reset_socket(self.writer.raw_socket())
        raise StreamClosedError

    def heartbeat_due(self) -> bool:
        now = time.monotonic()
        if now - self.last_heartbeat >= self.emu.options.heartbeat_s:
            self.last_heartbeat = now
            return True
        return False


def serve_pricing(emu: Emulator, writer: ChunkWriter, names: list[str], *, snapshot: bool, unix: bool) -> None:
    """Run a pricing stream for ``names`` until the client leaves or a fault ends it."""
    stream = _Stream(emu, writer, "pricing", unix)
    opts = emu.options
    market = emu.market
    last_tick: dict[str, int] = {}
    last_sent: dict[str, float] = {}
    tradeable: dict[str, bool] = {}
    throttle_s = opts.stream_throttle_s / max(1.0, emu.clock.speed)  # in market time
    replayed = set(market.source.files) if isinstance(market.source, ReplaySource) else set()
    try:
        for name in names:
            quote = market.quote(name)
            last_tick[name], tradeable[name] = quote.tick_s, quote.tradeable
            last_sent[name] = time.monotonic()
            if snapshot:
                stream.send(price_json(emu.account, name))
        while True:
            stream.check_faults()
            # One market time per poll, as a real stream is in time order: every instrument is
            # quoted at it, its prices go out oldest first across instruments, and the heartbeat
            # carries it. Each read on its own (later and later: minutes apart at 14400x) let one
            # instrument's price or the heartbeat cross a bar boundary before another's closing
            # tick was sent; the host closed the bar and priced that decision before its close.
            now_ns = emu.clock.now_ns()
            second = now_ns // NS
            lines: list[tuple[int, int, dict[str, Any]]] = []  # (tick second, instrument, price)
            for k, name in enumerate(names):
                bad = emu.faults.take_bad_tick(name)
                if bad is not None:
                    stream.send(price_json(emu.account, name, bad=bad[0], second=second))
                    if bad[1]:  # held: only bad prices for it until the hold ends
                        continue
                quote = market.quote(name, second)
                now = time.monotonic()
                changed = quote.tradeable != tradeable[name]
                fresh = quote.tick_s != last_tick[name] and quote.tradeable
                if changed or (fresh and now - last_sent[name] >= throttle_s):
                    if fresh and not changed and name in replayed:
                        for missed in _missed(market, name, last_tick[name], quote.tick_s):
                            lines.append((missed, k, price_json(emu.account, name, second=missed)))
                    # This quote's tick, not a newer one: that one comes with the next poll.
                    lines.append((quote.tick_s, k, price_json(emu.account, name, second=second)))
                    last_tick[name], tradeable[name], last_sent[name] = quote.tick_s, quote.tradeable, now
            for *_, line in sorted(lines, key=lambda item: item[:2]):
                stream.send(line)
            if stream.heartbeat_due():
                stream.send({"type": "HEARTBEAT", "time": Ts(now_ns)})
            if opts.stream_poll_s > 0:
                emu.stop_event.wait(opts.stream_poll_s)
    except StreamClosedError:
        return


# At most this many ticks of a replayed path are sent between two polls besides the newest.
MAX_MISSED = 4


def _missed(market: Market, name: str, after_s: int, newest_s: int) -> list[int]:
    # The seconds of a replayed instrument's ticks after the last one sent and before the newest
    # (at most MAX_MISSED of them, evenly spread): an accelerated replay keeps its path on the stream
    # though a wall-time poll covers several of its ticks (a file's candle has a few dozen).
    seconds = market.ticks(name, max(after_s + 1, newest_s - 3600), newest_s - 1).seconds
    if len(seconds) > MAX_MISSED:
        seconds = seconds[[round(k * (len(seconds) - 1) / (MAX_MISSED - 1)) for k in range(MAX_MISSED)]]
    return [int(s) for s in seconds]


def serve_transactions(emu: Emulator, writer: ChunkWriter, *, unix: bool) -> None:
    """Run a transaction stream (new transactions only) until it ends."""
    stream = _Stream(emu, writer, "transactions", unix)
    account = emu.account
    inbox: queue.Queue[dict[str, Any]] = queue.Queue()
    with account.lock:
        account.listeners.append(inbox)
    try:
        while True:
            stream.check_faults()
            try:
                tx = inbox.get(timeout=min(0.1, emu.options.heartbeat_s))
            except queue.Empty:
                pass
            else:
                stream.send(dict(tx))
                continue
            if stream.heartbeat_due():
                stream.send(
                    {
                        "type": "HEARTBEAT",
                        "lastTransactionID": account.last_transaction_id,
                        "time": Ts(emu.clock.now_ns()),
                    }
                )
    except StreamClosedError:
        return
    finally:
        with account.lock:
            if inbox in account.listeners:
                account.listeners.remove(inbox)
