"""Benchmark: what the emulator sustains with the real oandapyV20 client on this machine.

Run ``python -m tests.bench.bench_broker``. Measures candle requests/s, MARKET order round trips/s
(order + close), and price-stream lines/s, each for a bounded time, and prints them next to the
host's own pacing limit (100 requests/s). Total run time stays under ~15 s.
"""

from __future__ import annotations

import time
from decimal import Decimal

import oandapyV20
from oandapyV20.endpoints import instruments, orders, pricing, trades

from actors.broker.config import DEV_TOKEN, BrokerConfig
from actors.broker.emulator import EmulatorOptions, running_emulator
from actors.broker.oanda.session import register_environment

START = "2024-03-06T14:00:00Z"
WINDOW_S = 3.0


def _rate(fn, window_s: float = WINDOW_S) -> tuple[float, int]:
    count = 0
    t0 = time.perf_counter()
    deadline = t0 + window_s
    while time.perf_counter() < deadline:
        fn()
        count += 1
    return count / (time.perf_counter() - t0), count


def main() -> int:
    """Run the benchmark and print the figures."""
    limit = BrokerConfig().max_requests_per_s
    results: list[tuple[str, float, str]] = []
    options = EmulatorOptions(start=START, speed=1.0)
    with running_emulator(options) as (url, _admin):
        key = register_environment(url)
        api = oandapyV20.API(DEV_TOKEN, environment=key, request_params={"timeout": 10})
        account = options.account_id
        try:
            api.request(instruments.InstrumentsCandles("EUR_USD", params={"granularity": "M5", "count": 500}))
            rate, n = _rate(
                lambda: api.request(
                    instruments.InstrumentsCandles("EUR_USD", params={"granularity": "M1", "count": 100})
                )
            )
            results.append(("candles M1 x100 (GET)", rate, f"{n} requests"))
            rate, n = _rate(
                lambda: api.request(
                    instruments.InstrumentsCandles("EUR_USD", params={"granularity": "M5", "count": 500})
                )
            )
            results.append(("candles M5 x500 (GET)", rate, f"{n} requests"))
            seq = iter(range(10**9))

            def round_trip() -> None:
                i = next(seq)
                body = {"order": {"type": "MARKET", "instrument": "EUR_USD", "units": str(Decimal(1000)),
                                  "clientExtensions": {"id": f"bench-{i}"}}}  # fmt: skip
                fill = api.request(orders.OrderCreate(account, data=body))
                api.request(trades.TradeClose(account, fill["orderFillTransaction"]["tradeOpened"]["tradeID"]))

            rate, n = _rate(round_trip)
            results.append(("order + close round trip", rate, f"{n} trips = {2 * n} requests"))
        finally:
            api.close()
    fast = EmulatorOptions(start=START, speed=5000.0, stream_throttle_s=0.0, stream_poll_s=0.0, heartbeat_s=1.0)
    with running_emulator(fast) as (url, _admin):
        key = register_environment(url)
        api = oandapyV20.API(DEV_TOKEN, environment=key, request_params={"timeout": 10})
        try:
            r = pricing.PricingStream(fast.account_id, params={"instruments": "EUR_USD,GBP_USD,USD_JPY"})
            stream = api.request(r)
            lines = 0
            t0 = time.perf_counter()
            for _line in stream:
                lines += 1
                if time.perf_counter() - t0 > WINDOW_S:
                    break
            elapsed = time.perf_counter() - t0
            stream.close()
            results.append(("price stream lines (3 instruments)", lines / elapsed, f"{lines} lines"))
        finally:
            api.close()
    print(f"host pacing limit: {limit:.0f} requests/s (OANDA allows 120/s, 2 new connections/s)")
    for name, rate, detail in results:
        print(f"{name:38s} {rate:9.1f} /s   ({detail})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
