"""``HostConfig``: the core sections, the shared ``[broker]`` section, the roles' own sections,
and the rules that span them.

The roles' config classes live in ``actors.core.config``, and the role registry
(``actors.runtime.registry``) says which TOML section each role reads and which class it is. This
module derives the role sections from the registry, so adding a role's config is one class and
one registry line; it never imports a role's module (so ``tradehost run`` does not import pandas
or CatBoost in the root). ``tradehost ctl`` only needs the core sections and never imports this
module (``supervisor.config.load_core_config``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from actors.alerting.config import AlertsConfig, load_smtp_password
from actors.broker.config import BrokerConfig, check_live_guard, load_credentials
from actors.core.config import ExecutionConfig, FeedConfig, ModelConfig, ReconcilerConfig, RiskConfig, WatchdogConfig
from actors.core.errors import ConfigError
from actors.core.golive import VERDICT_FILE, GoLiveEvidence
from actors.runtime import registry
from supervisor.coreconfig import CoreConfig

__all__ = ["HostConfig", "check_host_config", "role_config_classes"]

_T = TypeVar("_T")


def role_config_classes() -> dict[str, type[Any]]:
    """Top-level section name -> config class, for every role that owns a section."""
    out: dict[str, type[Any]] = {}
    for spec in registry.ROLES:
        if spec.owns_section and spec.section is not None:
            cls = registry.config_class(spec.name)
            if cls is None:
                raise TypeError(f"role {spec.name} names section [{spec.section}] but no config class")
            out[spec.section] = cls
    return out


def _default_role_configs() -> dict[str, object]:
    return {section: cls() for section, cls in role_config_classes().items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class HostConfig(CoreConfig):
    """The whole validated configuration of ``tradehost run``.

    ``roles`` maps each role-owned section (``feed``, ``reconciler``, ...) to its config object;
    it is filled by the loader from the registry, never by hand.
    """

    broker: BrokerConfig = field(default_factory=BrokerConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    roles: Mapping[str, object] = field(default_factory=_default_role_configs, metadata={"internal": True})

    def role_config(self, role: str) -> object:
        """The config object role ``role`` runs with (None for a role without a section).

        Raises:
            ConfigError: the role's section is missing (never a silent default).
        """
        section = registry.spec(role).section
        if section is None:
            return None
        if "." not in section:
            try:
                return self.roles[section]
            except KeyError as e:
                raise ConfigError(f"{section}: the configuration of role {role} is missing") from e
        node: object = self
        for part in section.split("."):
            node = getattr(node, part)
        return node

    def shared_for(self, role: str) -> dict[str, object]:
        """The other sections ``role`` reads (its registry entry's ``reads``): other roles' or
        shared ones."""
        return {
            name: self.roles[name] if name in self.roles else getattr(self, name) for name in registry.spec(role).reads
        }

    def section(self, name: str, cls: type[_T]) -> _T:
        """A role-owned section, typed (for rules that span sections)."""
        value = self.roles[name]
        if not isinstance(value, cls):
            raise ConfigError(f"{name}: expected {cls.__name__}, got {type(value).__name__}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every section, the role sections at the top level as in the TOML."""
        out = CoreConfig.to_dict(self)
        out.pop("roles", None)
        for name, value in self.roles.items():
            out[name] = dataclasses.asdict(value)  # type: ignore[call-overload]
        return out


def check_host_config(cfg: HostConfig, environ: Mapping[str, str]) -> None:
    """Rules across sections and the environment (secrets, live guard).

    Raises:
        ConfigError: one line per problem.
    """

    problems: list[str] = []
    for check in (
        lambda: check_live_guard(cfg.broker, cfg.host.mode, environ, go_live_evidence(cfg)),
        lambda: load_credentials(environ, kind=cfg.broker.kind, token_file=cfg.broker.token_file),
        lambda: load_smtp_password(cfg.alerts, environ),
    ):
        try:
            check()
        except ConfigError as e:
            problems.extend(e.problems)
    feed = cfg.section("feed", FeedConfig)
    unknown = sorted(set(feed.instruments) - set(cfg.broker.emulator.instruments))
    if cfg.broker.kind == "emulator" and unknown:
        problems.append(f"feed.instruments: {unknown} are not offered by broker.emulator.instruments")
    problems.extend(_deadline_problems(cfg))
    if problems:
        raise ConfigError(problems)


def go_live_evidence(cfg: HostConfig, now_ns: int | None = None) -> GoLiveEvidence | None:
    """What the go-live gate judges (``actors.core.golive``), read from the verdict file and the
    model directory; None unless ``broker.environment = "live"``."""
    if cfg.broker.environment != "live":
        return None
    path = cfg.host.go_live_report or os.path.join(cfg.host.run_dir, VERDICT_FILE)  # noqa: PTH118
    verdict, verdict_error = _read_json(path)
    model_dir = cfg.section("model", ModelConfig).dir
    meta, model_error = _read_json(os.path.join(model_dir, "model.json"))  # noqa: PTH118
    version = meta.get("version") if meta is not None else None
    if meta is not None and not (isinstance(version, str) and version):
        model_error = f"{model_dir}/model.json has no version"
    return GoLiveEvidence(
        verdict_path=path,
        verdict=verdict,
        verdict_error=verdict_error,
        model_version=version if isinstance(version, str) and version else None,
        model_error=model_error,
        smtp_host=cfg.alerts.smtp_host,
        max_report_age_days=cfg.host.max_report_age_days,
        now_ns=time.time_ns() if now_ns is None else now_ns,
    )


def _read_json(path: str) -> tuple[dict[str, Any] | None, str]:
    try:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123
            data = json.load(handle)
    except FileNotFoundError:
        return None, "no such file"
    except (OSError, ValueError) as e:
        return None, f"unreadable ({e})"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    return data, ""


def _deadline_problems(cfg: HostConfig) -> list[str]:
    """Deadlines against the waits they cover: the watchdog's (shorter, they would raise their
    reason on a healthy host for ever) and the risk role's intent expiry (shorter, an intent still
    being sent could stop counting as a position).
    """
    watchdog = cfg.section("watchdog", WatchdogConfig)
    risk = cfg.section("risk", RiskConfig)
    reconciler = cfg.section("reconciler", ReconcilerConfig)
    problems = []
    if watchdog.decision_deadline_s <= risk.exits_wait_s:
        problems.append(
            f"watchdog.decision_deadline_s: must be longer than risk.exits_wait_s ({watchdog.decision_deadline_s:g} <= "
            f"{risk.exits_wait_s:g}), else a bar waiting for its exit check is reported decision_overdue"
        )
    execution = cfg.section("execution", ExecutionConfig)
    unseen_s = execution.max_intent_age_s + cfg.broker.timeout_s + reconciler.poll_interval_s
    if risk.intent_expiry_s <= unseen_s:
        problems.append(
            f"risk.intent_expiry_s: must be longer than execution.max_intent_age_s + broker.timeout_s + "
            f"reconciler.poll_interval_s ({risk.intent_expiry_s:g} <= {unseen_s:g}), else an intent the execution "
            "role is still sending could stop counting as a position"
        )
    if watchdog.account_max_age_s <= reconciler.poll_interval_s:
        problems.append(
            "watchdog.account_max_age_s: must be longer than reconciler.poll_interval_s "
            f"({watchdog.account_max_age_s:g} <= {reconciler.poll_interval_s:g}), "
            "else every healthy account read is reported account_stale"
        )
    return problems
