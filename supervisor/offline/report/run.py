"""``tradehost report``: a shadow run's journal next to a backtest of the same window, as a checklist.

Reads the shadow run's ``journal.sqlite`` (read-only: a running host may still be writing it) and
the backtest's output directory (its ``journal.sqlite`` and ``metrics.json``), runs the checks of
``supervisor.offline.report.checks`` over the compared window and writes ``report.md`` with its plots into
``--out``: ``pnl.png`` (cumulative realized P&L of both sides by signal bar), ``equity.png`` (the
run's NAV and drawdown from its ``account.snapshot`` rows, drawn like the backtest's), ``slippage.png`` and
``latency.png``, and every unmatched entry with its explanation in ``differences.csv``, and the
verdict as ``report.json`` (every line, the model version the run traded, when it was written):
the go-live gate of ``broker.environment = "live"`` reads it (``actors.core.golive``). A line the
run did not observe fails unless ``--allow-unobserved`` names it (``ReportLimits``).
``tradehost report`` prints the checklist and exits 0 when every line passes, 1 otherwise; an
unreadable input is exit 2.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.core.errors import TradehostError
from actors.core.timefmt import format_rfc3339
from actors.runtime.journal import JournalEntry
from supervisor.offline.backtest.metrics import plot_equity, sample_lines
from supervisor.offline.report.checks import (
    CheckLine,
    ReportLimits,
    check_crashes,
    check_data_quality,
    check_disconnections,
    check_duration,
    check_latency,
    check_memory,
    check_slippage,
    check_weekends,
    check_win_rate,
    run_mode,
)
from supervisor.offline.report.match import Difference, check_match
from supervisor.offline.report.sides import (
    Side,
    Window,
    compared_window,
    cumulative_pnl,
    latencies_ms,
    model_versions,
    slippages,
)

__all__ = ["Report", "ReportError", "ReportLimits", "read_journal", "write_report"]

REPORT_FILE = "report.md"
VERDICT_FILE = "report.json"  # what the go-live gate reads (actors.core.golive)


class ReportError(TradehostError):
    """An input of the report is missing or unreadable; the message says which, in one line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """The checklist and where it was written.

    Attributes:
        lines: the checklist, in order.
        window: the compared window (None: the two runs share no bar).
        differences: every unmatched entry, explained.
        path: ``report.md``.
    """

    lines: tuple[CheckLine, ...]
    window: Window | None
    differences: tuple[Difference, ...]
    path: Path

    @property
    def passed(self) -> bool:
        """Every line passed."""
        return all(line.passed for line in self.lines)

    def summary(self) -> str:
        """The checklist as printed by ``tradehost report``."""
        head = f"compared window: {self.window.describe() if self.window else 'none'}"
        body = [f"{line.verdict}  {line.name}: {line.figures}" for line in self.lines]
        verdict = "every line passes" if self.passed else f"{sum(not x.passed for x in self.lines)} lines fail"
        return "\n".join([head, *body, f"{verdict}; wrote {self.path}"])


def read_journal(path: Path, archives: Sequence[Path] = ()) -> list[JournalEntry]:
    """Every row of a journal and of its ``archives`` (``tradehost journal archive``), oldest first,
    through read-only connections (``supervisor.offline.archive.read_with_archives``).

    Raises:
        ReportError: no such file, not a tradehost journal (archive), or rows the journal says were
            archived missing from ``archives``.
    """
    from supervisor.offline.archive import ArchiveError, read_with_archives  # noqa: PLC0415

    try:
        return read_with_archives(path, archives)
    except ArchiveError as e:
        raise ReportError(str(e)) from e


def _backtest_summary(directory: Path, entries: list[JournalEntry]) -> dict[str, Any]:
    done = [e for e in entries if e.kind == "backtest.completed"]
    if done:
        return done[-1].body
    metrics = directory / "metrics.json"
    try:
        data: dict[str, Any] = json.loads(metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReportError(f"{directory}: not a backtest directory (no backtest.completed row, {metrics}: {e})") from e
    return data


def write_report(
    journal: Path, backtest_dir: Path, out_dir: Path, *, limits: ReportLimits, archives: Sequence[Path] = ()
) -> Report:
    """Compare, check, write ``report.md`` and its plots (see the module docstring).

    Raises:
        ReportError: an input is missing or unreadable, or the journal is a backtest's or has no decision.
    """
    shadow_entries = read_journal(journal, archives)
    if shadow_entries and all(e.src == "backtest" for e in shadow_entries):
        raise ReportError(f"{journal}: a backtest's journal, not a shadow run's (give the run's journal.sqlite)")
    if not any(e.kind in ("risk.intent", "risk.skip") for e in shadow_entries):
        raise ReportError(f"{journal}: no decision in this journal (risk.intent / risk.skip): nothing to compare")
    shadow = Side("shadow", shadow_entries)
    backtest_entries = read_journal(backtest_dir / "journal.sqlite")
    summary = _backtest_summary(backtest_dir, backtest_entries)
    backtest = Side("backtest", backtest_entries)
    granularity = str(summary.get("granularity", "M15"))
    window = compared_window(shadow, backtest)
    lines: list[CheckLine] = [check_duration(shadow, window, granularity, limits)]
    differences: list[Difference] = []
    if window is None:
        lines.append(
            CheckLine(key="overlap", name="the runs overlap", passed=False, figures="no bar decided on by both sides")
        )
    else:
        lines.append(check_win_rate(shadow, backtest, window, limits))
    lines += [check_crashes(shadow), check_weekends(shadow, granularity), check_disconnections(shadow)]
    lines.append(check_memory(shadow, limits, granularity))
    if window is not None:
        match, differences = check_match(shadow, backtest, window, limits, granularity)
        lines.append(match)
    lines += [check_slippage(shadow, backtest, window, limits), check_latency(shadow, limits)]
    lines.append(check_data_quality(shadow, limits))
    lines = [_allowance(line, limits) for line in lines]
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = _plots(out_dir, shadow, backtest, window)
    _write_differences(out_dir / "differences.csv", differences)
    path = out_dir / REPORT_FILE
    report = Report(lines=tuple(lines), window=window, differences=tuple(differences), path=path)
    _write_verdict(
        out_dir / VERDICT_FILE,
        report,
        journal=journal,
        backtest_dir=backtest_dir,
        summary=summary,
        shadow=shadow,
        limits=limits,
    )
    path.write_text(
        _markdown(
            report,
            journal=journal,
            backtest_dir=backtest_dir,
            summary=summary,
            shadow=shadow,
            backtest=backtest,
            plots=plots,
        ),
        encoding="utf-8",
    )
    return report


def _allowance(line: CheckLine, limits: ReportLimits) -> CheckLine:
    # A line that observed nothing passes only when the operator said so, by its key.
    if line.observed:
        return line
    if line.key in limits.allow_unobserved:
        return dataclasses.replace(
            line, passed=True, figures=f"{line.figures} (allowed: --allow-unobserved {line.key})"
        )
    return dataclasses.replace(
        line, passed=False, figures=f"{line.figures} (a FAIL; --allow-unobserved {line.key} accepts it)"
    )


def _write_verdict(
    path: Path,
    report: Report,
    *,
    journal: Path,
    backtest_dir: Path,
    summary: dict[str, Any],
    shadow: Side,
    limits: ReportLimits,
) -> None:
    written_ns = time.time_ns()
    versions = model_versions(shadow)
    verdict = {
        "passed": report.passed,
        "written_ns": written_ns,
        "written_at": format_rfc3339(written_ns),
        "mode": run_mode(shadow),
        "model_version": versions[0] if versions else None,
        "model_versions": versions,
        "backtest_model_version": summary.get("model_version"),
        "journal": str(journal.resolve()),
        "backtest": str(backtest_dir.resolve()),
        "window": None if report.window is None else [report.window.first_ns, report.window.last_ns],
        "limits": {k: sorted(v) if isinstance(v, frozenset) else v for k, v in dataclasses.asdict(limits).items()},
        "lines": [
            {
                "key": line.key,
                "name": line.name,
                "verdict": line.verdict,
                "passed": line.passed,
                "figures": line.figures,
            }
            for line in report.lines
        ],
    }
    path.write_text(json.dumps(verdict, indent=2) + "\n", encoding="utf-8")


def _write_differences(path: Path, differences: list[Difference]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("instrument", "bar", "shadow", "backtest", "why"))
        for d in differences:
            writer.writerow((d.instrument, format_rfc3339(d.bar_ts), d.shadow, d.backtest, d.why))


def _markdown(
    report: Report,
    *,
    journal: Path,
    backtest_dir: Path,
    summary: dict[str, Any],
    shadow: Side,
    backtest: Side,
    plots: list[tuple[str, str]],
) -> str:
    versions = model_versions(shadow)
    mode = run_mode(shadow).capitalize()
    out = [
        f"# {mode} run vs backtest",
        "",
        f"- {mode} journal: `{journal}` ({len(shadow.entries)} rows; model {', '.join(versions) or 'none'})",
        f"- Backtest: `{backtest_dir}` (model {summary.get('model_version')}, "
        f"{', '.join(summary.get('instruments', []))} {summary.get('granularity')}, journal level "
        f"{summary.get('journal')})",
        f"- Compared window: {report.window.describe() if report.window else 'none (the runs share no bar)'}",
    ]
    # The backtest's results on and after the model's training bars (issue 17, defect 7).
    out += [f"- Backtest {line}" for line in sample_lines(summary.get("metrics", {}), summary.get("home_currency", ""))]
    if versions and summary.get("model_version") not in versions:
        out.append(f"- **The models differ**: shadow {versions[0]}, backtest {summary.get('model_version')}")
    verdict = "every line passes" if report.passed else f"{sum(not x.passed for x in report.lines)} lines fail"
    out += ["", f"## Checklist: {verdict}", "", "| verdict | line | check | figures |", "| --- | --- | --- | --- |"]
    out += [f"| **{line.verdict}** | `{line.key}` | {line.name} | {line.figures} |" for line in report.lines]
    for line in report.lines:
        if line.details:
            out += ["", f"### {line.name}", "", *[f"- {d}" for d in line.details]]
    if report.differences:
        out += ["", f"All {len(report.differences)} differences are listed in `differences.csv` beside this file."]
    out += ["", "## Plots", ""]
    out += [f"![{title}]({name})" for name, title in plots]
    return "\n".join(out) + "\n"


def account_equity(side: Side) -> list[tuple[int, float]]:
    """The run's NAV over time: every ``account.snapshot`` row the reconciler journaled (one per
    change of the account's figures), as (time, NAV); rows without a readable NAV are left out."""
    points = []
    for entry in side.rows("account.snapshot"):
        try:
            points.append((entry.ts_ns, float(entry.body["nav"])))
        except (KeyError, TypeError, ValueError):
            continue
    return points


def _plots(out_dir: Path, shadow: Side, backtest: Side, window: Window | None) -> list[tuple[str, str]]:
    import matplotlib  # noqa: PLC0415 - plotting loads only when a report is written

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    made = []
    if window is not None:
        fig, ax = plt.subplots(figsize=(9, 4), constrained_layout=True)
        drawn = False
        for side, style in ((shadow, "-"), (backtest, "--")):
            points = cumulative_pnl(side, window, skip=("end_of_data",))
            if points:
                drawn = True
                ax.step(
                    [format_rfc3339(b)[5:16] for b, _ in points],
                    [v for _, v in points],
                    style,
                    where="post",
                    label=side.name,
                )
        ax.set_title("cumulative realized P&L by signal bar (home currency)")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        if drawn:
            ax.legend()
        ax.grid(alpha=0.3)
        fig.savefig(out_dir / "pnl.png", dpi=90, metadata={"Software": None})
        plt.close(fig)
        made.append(("pnl.png", "cumulative P&L"))
    equity = account_equity(shadow)
    if equity:
        plot_equity(
            out_dir / "equity.png",
            [ts for ts, _ in equity],
            [nav for _, nav in equity],
            title=f"{shadow.name} run: NAV from its account.snapshot rows, drawdown from the running peak",
        )
        made.append(("equity.png", "NAV and drawdown (account.snapshot)"))
    for name, title, series in (
        (
            "slippage.png",
            "slippage (pips)",
            {"shadow": slippages(shadow, window), "backtest": slippages(backtest, window)},
        ),
        ("latency.png", "bar -> order latency (ms)", {"shadow": latencies_ms(shadow)}),
    ):
        fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
        for label, values in series.items():
            if values:
                ax.hist(values, bins=30, alpha=0.6, label=f"{label} (n={len(values)})")
        ax.set_title(title)
        if any(series.values()):
            ax.legend()
        fig.savefig(out_dir / name, dpi=90, metadata={"Software": None})
        plt.close(fig)
        made.append((name, title))
    return made
