"""The soak's memory slopes (tests/bench/bench_soak.py): a restarted role's refill is no leak, a leak is one."""

from __future__ import annotations

import math

import pytest

from tests.bench.bench_soak import MB, Sample, table

pytestmark = pytest.mark.unit

KILLS_S = (0.0, 300.0, 600.0)  # a role killed -9 twice in a 900 s run, as the soak does
END_S = 900.0


def _role(leak_mb_per_h: float) -> list[Sample]:
    # Each incarnation starts at 15 MB and fills 3 MB of caches within ~100 s (then flat),
    # plus ``leak_mb_per_h`` of steady growth over the process's life.
    out = []
    for n, born in enumerate(KILLS_S):
        dies = KILLS_S[n + 1] if n + 1 < len(KILLS_S) else END_S
        t = born
        while t < dies:
            age = t - born
            mb = 15 + 3 * (1 - math.exp(-age / 20)) + leak_mb_per_h * age / 3600
            out.append(Sample(t, t / 86400 * 24, "risk", 1000 + n, int(mb * MB), int(mb * MB), 20, 5))
            t += 5
    return out


def _uss_slope(samples: list[Sample]) -> float:
    lines = table(samples, 120.0, {"risk": 2})
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = next(line for line in lines if line.startswith("| risk"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    return float(cells[header.index("USS MB/h")])


def test_the_refill_of_a_restarted_role_is_not_read_as_growth() -> None:
    assert abs(_uss_slope(_role(0.0))) < 0.3


def test_a_steady_leak_is_read_at_its_rate_across_restarts() -> None:
    assert _uss_slope(_role(5.0)) == pytest.approx(5.0, abs=0.3)
