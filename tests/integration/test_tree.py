"""The real tree: start-up, ctl commands, graceful shutdown (real processes and ZeroMQ)."""

from __future__ import annotations

import json
import os
import signal
import stat
from collections.abc import Iterator

import psutil
import pytest

from actors.runtime.registry import role_names
from tests.conftest import FAST
from tests.helpers import Host, poll_until, running_host, short_tmp_dir

ROLES = role_names(with_emulator=True)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def observed() -> Iterator[Host]:
    """One running host (fast timings, TRADING) for the tests that only look at it: none of them
    changes its state, so those that run in one process share its start-up."""
    with running_host(FAST) as h:
        yield h


def test_the_emulator_and_all_six_roles_start_heartbeat_and_the_system_reaches_trading(observed: Host) -> None:
    host = observed
    status = host.wait_all_running()
    assert list(status["actors"]) == list(ROLES)
    pids = {a["pid"] for a in status["actors"].values()}
    assert len(pids) == 7
    descendants = {p.pid for p in host.children()}
    assert pids <= descendants
    for role, actor in status["actors"].items():
        assert actor["alive"], role
        assert actor["restarts"] == 0
        assert actor["heartbeat_age_s"] < 2.0
        assert actor["rss_mb"] > 1
    host.wait_state("TRADING", timeout_s=30)
    assert status["mode"] == "shadow"
    for key in ("reasons", "broker", "positions", "daily_pnl", "dd_zone"):
        assert key in status
    kinds = [e["kind"] for e in host.journal()]
    assert kinds.index("host.started") < kinds.index("recon.completed")


def test_heartbeats_keep_coming_so_heartbeat_age_stays_small(observed: Host) -> None:
    host = observed
    first = host.wait_all_running()
    handled_before = {r: a["handled"] for r, a in first["actors"].items()}
    # Three heartbeat intervals later every role has sent fresh heartbeats.
    later = poll_until(lambda: (s := host.status())["uptime_s"] > first["uptime_s"] + 1.0 and s, timeout_s=10)
    for role, actor in later["actors"].items():
        assert actor["heartbeat_age_s"] < 2.0, role
        assert actor["pid"] == first["actors"][role]["pid"]
    assert handled_before.keys() == later["actors"].keys()


def test_ctl_socket_and_run_dir_are_private(observed: Host) -> None:
    host = observed
    assert stat.S_IMODE(host.run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((host.run_dir / "ctl.sock").stat().st_mode) == 0o600


def test_pause_holds_the_system_out_of_trading_until_resume(host: Host) -> None:
    res = host.ctl("pause")
    assert res.returncode == 0, res.stderr
    status = host.wait_state("PAUSED", timeout_s=10)
    assert status["paused"] is True
    assert "already paused" in host.ctl("pause").stdout
    res = host.ctl("resume")
    assert res.returncode == 0 and "operator_pause" in res.stdout
    host.wait_state("TRADING", timeout_s=10)
    assert [e["kind"] for e in host.journal() if e["kind"].startswith("operator.")] == [
        "operator.pause",
        "operator.resume",
    ]


def test_ctl_restart_replaces_the_process_and_shows_the_new_pid(host: Host) -> None:
    before = host.wait_all_running()["actors"]["model"]
    res = host.ctl("restart", "model")
    assert res.returncode == 0, res.stderr
    after = poll_until(
        lambda: (
            (a := host.status()["actors"]["model"])["pid"] not in (None, before["pid"])
            and a["status"] == "running"
            and a
        ),
        timeout_s=20,
    )
    assert after["restarts"] == 1
    assert not psutil.pid_exists(before["pid"]) or psutil.Process(before["pid"]).status() == psutil.STATUS_ZOMBIE


def test_ctl_usage_errors_exit_2_and_unknown_roles_are_refused(observed: Host) -> None:
    host = observed
    assert host.ctl("frobnicate").returncode == 2
    assert host.ctl("restart", "nosuchrole").returncode == 2
    assert host.ctl("restart").returncode == 2


def test_ctl_without_a_host_exits_3_quickly() -> None:
    run_dir = short_tmp_dir() / "run"
    res = Host(run_dir=run_dir).ctl("status")
    assert res.returncode == 3
    assert "not running" in res.stderr


def test_a_second_host_on_the_same_run_dir_is_refused(observed: Host) -> None:
    host = observed
    second = Host(run_dir=host.run_dir, overrides=FAST).start()
    assert second.wait_exit(timeout_s=30) == 1
    assert "another host is running" in second.log_text()
    host.wait_state("TRADING", timeout_s=30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_shuts_down_gracefully_with_exit_0_and_a_journaled_summary(sig: int) -> None:
    with running_host(FAST) as host:
        children = host.children()
        assert len(children) >= 6
        os.kill(host.proc.pid, sig)
        assert host.wait_exit(timeout_s=30) == 0
        for child in children:
            poll_until(lambda c=child: not c.is_running() or c.status() == psutil.STATUS_ZOMBIE, timeout_s=10)
        summary = host.journal("shutdown.completed")
        assert len(summary) == 1
        body = summary[0]["body"]
        assert body["trigger"] == signal.Signals(sig).name
        assert body["roles"] == {role: "clean" for role in ROLES}
        stopped = [e["src"] for e in host.journal("role.stopped")]
        assert stopped == list(reversed(ROLES))  # reverse start order
        states = [e["body"]["to"] for e in host.journal("state.changed")]
        assert states[-2:] == ["SHUTTING_DOWN", "STOPPED"]
        assert json.loads((host.run_dir / "state.json").read_text())["version"] == 1
        assert not (host.run_dir / "ctl.sock").exists()


def test_ctl_shutdown_exits_0_and_a_second_sigint_does_not_skip_the_safe_steps() -> None:
    with running_host([*FAST, "supervisor.shutdown_timeout_s=5"]) as host:
        res = host.ctl("shutdown")
        assert res.returncode == 0, res.stderr
        os.kill(host.proc.pid, signal.SIGINT)
        assert host.wait_exit(timeout_s=30) == 0
        body = host.journal("shutdown.completed")[0]["body"]
        assert body["trigger"] == "ctl shutdown"
        assert body["roles"] == {role: "clean" for role in ROLES}


def test_latched_reasons_and_pause_survive_a_restart_of_the_host() -> None:
    run_dir = short_tmp_dir() / "run"
    first = Host(run_dir=run_dir, overrides=FAST).start()
    try:
        first.wait_state("TRADING", timeout_s=60)
        assert first.ctl("pause").returncode == 0
        assert first.ctl("shutdown").returncode == 0
        assert first.wait_exit() == 0
    finally:
        first.kill_tree()
    second = Host(run_dir=run_dir, overrides=FAST).start()
    try:
        status = second.wait_state("PAUSED", timeout_s=60)
        assert status["paused"] is True
        assert second.ctl("resume").returncode == 0
        second.wait_state("TRADING", timeout_s=20)
        assert second.ctl("shutdown").returncode == 0
        assert second.wait_exit() == 0
    finally:
        second.kill_tree()


def test_ctrl_c_in_a_terminal_reaches_every_process_and_still_shuts_down_gracefully() -> None:
    with running_host(FAST) as host:
        host.wait_all_running()
        # A terminal's Ctrl-C sends SIGINT to the whole foreground process group.
        os.killpg(os.getpgid(host.proc.pid), signal.SIGINT)
        assert host.wait_exit(timeout_s=30) == 0
        body = host.journal("shutdown.completed")[0]["body"]
        assert body["trigger"] == "SIGINT"
        assert body["roles"] == {role: "clean" for role in ROLES}
