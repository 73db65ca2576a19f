"""The soak of issue 19: the real tree in live mode on the embedded emulator for many market days,
with faults sprinkled, then the fault matrix's invariants over the whole run and a resource table.

Run with ``make soak`` (or ``python -m tests.bench.bench_soak [--minutes 30] [--speed 3600]``). A
market day at speed S takes 86400/S wall seconds: at 3600x (an M15 bar every 0.25 s) a minute of
wall time is 2.5 calendar days of market, so 30 minutes cover ~75 calendar days, ~53 market days.

While it runs it injects, in turn, every ``--fault-every-s`` seconds: a ``kill -9`` of a trading
role (its pid from ``ctl status``), a 5xx burst (30 reads answered 503) and a stalled price stream
(10 s), through the emulator's admin API as tests/faults/test_trading_invariants.py does; and it
samples every process of the tree every ``--sample-s`` seconds with psutil (RSS, USS, open file
descriptors, threads) together with the emulator's market time and the journal's size. At the end
it waits for TRADING, ends the trading (``ctl pause``, every order's outcome in) and checks the
invariants of tests/faults/invariants.py (``check_run``: no order POST while not TRADING, no client
id twice, no trade without SL/TP past the deadline, an outcome for every ``exec.sending``) over the
whole journal and the emulator's own records (its request log read at every sample and merged:
it keeps only its last 10 000 requests, fewer than a long soak makes; its transactions in full).

Memory slopes are least-squares fits over the samples after ``--warmup-s`` (imports, caches and
the first bars' history fill up then) of the run and of each incarnation of a role (a process
restarted after a kill -9 fills up again from small: its own first ``--warmup-s`` are left out
too), pooled over the incarnations (each its own intercept, the one slope shared), per wall hour
and per market day
(open market time, weekends count nothing: ``supervisor.offline.report.checks.market_days``);
the USS slope is also given over the second half of those samples alone: a leak keeps its slope,
a warm-up flattens. The table goes to stdout and to ``--out`` (``.cache/soak.md``), every sample
beside it (``soak.samples.jsonl``). Nothing here is a test: it prints, it does not assert; its
exit status is 1 when an invariant was violated.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil

from actors.broker.emulator import AdminClient
from actors.core.timefmt import format_rfc3339, parse_time
from supervisor.offline.report.checks import market_days
from tests.bench import soakmaps
from tests.faults.invariants import BrokerRecord, check_run, limits_of, record_broker, settle, wait_trading
from tests.faults.test_trading_invariants import MATRIX
from tests.helpers import REPO, Host, ensure_test_model, running_host

MB = 1024 * 1024
NS = 1_000_000_000
KILLED_ROLES = ["feed", "execution", "risk", "reconciler", "model"]  # the fault matrix's kill -9 set
GRANULARITY_S = {"M1": 60, "M5": 300, "M15": 900, "M30": 1800, "H1": 3600, "H4": 14400}
SETTLE_S = 180.0  # every order's outcome in after the pause, on a loaded machine


@dataclass(frozen=True)
class Sample:
    """One process at one time."""

    wall_s: float  # monotonic seconds since the start of the soak
    market_days: float  # open market days since the first sample
    name: str
    pid: int
    rss: int
    uss: int
    fds: int
    threads: int


def _processes(host: Host, status: dict[str, Any]) -> dict[int, str]:
    """pid -> name for the whole tree: the root, every role by its status name, anything else by pid."""
    assert host.proc is not None
    names = {host.proc.pid: "root"}
    for role, actor in status.get("actors", {}).items():
        if isinstance(actor.get("pid"), int) and actor.get("alive", True):
            names[actor["pid"]] = role
    for child in host.children():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            cmd = " ".join(child.cmdline())
            kind = next((k for k in ("forkserver", "resource_tracker") if k in cmd), Path(cmd.split(" ")[0]).name)
            names.setdefault(child.pid, f"({kind})")
    return names


def _sample(names: dict[int, str], wall_s: float, days: float) -> list[Sample]:
    out = []
    for pid, name in names.items():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            p = psutil.Process(pid)
            with p.oneshot():
                mem = p.memory_full_info()
                out.append(Sample(wall_s, days, name, pid, mem.rss, mem.uss, p.num_fds(), p.num_threads()))
    return out


def pooled_slope(points: Sequence[tuple[str | int, float, float]]) -> float | None:
    """Least-squares slope of y over x with one intercept per group (``(group, x, y)``): a role's
    incarnations share the slope; None when there is no spread in x."""
    groups: dict[str | int, list[tuple[float, float]]] = defaultdict(list)
    for g, x, y in points:
        groups[g].append((x, y))
    num = den = 0.0
    for pts in groups.values():
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        num += sum((x - mx) * (y - my) for x, y in pts)
        den += sum((x - mx) ** 2 for x, _ in pts)
    return num / den if den > 0 else None


def _journal_bytes(run_dir: Path) -> int:
    return sum(p.stat().st_size for p in run_dir.glob("journal.sqlite*") if p.is_file())


def _market_ns(admin: AdminClient) -> int:
    return parse_time(admin.state()["time"])


class RequestLog:
    """The emulator's request log over the whole run: it keeps only its last 10 000 requests
    (docs/emulator.md), ~12 wall minutes of a host at 3600x, so it is read every sample and merged."""

    def __init__(self) -> None:
        self.seen: dict[tuple[Any, ...], dict[str, Any]] = {}

    def update(self, admin: AdminClient) -> None:
        for r in admin.requests():
            self.seen[(r["ts_ns"], r["method"], r["path"], r.get("client_id"))] = r

    def record(self, admin: AdminClient) -> BrokerRecord:
        """``record_broker`` with every request seen during the run."""
        last = record_broker(admin)
        self.update(admin)
        requests = sorted(self.seen.values(), key=lambda r: int(r["ts_ns"]))
        return BrokerRecord(requests=requests, transactions=last.transactions, at_ns=last.at_ns)


class Faults:
    """The faults, in turn: kill -9 of a role (each role in turn), a 5xx burst, a stream stall."""

    def __init__(self, *, kills: bool = True) -> None:
        self.n = 0
        self.kinds = (0, 1, 2) if kills else (1, 2)  # kill -9, 5xx burst, stream stall
        self.done: list[tuple[float, str]] = []

    def inject(self, host: Host, admin: AdminClient, wall_s: float) -> str:
        kind = self.kinds[self.n % len(self.kinds)]
        if kind == 0:
            role = KILLED_ROLES[(self.n // len(self.kinds)) % len(KILLED_ROLES)]
            pid = host.status()["actors"][role]["pid"]
            os.kill(pid, signal.SIGKILL)
            what = f"kill -9 {role} (pid {pid})"
        elif kind == 1:
            admin.fault("http_error", status=503, count=30, method="GET")
            what = "5xx burst (30 reads answered 503)"
        else:
            admin.fault("stream", action="stall", stream="pricing", seconds=10)
            what = "price stream stall (10 s)"
        self.n += 1
        self.done.append((wall_s, what))
        return what


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:+.{digits}f}"


def steady(rows: list[Sample], born: dict[int, float], warmup_s: float) -> list[Sample]:
    """The samples of a process's incarnations past their own warm-up: ``warmup_s`` after the run's
    start and after the incarnation's first sample. A role restarted by a kill -9 starts small and
    fills its caches again; that refill is no leak, and a fit over it (even one intercept per
    incarnation) reads as growth."""
    return [s for s in rows if s.wall_s >= warmup_s and s.wall_s - born[s.pid] >= warmup_s]


def table(samples: list[Sample], warmup_s: float, restarts: dict[str, int]) -> list[str]:
    """The per-process table (Markdown)."""
    lines = [
        "| process | pids | RSS MB first → last | RSS MB/h | RSS MB/market day | USS MB first → last | USS MB/h "
        "| USS MB/h 2nd half | USS MB/market day | fds first → last | threads first → last | restarts |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_name: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_name[s.name].append(s)
    order = sorted(by_name, key=lambda n: (n != "root", n))  # the root, then "(forkserver)" etc., then roles
    born: dict[int, float] = {}
    for s in samples:
        born.setdefault(s.pid, s.wall_s)
    for name in order:
        rows = by_name[name]
        late = steady(rows, born, warmup_s) or rows
        half = late[0].wall_s + (late[-1].wall_s - late[0].wall_s) / 2
        second = [s for s in late if s.wall_s >= half]
        first, last = rows[0], rows[-1]

        def slope(attr: str, per_day: bool, late: list[Sample] = late) -> float | None:
            pts = [(s.pid, s.market_days if per_day else s.wall_s / 3600, getattr(s, attr) / MB) for s in late]
            return pooled_slope(pts)

        pids = len({s.pid for s in rows})
        label = f"{name} (the test broker: keeps every request and transaction)" if name == "emulator" else name
        lines.append(
            f"| {label} | {pids} | {first.rss / MB:.1f} → {last.rss / MB:.1f} | {_fmt(slope('rss', False))} "
            f"| {_fmt(slope('rss', True), 3)} | {first.uss / MB:.1f} → {last.uss / MB:.1f} "
            f"| {_fmt(slope('uss', False))} | {_fmt(slope('uss', False, second))} | {_fmt(slope('uss', True), 3)} "
            f"| {first.fds} → {last.fds} "
            f"| {first.threads} → {last.threads} | {restarts.get(name, 0)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="wall minutes of trading (30)")
    parser.add_argument("--speed", type=float, default=3600.0, help="emulator speed (3600: 24 s a day)")
    parser.add_argument("--start", default="2024-03-06T14:00:00Z", help="market start (a Wednesday)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples (5)")
    parser.add_argument("--fault-every-s", type=float, default=60.0, help="seconds between faults (60)")
    parser.add_argument("--warmup-s", type=float, default=None, help="samples left out of the slopes "
                        "(default: 120 s, at most a quarter of the run)")  # fmt: skip
    parser.add_argument("--no-kills", action="store_true", help="5xx bursts and stream stalls only: every "
                        "role lives the whole run (with kills, ~15 min each: a warm-up, never a plateau)")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override on top of the soak's (repeatable)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "soak.md", help="the table's file")
    parser.add_argument("--maps-every-s", type=float, default=300.0, help="seconds between snapshots of every "
                        "process's memory maps (300; 0: none): where the USS grew (heap, pymalloc arenas, "
                        "copy-on-write of the forkserver's pages): in the notes and soak.maps.jsonl")  # fmt: skip
    args = parser.parse_args(argv)
    duration_s = args.minutes * 60
    warmup_s = args.warmup_s if args.warmup_s is not None else min(120.0, duration_s / 4)
    ensure_test_model()
    overrides = [
        *MATRIX,
        f'broker.emulator.start="{args.start}"',
        f"broker.emulator.speed={args.speed:g}",
        "feed.stale_after_s=2",  # as the fault matrix's stall test: a 10 s stall is noticed
        "broker.stream_timeout_s=30",
        # The fault matrix's gate (0.5001) trades nearly every signal of the synthetic market: the
        # default zones latched drawdown_stop (15 %) after ~10 minutes of the first 25-minute run
        # and no order left for the rest of it. A last zone at 90 % keeps the orders coming.
        "risk.drawdown_zones=[[0.05, 1.0], [0.1, 0.5], [0.15, 0.25], [0.9, 0.1]]",
        *args.set,
    ]
    samples: list[Sample] = []
    faults = Faults(kills=not args.no_kills)
    log = RequestLog()
    print(f"soak: {args.minutes:g} min at {args.speed:g}x (a calendar day every {86400 / args.speed:.1f} s), "
          f"a fault every {args.fault_every_s:g} s, samples every {args.sample_s:g} s", flush=True)  # fmt: skip
    with contextlib.ExitStack() as undo, running_host(overrides) as host:
        status = host.status()
        admin = AdminClient(status["broker"]["api_url"])
        limits = limits_of(host)
        feed_cfg = host.config().roles["feed"]
        bar_s = GRANULARITY_S.get(str(feed_cfg.granularity), 0)
        t0 = time.monotonic()
        market0 = _market_ns(admin)
        journal0 = _journal_bytes(host.run_dir)
        next_sample = next_progress = 0.0
        next_maps = warmup_s if args.maps_every_s > 0 else float("inf")
        maps_out = args.out.with_suffix(".maps.jsonl")
        maps_out.parent.mkdir(parents=True, exist_ok=True)
        maps_file = undo.enter_context(maps_out.open("w")) if args.maps_every_s > 0 else None
        maps: dict[int, list[tuple[float, str, list[soakmaps.Region]]]] = defaultdict(list)
        next_fault = args.fault_every_s
        quiet_after = duration_s - max(60.0, args.fault_every_s)  # the last fault has time to clear
        days = 0.0
        while (now := time.monotonic() - t0) < duration_s:
            if now >= next_sample:
                status = host.status()
                market = _market_ns(admin)
                days = market_days(market0, market)
                samples += _sample(_processes(host, status), now, days)
                log.update(admin)
                next_sample += args.sample_s
            if now >= next_maps:
                for pid, name in _processes(host, status).items():
                    if (regions := soakmaps.snapshot(pid)) is not None:
                        maps[pid].append((now, name, regions))
                        row = {"wall_s": now, "name": name, "pid": pid, "maps": soakmaps.to_json(regions)}
                        if maps_file is not None:
                            maps_file.write(orjson.dumps(row).decode() + "\n")
                if maps_file is not None:
                    maps_file.flush()
                next_maps += args.maps_every_s
            if now >= next_fault and now < quiet_after:
                print(f"  [{now:6.0f} s] fault: {faults.inject(host, admin, now)}", flush=True)
                next_fault += args.fault_every_s
            if now >= next_progress:
                n_restarts = sum(int(a.get("restarts") or 0) for a in status["actors"].values())
                mem = sum(s.uss for s in samples if s.wall_s == samples[-1].wall_s) / MB if samples else 0.0
                print(
                    f"  [{now:6.0f} s] market {format_rfc3339(market)[:16]} ({days:.1f} market days), "
                    f"state {status['state']}, restarts {n_restarts}, USS total {mem:.0f} MB, "
                    f"journal {_journal_bytes(host.run_dir) / MB:.1f} MB",
                    flush=True,
                )
                next_progress += 30.0
            time.sleep(0.2)
        wall_s = time.monotonic() - t0
        market_end = _market_ns(admin)
        days = market_days(market0, market_end)
        journal_end = _journal_bytes(host.run_dir)
        final = host.status()
        restarts = {role: int(a.get("restarts") or 0) for role, a in final["actors"].items()}
        back = "TRADING"
        try:
            wait_trading(host, timeout_s=120)
        except AssertionError as e:
            back = f"not TRADING: {e}"
        print("  settling (ctl pause, every order's outcome) ...", flush=True)
        violations = ""
        try:
            rows = settle(host, SETTLE_S)
            check_run(rows, [log.record(admin)], limits)
        except AssertionError as e:
            violations = str(e)
            rows = host.journal_rows()
        log.update(admin)
        posts = [r for r in log.seen.values() if r["method"] == "POST" and r.get("order_type")]
    kinds = Counter(r.kind for r in rows)
    expected_bars = len(feed_cfg.instruments) * days * 86400 / bar_s if bar_s else 0.0
    fault_kinds = Counter(what.split(" (")[0] for _, what in faults.done)
    lines = [
        f"Soak: {wall_s / 60:.1f} wall min at {args.speed:g}x from {args.start}: market "
        f"{format_rfc3339(market0)[:16]} → {format_rfc3339(market_end)[:16]}, {days:.1f} market days "
        f"(open market, {(market_end - market0) / NS / 86400:.1f} calendar days); samples every {args.sample_s:g} s, "
        f"slopes over the samples after the first {warmup_s:g} s.",
        "",
        *table(samples, warmup_s, restarts),
        "",
        f"- faults: {len(faults.done)} ({', '.join(f'{n} x {k}' for k, n in sorted(fault_kinds.items()))})",
        f"- orders: {len(posts)} POSTs, {kinds['exec.filled']} filled, {kinds['exec.resolved']} resolved, "
        f"{kinds['exec.rejected']} rejected, {kinds['exec.cancelled']} cancelled",
        f"- bars: {kinds['md.bar']} journaled, ~{expected_bars:.0f} expected ({len(feed_cfg.instruments)} instruments "
        f"x {days:.1f} market days of {feed_cfg.granularity} bars from the first sample)",
        f"- role restarts: {sum(restarts.values())} ({', '.join(f'{r} {n}' for r, n in restarts.items() if n)})",
        "- full garbage collections (host.gc_interval_s), how many and the longest: "
        + ", ".join(
            f"{name} {a.get('gc_full')} ({a.get('gc_max_ms')} ms)"
            for name, a in [("root", final), *sorted(final["actors"].items())]
        ),
        f"- journal: {journal0 / MB:.1f} → {journal_end / MB:.1f} MB, "
        f"{(journal_end - journal0) / max(days, 1e-9) / MB:.2f} MB per market day, {len(rows)} rows",
        f"- lost: bus.gap {kinds['bus.gap']}, feed.bar_rejected {kinds['feed.bar_rejected']}, "
        f"exec.sending without an outcome: see the invariants",
        f"- state after the last fault: {back}",
        "- invariants (tests/faults/invariants.py check_run over the whole journal and the emulator's records): "
        + ("all held" if not violations else "VIOLATED"),
    ]
    if maps:
        head = (
            f"Where the USS grew (memory maps, first snapshot after {warmup_s:g} s → last, of each process's "
            "last pid with two snapshots or more):"
        )
        lines += ["", head]
        last_pid: dict[str, int] = {}
        for pid, snaps in maps.items():
            if len(snaps) > 1:
                last_pid[snaps[0][1]] = pid
        for name in sorted(last_pid, key=lambda n: (n != "root", n)):
            snaps = maps[last_pid[name]]
            (t_a, _, a), (t_b, _, b) = snaps[0], snaps[-1]
            lines.append(f"- {name} over {(t_b - t_a) / 60:.0f} min: {soakmaps.growth(a, b)}")
    if violations:
        lines += ["", "```", violations, "```"]
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    raw = args.out.with_suffix(".samples.jsonl")  # every sample, to fit other ways afterwards
    raw.write_text("".join(orjson.dumps(dataclasses.asdict(s)).decode() + "\n" for s in samples))
    print(f"\n(written to {args.out})")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
