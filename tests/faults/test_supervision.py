"""Fault injection against the real tree: kill -9, SIGSTOP, crash loops, root death."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil
import pytest

from actors.runtime.registry import role_names
from tests.conftest import FAST
from tests.helpers import Host, poll_until, running_host

ROLES = role_names(with_emulator=True)

pytestmark = pytest.mark.faults


def _restarted(host: Host, role: str, old_pid: int, restarts: int) -> dict:
    def check() -> dict | bool:
        actor = host.status()["actors"][role]
        ok = actor["pid"] not in (None, old_pid) and actor["status"] == "running" and actor["restarts"] >= restarts
        return actor if ok else False

    return poll_until(check, timeout_s=30, what=f"{role} restarted")


@pytest.mark.parametrize("role", ROLES)
def test_kill_9_of_a_role_restarts_it_with_a_new_pid_and_a_restart_count(host: Host, role: str) -> None:
    # Arrange
    before = host.wait_all_running()
    old_pid = before["actors"][role]["pid"]
    others = {r: a["pid"] for r, a in before["actors"].items() if r != role}
    # Act
    os.kill(old_pid, signal.SIGKILL)
    # Assert
    actor = _restarted(host, role, old_pid, 1)
    assert actor["restarts"] == 1
    status = host.status()
    assert {r: a["pid"] for r, a in status["actors"].items() if r != role} == others  # one_for_one
    exited = [e["body"] for e in host.journal("role.exited")]
    assert exited and exited[-1]["role"] == role and exited[-1]["cause"] == "killed by SIGKILL"
    assert any(e["body"]["role"] == role for e in host.journal("role.restarted"))
    # The role was down: NO_TRADE while down, back to TRADING after the cool-down.
    states = [e["body"]["to"] for e in host.journal("state.changed")]
    assert "NO_TRADE" in states
    host.wait_state("TRADING", timeout_s=20)


def test_a_hung_role_is_killed_after_the_heartbeat_timeout_and_restarted(host: Host) -> None:
    before = host.wait_all_running()
    pid = before["actors"]["risk"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        actor = _restarted(host, "risk", pid, 1)
    finally:
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGCONT)
    assert actor["restarts"] == 1
    lost = host.journal("role.heartbeat_lost")
    assert lost and lost[-1]["body"]["role"] == "risk" and lost[-1]["body"]["pid"] == pid
    exited = host.journal("role.exited")[-1]["body"]
    assert exited["cause"].startswith("hung: no heartbeat for")
    host.wait_state("TRADING", timeout_s=20)


def test_the_system_leaves_trading_while_a_role_is_down_and_returns_after_the_cooldown(host: Host) -> None:
    host.wait_all_running()
    pid = host.status()["actors"]["feed"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        status = host.wait_state("NO_TRADE", timeout_s=20)
        assert any(r["code"] == "role_down:feed" and not r["latched"] for r in status["reasons"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    host.wait_state("TRADING", timeout_s=30)


def test_a_role_that_crashes_on_start_latches_no_trade_and_resume_is_refused_until_it_is_fixed() -> None:
    overrides = [
        *FAST,
        "supervisor.max_restarts=3",
        "supervisor.restart_period_s=60",
        "supervisor.max_start_failures=9",
    ]
    env = {"TRADEHOST_FAULT_INJECT": "crash_on_start:risk"}
    with running_host(overrides, env=env, wait=None) as host:
        status = host.wait_state("NO_TRADE", timeout_s=60)
        status = poll_until(lambda: (s := host.status())["actors"]["risk"]["status"] == "failed" and s, timeout_s=30)
        risk = status["actors"]["risk"]
        assert risk["restarts"] == 3 and risk["pid"] is None and not risk["alive"]
        reason = next(r for r in status["reasons"] if r["code"] == "restart_intensity:risk")
        assert reason["latched"] is True
        assert len(host.journal("role.exited")) == 4  # the first start plus three restarts
        assert host.journal("role.failed")[0]["body"]["role"] == "risk"
        codes = [row["body"]["code"] for row in host.journal("alert")]
        assert codes.count("restart_intensity:risk") == 1, codes
        # No more restarts once the intensity is exceeded.
        exits = len(host.journal("role.exited"))
        poll_until(lambda: host.status()["uptime_s"] > status["uptime_s"] + 1.5, timeout_s=10)
        assert len(host.journal("role.exited")) == exits
        # resume is refused while the role is down for good.
        res = host.ctl("resume")
        assert res.returncode == 1
        assert "restart risk" in res.stderr
        assert host.status()["state"] == "NO_TRADE"


def test_resume_after_an_operator_restart_of_a_failed_role_clears_the_latch(tmp_path) -> None:
    overrides = [*FAST, "supervisor.max_restarts=2", "supervisor.restart_period_s=60"]
    flag = tmp_path / "crash"
    # The role crashes only while the flag file exists: the operator "fixes" it by removing it.
    env = {"TRADEHOST_FAULT_INJECT": "crash_on_start:execution", "TRADEHOST_FAULT_INJECT_WHILE": str(flag)}
    flag.write_text("x")
    with running_host(overrides, env=env, wait=None) as host:
        poll_until(lambda: host.status()["actors"]["execution"]["status"] == "failed", timeout_s=60)
        flag.unlink()
        assert host.ctl("restart", "execution").returncode == 0
        poll_until(lambda: host.status()["actors"]["execution"]["status"] == "running", timeout_s=30)
        assert host.status()["state"] == "NO_TRADE"  # still latched until resume
        res = host.ctl("resume")
        assert res.returncode == 0, res.stderr
        assert "restart_intensity:execution" in res.stdout
        host.wait_state("TRADING", timeout_s=30)


def test_a_role_that_can_never_finish_starting_fails_its_start_and_latches_instead_of_hanging() -> None:
    # Each start times out long after the previous one: the intensity window alone would never fill.
    overrides = [
        *FAST,
        "supervisor.start_timeout_s=1.5",
        "supervisor.max_start_failures=2",
        "supervisor.restart_period_s=1",
    ]
    env = {"TRADEHOST_FAULT_INJECT": "hang_on_start:model"}
    with running_host(overrides, env=env, wait=None) as host:
        status = poll_until(lambda: (s := host.status())["actors"]["model"]["status"] == "failed" and s, timeout_s=60)
        assert status["state"] == "NO_TRADE"
        reason = next(r for r in status["reasons"] if r["code"] == "restart_intensity:model")
        assert reason["latched"] is True and "failed to start 2 times in a row" in reason["detail"]
        lost = [e["body"] for e in host.journal("role.heartbeat_lost")]
        assert len(lost) == 2 and all("no first heartbeat within 1.5s" in b["cause"] for b in lost)
        assert host.journal("role.failed")[0]["body"]["why"] == "failed to start 2 times in a row"


def test_a_dead_worker_ends_its_role_and_the_role_is_restarted(tmp_path) -> None:
    # The reconciler's broker worker dies (as it did on a bare int() of a malformed field): the
    # role must not go on reporting REST "ok"; it fails, and its successor works again.
    flag = tmp_path / "die"
    flag.write_text("x")
    env = {"TRADEHOST_FAULT_INJECT": "worker_dies:reconciler", "TRADEHOST_FAULT_INJECT_WHILE": str(flag)}
    with running_host(FAST, env=env, wait=None) as host:
        crashed = poll_until(lambda: host.journal("role.crashed"), timeout_s=60, what="role.crashed")
        flag.unlink()
        assert crashed[0]["src"] == "reconciler"
        assert "worker reconciler-broker died: RuntimeError: injected fault: worker_dies" in crashed[0]["body"]["error"]
        exited = poll_until(lambda: host.journal("role.exited"), timeout_s=30)
        assert exited[0]["body"]["role"] == "reconciler" and exited[0]["body"]["exitcode"] == 70
        poll_until(lambda: host.journal("role.restarted"), timeout_s=30)
        host.wait_state("TRADING", timeout_s=60)
        rest = host.status()["broker"]["sources"]["rest"]
        assert rest["connected"] is True


def test_kill_9_of_the_root_leaves_no_child_behind() -> None:
    with running_host(FAST) as host:
        host.wait_all_running()
        descendants = host.children()
        assert len(descendants) >= 7  # six roles and the forkserver
        os.kill(host.proc.pid, signal.SIGKILL)
        host.wait_exit(timeout_s=10)

        def all_gone() -> bool:
            alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            return not alive

        poll_until(all_gone, timeout_s=10, what="no orphaned children")


def test_a_role_that_misses_its_shutdown_deadline_is_killed_and_that_is_journaled() -> None:
    with running_host([*FAST, "supervisor.shutdown_timeout_s=1.0", "supervisor.shutdown_protection_s=1.0"]) as host:
        status = host.wait_all_running()
        # execution is stopped first; frozen, it cannot run its shutdown hook.
        pid = status["actors"]["execution"]["pid"]
        os.kill(pid, signal.SIGSTOP)
        os.kill(host.proc.pid, signal.SIGTERM)
        # Frozen, it could not check the open trades' SL/TP either: the host says so with exit 4.
        assert host.wait_exit(timeout_s=60) == 4
        killed = host.journal("role.killed")
        assert killed and killed[0]["body"]["role"] == "execution" and killed[0]["body"]["pid"] == pid
        assert "missed its shutdown deadline" in killed[0]["body"]["cause"]
        completed = host.journal("shutdown.completed")[0]["body"]
        roles = completed["roles"]
        assert roles["execution"] == "killed after missing its shutdown deadline; open trades NOT VERIFIED protected"
        assert completed["protection"]["complete"] is False
        assert all(outcome == "clean" for role, outcome in roles.items() if role != "execution")
