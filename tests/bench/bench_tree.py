"""Benchmark of the process tree: restart latency, shutdown time, ctl status, bus latency/throughput.

Run with ``make bench`` (or ``python -m tests.bench.bench_tree [--quick]``). Every figure is a
median over repeated runs, printed next to its target; the bus figures are printed next to a
raw pyzmq baseline measured in the same run on the same transport (ipc), so a loaded machine
moves both. Nothing here is a test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import zmq

from tests.helpers import Host, ensure_test_model, poll_until, short_tmp_dir

REPO = Path(__file__).resolve().parents[2]
BENCH_OVERRIDES = [
    "supervisor.max_restarts=1000",
    "supervisor.restart_period_s=0.1",  # every kill starts a fresh period: no backoff in the figure
    "supervisor.cooldown_s=0.5",
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _row(what: str, values: list[float], unit: str, target: str = "") -> None:
    med = statistics.median(values)
    print(f"  {what:<44} median {med:9.2f} {unit:<6} p90 {_pct(values, 0.9):9.2f}  n={len(values):<4} {target}")


# --- tree figures ----------------------------------------------------------------------------


def bench_restart(n: int) -> list[float]:
    """kill -9 of a role -> the supervisor receives the first heartbeat of the new process.

    Also prints where the time goes (medians from the supervisor's own journal rows of each
    restart): kill -> ``role.exited`` (the exit seen and journaled), -> ``role.started`` (the
    forkserver forked the new process), -> first heartbeat.
    """
    run_dir = short_tmp_dir("thb") / "run"
    host = Host(run_dir=run_dir, overrides=BENCH_OVERRIDES).start()
    roles = ["watchdog", "reconciler", "feed", "model", "risk", "execution"]
    out: list[float] = []
    phases: dict[str, list[float]] = {}
    try:
        host.wait_all_running(timeout_s=60)
        for i in range(n):
            role = roles[i % len(roles)]
            status = host.wait_all_running(timeout_s=30)
            old = status["actors"][role]["pid"]
            seen = len(host.journal("role.restarted"))
            time.sleep(0.15)  # let the previous restart's period lapse (bench only)
            t0 = time.time_ns()
            os.kill(old, signal.SIGKILL)
            entry = poll_until(lambda s=seen: (j := host.journal("role.restarted"))[s:] and j[s], timeout_s=30)
            out.append((entry["body"]["first_heartbeat_ns"] - t0) / 1e6)
            for kind in ("role.exited", "role.started"):
                rows = [r for r in host.journal_rows(kind) if r.body.get("role") == role]
                phases.setdefault(kind, []).append((rows[-1].ts_ns - t0) / 1e6)
        print(
            "  restart phases (median ms after the kill): exit journaled "
            f"{statistics.median(phases['role.exited']):.1f}, new process forked "
            f"{statistics.median(phases['role.started']):.1f}, first heartbeat {statistics.median(out):.1f}"
        )
    finally:
        host.ctl("shutdown")
        host.wait_exit(timeout_s=30)
        host.kill_tree()
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    return out


def bench_shutdown(n: int) -> list[float]:
    """SIGTERM to the root -> the root has exited (all six roles stopped in reverse order)."""
    out = []
    for _ in range(n):
        run_dir = short_tmp_dir("thb") / "run"
        host = Host(run_dir=run_dir).start()
        try:
            host.wait_state("TRADING", timeout_s=60)
            assert host.proc is not None
            t0 = time.perf_counter()
            host.proc.send_signal(signal.SIGTERM)
            code = host.proc.wait(timeout=30)
            out.append((time.perf_counter() - t0) * 1000)
            if code != 0:
                print(f"  ! shutdown exited {code}", file=sys.stderr)
        finally:
            host.kill_tree()
            shutil.rmtree(run_dir.parent, ignore_errors=True)
    return out


def bench_ctl(n: int) -> tuple[list[float], list[float], list[float]]:
    """The whole `tradehost ctl status` command, the in-process request/reply round trip, and a bare
    ``python -c pass`` of the same interpreter (the baseline), run alternately with the command."""
    from supervisor.ctl.client import CtlClient

    run_dir = short_tmp_dir("thb") / "run"
    host = Host(run_dir=run_dir).start()
    script = shutil.which("tradehost") or str(Path(sys.executable).parent / "tradehost")
    whole, rtt, bare = [], [], []
    try:
        host.wait_state("TRADING", timeout_s=60)
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True, cwd=str(REPO))
            bare.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            subprocess.run(
                [script, "ctl", "--set", f"host.run_dir={json.dumps(str(run_dir))}", "status"],
                check=True,
                capture_output=True,
                cwd=str(REPO),
            )
            whole.append((time.perf_counter() - t0) * 1000)
        client = CtlClient(f"ipc://{run_dir / 'ctl.sock'}", 5.0)
        for _ in range(n * 10):
            t0 = time.perf_counter()
            reply = client.call("status")
            rtt.append((time.perf_counter() - t0) * 1000)
            assert reply.ok
    finally:
        host.ctl("shutdown")
        host.wait_exit(timeout_s=30)
        host.kill_tree()
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    return whole, rtt, bare


# --- bus figures -------------------------------------------------------------------------------

TICK = {"type": "tick", "instrument": "EUR_USD", "bid": "1.08512", "ask": "1.08527", "ts": 1764249600000000000}


def _proxy_proc(frontend: str, backend: str, ready: Any, stop: Any) -> None:
    from actors.runtime import transport

    ctx = transport.new_context()
    proxy = transport.BusProxy(ctx, frontend, backend)
    proxy.start()
    ready.set()
    stop.wait()
    proxy.stop()
    ctx.term()


def _echo_proc(sub_ep: str, pub_ep: str, pub_bind: bool, ready: Any, envelope: bool) -> None:
    from actors.runtime.messages import decode, encode

    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"ping")
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(sub_ep)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    if pub_bind:
        pub.bind(pub_ep)
    else:
        pub.connect(pub_ep)
    ready.set()
    count = 0
    while True:
        topic, payload = sub.recv_multipart()
        if payload == b"null":
            pub.send_multipart([b"pong", payload])
            break
        if envelope:
            env = decode(payload)
            body = encode(env)
        else:
            body = orjson.dumps(orjson.loads(payload))
        if len(topic) > 4:  # "pingX": throughput phase, count only
            count += 1
            if topic == b"ping-end":
                pub.send_multipart([b"pong", orjson.dumps({"count": count - 1})])
                count = 0
            continue
        pub.send_multipart([b"pong", body])


def _bus_run(kind: str, n_lat: int, n_thr: int, envelope: bool = False) -> tuple[list[float], float]:
    """Latency (round trip / 2, µs) and throughput (msg/s) for one bus kind: raw or proxy."""
    from actors.runtime.messages import RoleEvent, decode, encode, make_envelope

    tmp = short_tmp_dir("thbus")
    ctx = mp.get_context("spawn")
    stop, ready_p, ready_e = ctx.Event(), ctx.Event(), ctx.Event()
    procs = []
    zctx = zmq.Context()
    pub = zctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    sub = zctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"pong")
    if kind == "raw":
        a_out, b_out = f"ipc://{tmp}/a.sock", f"ipc://{tmp}/b.sock"
        pub.bind(a_out)
        echo = ctx.Process(target=_echo_proc, args=(a_out, b_out, True, ready_e, envelope))
        procs.append(echo)
        echo.start()
        ready_e.wait(30)
        sub.connect(b_out)
    else:
        front, back = f"ipc://{tmp}/in.sock", f"ipc://{tmp}/out.sock"
        proxy = ctx.Process(target=_proxy_proc, args=(front, back, ready_p, stop))
        procs.append(proxy)
        proxy.start()
        ready_p.wait(30)
        pub.connect(front)
        sub.connect(back)
        echo = ctx.Process(target=_echo_proc, args=(back, front, False, ready_e, envelope))
        procs.append(echo)
        echo.start()
        ready_e.wait(30)

    def payload() -> bytes:
        if envelope:
            return encode(make_envelope(RoleEvent(kind="tick", detail=TICK), src="bench", seq=1))
        return orjson.dumps(TICK)

    def receive() -> Any:
        raw = sub.recv_multipart()[1]
        return decode(raw) if envelope else orjson.loads(raw)

    # Warm up until the subscription has propagated (slow joiner).
    while True:
        pub.send_multipart([b"ping", payload()])
        if sub.poll(100):
            receive()
            break
    while sub.poll(50):
        receive()
    lat = []
    for _ in range(n_lat):
        t0 = time.perf_counter()
        pub.send_multipart([b"ping", payload()])
        receive()
        lat.append((time.perf_counter() - t0) * 1e6 / 2)
    t0 = time.perf_counter()
    for _ in range(n_thr):
        pub.send_multipart([b"pingX", payload()])
    pub.send_multipart([b"ping-end", payload()])
    count = orjson.loads(sub.recv_multipart()[1])["count"]
    elapsed = time.perf_counter() - t0
    pub.send_multipart([b"ping", b"null"])
    sub.poll(2000)
    for sock in (pub, sub):
        sock.close(0)
    zctx.term()
    stop.set()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
    if count != n_thr:
        print(f"  ! {kind}: {n_thr - count} messages lost", file=sys.stderr)
    return lat, count / elapsed


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args(argv)
    n = 3 if args.quick else 1
    # The hosts below run with the test model: without it (a fresh clone, where this benchmark is
    # the first of `make bench`) they latch NO_TRADE model_missing and never reach TRADING.
    ensure_test_model()
    print(
        f"tradehost tree benchmark  ({os.cpu_count()} cores, python {sys.version.split()[0]}, "
        f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()})"
    )
    print("process tree:")
    _row("restart: kill -9 -> first heartbeat of new pid", bench_restart(30 // n), "ms", "target < 15 ms")
    _row("graceful shutdown: SIGTERM -> root exit", bench_shutdown(max(2, 7 // n)), "ms", "target < 1000 ms")
    whole, rtt, bare = bench_ctl(max(5, 20 // n))
    _row("bare `python -c pass` (baseline)", bare, "ms", "")
    _row(
        "`tradehost ctl status`, whole command",
        whole,
        "ms",
        f"x{statistics.median(whole) / statistics.median(bare):.2f} of baseline (target < 30 ms, <= x2.5)",
    )
    _row("ctl status request/reply round trip", rtt, "ms", "")
    print("bus (ipc, one small orjson tick, other processes echo it back; latency = round trip / 2):")
    n_lat, n_thr = 3000 // n, 200_000 // n
    raw_lat, raw_thr = _bus_run("raw", n_lat, n_thr)
    px_lat, px_thr = _bus_run("proxy", n_lat, n_thr)
    env_lat, env_thr = _bus_run("proxy", n_lat, n_thr, envelope=True)
    _row("raw pyzmq PUB->SUB latency (baseline)", raw_lat, "µs")
    _row(
        "through the XSUB/XPUB proxy latency",
        px_lat,
        "µs",
        f"x{statistics.median(px_lat) / statistics.median(raw_lat):.2f} of baseline (target <= 1.5)",
    )
    _row(
        "proxy + tradehost Envelope encode/decode",
        env_lat,
        "µs",
        f"x{statistics.median(env_lat) / statistics.median(raw_lat):.2f} of baseline",
    )
    print(f"  {'raw pyzmq PUB->SUB throughput (baseline)':<44} {raw_thr:12,.0f} msg/s")
    print(
        f"  {'through the XSUB/XPUB proxy throughput':<44} {px_thr:12,.0f} msg/s  "
        f"x{raw_thr / px_thr:.2f} slower than baseline (target <= 1.5)"
    )
    print(
        f"  {'proxy + tradehost Envelope encode/decode':<44} {env_thr:12,.0f} msg/s  "
        f"x{raw_thr / env_thr:.2f} slower than baseline"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
