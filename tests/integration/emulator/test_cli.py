"""The emulator's command line: --help, --port 0 prints the port, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from actors.broker.emulator.cli import main

pytestmark = pytest.mark.integration


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--host",
        "--port",
        "--token",
        "--account",
        "--seed",
        "--speed",
        "--instruments",
        "--data",
        "--port-file",
    ):
        assert option in out


def test_unknown_instrument_is_a_usage_error(capsys):
    assert main(["--instruments", "FOO_BAR"]) == 2


def test_port_zero_prints_the_port_and_sigterm_stops(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "actors.broker.emulator", "--port", "0", "--port-file", str(port_file),
         "--start", "2024-03-06T14:00:00Z"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        assert int(port_file.read_text()) == port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/state", timeout=10) as response:
            assert json.loads(response.read())["market_open"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize(
    ("argv", "flag"),
    [(["--balance", "abc"], "--balance"), (["--host", "0.0.0.0"], "--host"), (["--port", "70000"], "--port")],
)
def test_a_bad_option_stops_the_real_command_with_one_line_and_exit_2(argv, flag):
    proc = subprocess.run(
        [sys.executable, "-m", "actors.broker.emulator", *argv], check=False, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tradehost emulator: {flag}: "), proc.stderr
    assert proc.stdout == ""  # no port was printed: nothing started
