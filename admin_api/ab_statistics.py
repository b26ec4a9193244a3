"""Rates and means with 95% confidence intervals, for comparing two groups of sessions
(GET /api/v1/analytics/compare). Pure: numbers in, numbers out, no services.

A rate (escalated sessions, turns whose field took a value) gets a Wilson score interval: the
textbook normal ("Wald") interval p +- z*sqrt(p(1-p)/n) collapses to [0, 0] at 0 successes and
leaves [0, 1] at small n, where A/B samples of a new variant live; Wilson stays inside [0, 1],
is never empty at 0/n or n/n (0 of 10 escalated: [0, 0.278]) and is close to nominal coverage
from n of a few on (Brown, Cai & DasGupta 2001). 0 of 0 has no rate and no interval.

A mean (turns per session, latency, tokens) gets Student's t interval, mean +- t(0.975, n-1) *
s/sqrt(n): a new variant is often compared on a handful of sessions, where the normal
approximation's 1.96 is too narrow (at n = 5 the t quantile is 2.776, an interval 42% wider; at
n = 30, 2.045, 4%; at n = 1000 they agree to 0.1%). Latency and token counts are skewed,
so the interval rests on the central limit theorem: close to its 95% from a few dozen sessions
on, a rough guide below that. Fewer than 2 values: no spread to measure, no interval.
"""

import math
from collections.abc import Iterable
from statistics import NormalDist

from pydantic import BaseModel, Field

Z95 = NormalDist().inv_cdf(0.975)
"""1.959963..., the two-sided 95% quantile of the normal distribution."""

_T975 = (
    12.706204736,
    4.302652730,
    3.182446305,
    2.776445105,
    2.570581836,
    2.446911851,
    2.364624252,
    2.306004135,
    2.262157163,
    2.228138852,
    2.200985160,
    2.178812830,
    2.160368656,
    2.144786688,
    2.131449546,
    2.119905299,
    2.109815578,
    2.100922040,
    2.093024054,
    2.085963447,
    2.079613845,
    2.073873068,
    2.068657610,
    2.063898562,
    2.059538553,
    2.055529439,
    2.051830516,
    2.048407142,
    2.045229642,
    2.042272456,
)
"""Student's t 0.975 quantile for 1..30 degrees of freedom (the standard table)."""


class Rate(BaseModel):
    """`successes` of `n`, with the Wilson score 95% interval; no value and no interval at n = 0."""

    value: float | None
    successes: int
    n: int
    ci95: tuple[float, float] | None = Field(description="Wilson score interval; null at n = 0.")


class Mean(BaseModel):
    """The mean of `n` values, with Student's t 95% interval; no interval below 2 values."""

    mean: float | None
    n: int
    ci95: tuple[float, float] | None = Field(
        description="Student's t interval; null with fewer than 2 values."
    )


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of successes/n; None for n = 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return None
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # exactly 0 and 1 at the ends (rounding would leave 1e-17 outside)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def rate(successes: int, n: int) -> Rate:
    return Rate(
        value=successes / n if n else None,
        successes=successes,
        n=n,
        ci95=wilson_interval(successes, n),
    )


def t_quantile_975(degrees_of_freedom: int) -> float:
    """Student's t 0.975 quantile: the table up to 30 degrees of freedom, then the
    Cornish-Fisher expansion in 1/df (Abramowitz & Stegun 26.7.5), which is already within 1e-7
    of the table at 30 degrees of freedom and closer beyond."""
    if degrees_of_freedom < 1:
        raise ValueError("degrees of freedom must be >= 1")
    if degrees_of_freedom <= len(_T975):
        return _T975[degrees_of_freedom - 1]
    z, v = Z95, float(degrees_of_freedom)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4


def mean(values: Iterable[float]) -> Mean:
    """The mean and its t interval (the sample standard deviation, n - 1 in the divisor)."""
    numbers = [float(value) for value in values]
    n = len(numbers)
    if n == 0:
        return Mean(mean=None, n=0, ci95=None)
    average = math.fsum(numbers) / n
    if n < 2:
        return Mean(mean=average, n=n, ci95=None)
    variance = math.fsum((x - average) ** 2 for x in numbers) / (n - 1)
    half = t_quantile_975(n - 1) * math.sqrt(variance / n)
    return Mean(mean=average, n=n, ci95=(average - half, average + half))
