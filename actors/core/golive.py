"""The go-live gate: what ``broker.environment = "live"`` needs before the host starts.

A live account starts only with the evidence of a shadow period behind it: the verdict file
``report.json`` that ``tradehost report`` writes beside ``report.md`` (``VERDICT_FILE``), which
must say the report passed, be younger than ``host.max_report_age_days`` and name the model
version the configuration trades (``model.dir``'s ``model.json``); and alert mail must be
configured (``alerts.smtp_host``), so that the first fault of a live host reaches a person. The
operator's ``TRADEHOST_CONFIRM_LIVE=yes`` stays the last step
(``actors.broker.config.check_live_guard``, which calls this rule). Pure: the files are read and
the clock is read by the caller (``supervisor.hostconfig``) and handed in as ``GoLiveEvidence``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SHORT_VERSION", "VERDICT_FILE", "GoLiveEvidence", "missing_for_live"]

VERDICT_FILE = "report.json"
SHORT_VERSION = 12  # hex digits of a model version in signals and in report.json (ModelMeta.short_version)
_DAY_NS = 86_400 * 10**9
_FUTURE_SLACK_NS = 300 * 10**9  # a verdict dated this far ahead of the clock is not believed


@dataclass(frozen=True, slots=True, kw_only=True)
class GoLiveEvidence:
    """What the gate judges, read by the caller.

    Attributes:
        verdict_path: where the verdict file was looked for.
        verdict: the parsed ``report.json`` (None: missing or unreadable, ``verdict_error`` says why).
        verdict_error: why there is no verdict.
        model_version: the configured model's version (``model.json`` ``version``; None: unreadable).
        model_error: why there is no model version.
        smtp_host: ``alerts.smtp_host``.
        max_report_age_days: ``host.max_report_age_days``.
        now_ns: the current UTC time.
    """

    verdict_path: str
    verdict: Mapping[str, Any] | None
    verdict_error: str = ""
    model_version: str | None
    model_error: str = ""
    smtp_host: str
    max_report_age_days: float
    now_ns: int


def missing_for_live(evidence: GoLiveEvidence) -> list[str]:
    """What a live start still lacks, each in a few words (empty: nothing)."""
    missing = []
    verdict, path = evidence.verdict, evidence.verdict_path
    if verdict is None:
        missing.append(f"a passed `tradehost report` verdict ({path}: {evidence.verdict_error or 'missing'})")
    else:
        if verdict.get("passed") is not True:
            lines = verdict.get("lines")
            failed = [
                str(line.get("key"))
                for line in (lines if isinstance(lines, list) else [])
                if isinstance(line, Mapping) and line.get("passed") is not True
            ]
            missing.append(f"a report that passed ({path} failed: {', '.join(failed) or 'not passed'})")
        written = verdict.get("written_ns")
        if not isinstance(written, int) or isinstance(written, bool):
            missing.append(f"a dated report ({path} has no written_ns)")
        else:
            age_days = (evidence.now_ns - written) / _DAY_NS
            limit = evidence.max_report_age_days
            if written > evidence.now_ns + _FUTURE_SLACK_NS:
                missing.append(f"a report dated in the past ({path} is dated {-age_days:.1f} days ahead of the clock)")
            elif not math.isfinite(age_days) or age_days > limit:
                missing.append(
                    f"a report younger than host.max_report_age_days = {limit:g} ({path} is {age_days:.1f} days old)"
                )
        named = verdict.get("model_version")
        if evidence.model_version is None:
            missing.append(f"the configured model's version (model.dir: {evidence.model_error or 'unreadable'})")
        elif named != evidence.model_version[:SHORT_VERSION]:
            missing.append(
                f"a report on the configured model {evidence.model_version[:SHORT_VERSION]} ({path} names {named})"
            )
    if not evidence.smtp_host.strip():
        missing.append("alert mail (alerts.smtp_host is empty)")
    return missing
