"""Test helpers: polling with deadlines (never bare sleeps) and a real host in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
# The model every test host runs with (built once per machine by tests/conftest.py, like the
# default model `make run` builds: by `tradehost train` from the embedded emulator's history).
TEST_MODEL_DIR = REPO / ".cache" / "test-model"


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold ``.cache/NAME.lock`` (an exclusive ``flock``): one process at a time builds a shared
    file under ``.cache`` (pytest-xdist workers, two test runs in one clone)."""
    import fcntl

    path = REPO / ".cache" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_test_model() -> Path:
    """Build ``TEST_MODEL_DIR`` with `tradehost train` unless a fitting one is there already."""
    from actors.core.config import FeedConfig
    from actors.ml import modelstore
    from actors.ml.features import FEATURE_NAMES, FEATURES_VERSION

    feed = FeedConfig()
    with cache_lock("test-model"):
        try:
            modelstore.load(
                TEST_MODEL_DIR,
                features_version=FEATURES_VERSION,
                feature_names=FEATURE_NAMES,
                granularity=feed.granularity,
                instruments=feed.instruments,
            )
            return TEST_MODEL_DIR
        except (modelstore.ModelMissingError, modelstore.ModelMismatchError):
            pass
        res = run_cli("train", "--out", str(TEST_MODEL_DIR), "--bars", "1500", "--seed", "3")
        if res.returncode != 0:
            raise RuntimeError(f"could not build the test model: {res.stderr[-2000:]}")
    return TEST_MODEL_DIR


# A directory every process of one pytest run shares (the controller and its pytest-xdist
# workers): tests/conftest.py makes it and removes it at the end.
SESSION_DIR_KEY = "tradehost_session_dir"
SESSION_DIR_STASH = pytest.StashKey[Path]()


def session_dir(config: Any) -> Path:
    """This pytest run's shared directory (see ``SESSION_DIR_KEY``)."""
    workerinput = getattr(config, "workerinput", None)
    return Path(workerinput[SESSION_DIR_KEY] if workerinput is not None else config.stash[SESSION_DIR_STASH])


def session_table(config: Any, path: Path, title: str, header: list[str], rows: list[tuple[Any, str]]) -> None:
    """Add ``rows`` ((sort key, Markdown line)) to the table that tests/conftest.py writes to
    ``path`` (after ``header``) and prints under ``title`` when the whole run is over, whichever
    worker ran which test."""
    import uuid

    out = session_dir(config) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    record = {"path": str(path), "title": title, "header": header, "rows": rows}
    tmp = out / f".{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(record))
    tmp.rename(out / f"{tmp.name[1:]}.json")


def session_tables(config: Any) -> dict[Path, tuple[str, list[str], list[str]]]:
    """The tables of this run: path -> (title, header, lines sorted by their keys)."""
    found: dict[Path, tuple[str, list[str], list[tuple[Any, str]]]] = {}
    for file in sorted((session_dir(config) / "tables").glob("*.json")):
        record = json.loads(file.read_text())
        table = found.setdefault(Path(record["path"]), (record["title"], record["header"], []))
        table[2].extend((tuple(key), line) for key, line in record["rows"])
    return {path: (title, header, [line for _, line in sorted(rows)]) for path, (title, header, rows) in found.items()}


class PollTimeout(AssertionError):
    """poll_until ran out of time; the message carries the last observed value."""


def poll_until(fn: Callable[[], T], timeout_s: float = 20.0, interval_s: float = 0.05, what: str = "") -> T:
    """Call ``fn`` until it returns something truthy; fail with the last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = fn()
        except Exception as e:  # observed, kept as the last value
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise PollTimeout(f"timed out after {timeout_s}s waiting for {what or fn}; last value: {last!r}")
        time.sleep(interval_s)


def short_tmp_dir(prefix: str = "th") -> Path:
    """A short temporary directory (ipc socket paths must stay under 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def tradehost_cmd() -> list[str]:
    """How to invoke the CLI with this interpreter."""
    return [sys.executable, "-m", "supervisor"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tradehost ARGS`` to completion (from the repo, 60 s at most)."""
    return subprocess.run(
        [*tradehost_cmd(), *args], capture_output=True, text=True, timeout=60, cwd=str(REPO), env=env, check=False
    )


@dataclass
class Host:
    """A real ``tradehost run`` in a subprocess, with its own run directory."""

    run_dir: Path
    overrides: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _ctl_cache: tuple[tuple[str, ...], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def set_args(self) -> list[str]:
        """``--set`` arguments shared by run and ctl."""
        out = ["--set", f"host.run_dir={json.dumps(str(self.run_dir))}"]
        out += ["--set", f"model.dir={json.dumps(str(TEST_MODEL_DIR))}"]  # a test's own override wins
        # Hosts run side by side (xdist workers, other clones): none serves metrics on the one default
        # port unless its test asks for metrics.listen (tests/integration/test_metrics.py).
        out += ["--set", 'metrics.listen=""']
        for item in self.overrides:
            out += ["--set", item]
        return out

    def start(self) -> Host:
        """Start the host (default config from the repo)."""
        self.log_path = self.run_dir.parent / f"{self.run_dir.name}.log"
        env = {**os.environ, **self.env}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*tradehost_cmd(), "run", "-c", str(REPO / "conf/default.toml"), *self.set_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(REPO),
                start_new_session=True,  # its own process group, like a shell job
            )
        return self

    def ctl(self, *args: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``tradehost ctl`` against this host."""
        return subprocess.run(
            [*tradehost_cmd(), "ctl", "-c", str(REPO / "conf/default.toml"), *self.set_args, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=str(REPO),
            check=False,
        )

    def status(self) -> dict[str, Any]:
        """What ``ctl status --json`` prints, as a dict (raises if the call fails).

        Asked in this process, over the ctl protocol with the client ``tradehost ctl`` uses
        (``supervisor.client.CtlClient``, to the endpoint and timeout ``ctl`` reads from the same
        configuration): a status poll costs a round trip, not an interpreter start (~60 ms of CPU
        each, hundreds per run). The ``ctl`` command itself is tested through ``Host.ctl``.
        """
        reply = self._ctl_client().call("status")
        if not reply.ok:
            raise RuntimeError(f"status failed ({reply.exit_code}): tradehost ctl status: {reply.reason}")
        return reply.result or {}

    def _ctl_client(self) -> Any:
        """The ``CtlClient`` ``tradehost ctl`` builds for this host (its endpoint, timeout, CURVE keys)."""
        key = tuple(self.set_args)
        if self._ctl_cache is None or self._ctl_cache[0] != key:
            from supervisor.config import load_core_config
            from supervisor.ctl.client import CtlClient

            overrides = [arg for arg in self.set_args if arg != "--set"]
            cfg = load_core_config(REPO / "conf/default.toml", overrides, cwd=REPO)
            self._ctl_cache = (key, CtlClient.from_config(cfg.ctl))
        return self._ctl_cache[1]

    def wait_state(self, state: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll status until the system is in ``state``."""
        return poll_until(lambda: (s := self.status())["state"] == state and s, timeout_s, what=f"state {state}")

    def wait_all_running(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll status until every role runs and has heartbeated."""

        def check() -> dict[str, Any] | bool:
            s = self.status()
            ok = all(a["status"] == "running" and a["heartbeat_age_s"] is not None for a in s["actors"].values())
            return s if ok else False

        return poll_until(check, timeout_s, what="all roles running")

    def journal(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Journal entries (read-only connection)."""
        import sqlite3

        db = sqlite3.connect(f"file:{self.run_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
        try:
            query = "SELECT seq, src, kind, body FROM journal"
            rows = db.execute(
                query + (" WHERE kind = ?" if kind else "") + " ORDER BY seq", (kind,) if kind else ()
            ).fetchall()
        finally:
            db.close()
        return [{"seq": r[0], "src": r[1], "kind": r[2], "body": json.loads(r[3])} for r in rows]

    def journal_rows(self, kind: str | None = None) -> list[JournalRow]:
        """Journal entries with their time (``ts_ns``) and ``corr`` (read-only connection)."""
        return read_journal(self.run_dir, kind)

    def config(self) -> Any:
        """The host's configuration as ``tradehost run`` reads it (``supervisor.config.load_config``
        with this host's ``--set`` overrides and environment), for tests that judge the host by its
        own settings."""
        from supervisor.config import load_config

        overrides = [arg for arg in self.set_args if arg != "--set"]
        return load_config(REPO / "conf/default.toml", overrides, cwd=REPO, environ={**os.environ, **self.env})

    def children(self) -> list[psutil.Process]:
        """Every live descendant of the root process."""
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def wait_exit(self, timeout_s: float = 30.0) -> int:
        """Wait for the root to exit; returns its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def log_text(self) -> str:
        """What the host printed."""
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill_tree(self) -> None:
        """Last-resort cleanup: SIGKILL the root and every descendant."""
        if self.proc is None:
            return
        procs = self.children()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@dataclass(frozen=True)
class JournalRow:
    """One journal entry with its time (UTC ns, ``time.time_ns()`` of the writer) and ``corr``."""

    seq: int
    ts_ns: int
    src: str
    kind: str
    corr: str | None
    body: dict[str, Any]


def read_journal(run_dir: Path, kind: str | None = None) -> list[JournalRow]:
    """The journal of ``run_dir`` (every run that used it), oldest first; read-only."""
    import sqlite3

    db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        query = "SELECT seq, ts_ns, src, kind, corr, body FROM journal"
        rows = db.execute(
            query + (" WHERE kind = ?" if kind else "") + " ORDER BY seq", (kind,) if kind else ()
        ).fetchall()
    finally:
        db.close()
    return [JournalRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


def host_report(host: Host) -> str:
    """What a host that did not get where a test waited for left: the status, the journal's last rows,
    the log (printed on a timeout, so a rare failure says why)."""
    parts = []
    try:
        parts.append(f"status: {json.dumps(host.status())[:4000]}")
    except Exception as e:  # the host may not answer at all
        parts.append(f"status: {e!r}")
    try:
        rows = read_journal(host.run_dir)[-40:]
        parts.append(
            "journal tail:\n" + "\n".join(f"{r.seq} {r.src} {r.kind} {json.dumps(r.body)[:300]}" for r in rows)
        )
    except Exception as e:
        parts.append(f"journal: {e!r}")
    parts.append("log tail:\n" + host.log_text()[-8000:])
    return "\n".join(parts)


@contextlib.contextmanager
def running_host(
    overrides: list[str] | None = None,
    env: dict[str, str] | None = None,
    wait: str | None = "TRADING",
    run_dir: Path | None = None,
) -> Iterator[Host]:
    """Start a host (in a new run directory unless given one), wait for ``wait`` (a state), and
    always clean up."""
    run_dir = run_dir or short_tmp_dir() / "run"
    host = Host(run_dir=run_dir, overrides=overrides or [], env=env or {}).start()
    try:
        if wait:
            try:
                # Under the tests' own pytest-timeout (60 s), so a start that never gets there says why.
                host.wait_state(wait, timeout_s=45)
            except BaseException:
                print(host_report(host))
                raise
        yield host
    finally:
        if host.proc is not None and host.proc.poll() is None:
            host.ctl("shutdown")
            with contextlib.suppress(subprocess.TimeoutExpired):
                host.proc.wait(timeout=15)
        host.kill_tree()
