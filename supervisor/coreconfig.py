"""The sections the root process and ``tradehost ctl`` need (``CoreConfig``: ``[host]``,
``[supervisor]``, ``[ctl]``, ``[bus]``); ``supervisor.hostconfig.HostConfig`` adds the roles' and
the shared sections, and ``supervisor.config`` loads and checks both. Nothing here imports a role
or the broker: ``tradehost ctl`` reads these sections alone, and starts fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from actors.core.errors import ConfigError
from supervisor.childspec import SupervisorConfig
from supervisor.ctl.client import CtlConfig

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LOOPBACK", "MAX_IPC_PATH", "BusConfig", "CoreConfig", "HostSection", "LogLevel", "MetricsConfig", "Mode"]

Mode = Literal["shadow", "live"]
LogLevel = Literal["debug", "info", "warning", "error"]

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_IPC_PATH = 107


@dataclass(frozen=True, slots=True, kw_only=True)
class HostSection:
    """The ``[host]`` section."""

    run_dir: str = field(
        default="var", metadata={"doc": "Directory for sockets, journal, state and lock (created 0700)."}
    )
    mode: Mode = field(default="shadow", metadata={"doc": "shadow: simulated fills, nothing sent; live: real orders."})
    log_level: LogLevel = field(default="info", metadata={"doc": "Threshold of the JSON-lines log on stderr."})
    max_report_age_days: float = field(
        default=30.0,
        metadata={
            "doc": 'broker.environment = "live" needs a passed `tradehost report` verdict younger than this (days).',
            "min": 0.01,
            "max": 3650.0,
        },
    )
    go_live_report: str = field(
        default="",
        metadata={
            "doc": "The report.json a live start reads (written by `tradehost report`); empty: run_dir/report.json."
        },
    )
    journal_warn_mb: float = field(
        default=2048.0,
        metadata={
            "doc": "The journal (with its -wal) larger than this (MB): `ctl status` warns (journal.warn) to archive "
            "old rows with `tradehost journal archive`; 0: off.",
            "min": 0.0,
            "max": 1e9,
        },
    )
    gc_interval_s: float = field(
        default=60.0,
        metadata={
            "doc": "Every process of the tree (root and roles) runs a full garbage collection this often "
            "(seconds; 0 or at least 0.5); 0: only CPython's own, which in a role never came in a soak (README).",
            "min": 0.0,
            "max": 3600.0,
        },
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BusConfig:
    """The ``[bus]`` section: where the event proxy and the control channel listen."""

    events_in: str = field(default="", metadata={"doc": "Publishers connect here (XSUB); empty: ipc in run_dir."})
    events_out: str = field(default="", metadata={"doc": "Subscribers connect here (XPUB); empty: ipc in run_dir."})
    control: str = field(
        default="", metadata={"doc": "Supervisor<->role control channel (ROUTER); empty: ipc in run_dir."}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """The ``[metrics]`` section: where the root serves Prometheus metrics (``supervisor.metrics``)."""

    listen: str = field(
        default="127.0.0.1:9464",
        metadata={
            "doc": "HOST:PORT of the Prometheus /metrics endpoint the root serves (IPv6 as [::1]:9464); "
            "empty: off. A port in use refuses the start (exit 2)."
        },
    )

    def __post_init__(self) -> None:
        if self.listen and split_listen(self.listen) is None:
            raise ConfigError(
                f"metrics.listen: expected HOST:PORT (port 1-65535, IPv6 as [::1]:9464) or empty, got {self.listen!r}"
            )


def split_listen(listen: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[IPv6]:PORT``) as (host, port), or None when it is not one."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or "[" in host or "]" in host or (":" in host and not listen.startswith("[")):
        return None
    return host, int(port)


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreConfig:
    """The sections the root and ``tradehost ctl`` need; ``HostConfig`` adds the roles' sections."""

    host: HostSection = field(default_factory=HostSection)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    ctl: CtlConfig = field(default_factory=CtlConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source: str = field(default="", metadata={"internal": True})

    @property
    def run_dir(self) -> Path:
        """The run directory as an absolute path."""
        from pathlib import Path  # noqa: PLC0415 - not at the top: `tradehost ctl` never needs pathlib

        return Path(self.host.run_dir)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every section (nothing secret lives in the configuration)."""
        out = dataclasses.asdict(self)
        out.pop("source", None)
        return out
