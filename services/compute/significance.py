"""Is B's conversion rate really different from A's? Tests for two binomial counts.

- Difference ``p_B - p_A`` with Newcombe's hybrid score interval (Newcombe 1998, "Interval estimation for the
  difference between independent proportions", method 10: Wilson intervals of each rate combined), which stays
  inside [-1, 1] and behaves at 0 % and 100 %, where the Wald interval collapses.
- Two-sided p-value: the pooled two-proportion z-test, or Fisher's exact test (``scipy.stats.fisher_exact``) when
  an expected cell count is below 5 (Cochran's rule).
- ``P(B > A)`` under independent Beta(1 + conversions, 1 + failures) posteriors (uniform priors), by numerical
  integration of ``f_B(x) F_A(x)``.
- No conclusion below ``MIN_VISITORS`` visitors or ``MIN_CONVERSIONS`` conversions in total; the reason is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, fisher_exact, norm

MIN_VISITORS = 100
"""Per segment: below this a rate's interval is too wide to act on."""
MIN_CONVERSIONS = 10
"""Both segments together: below this no test has the power to tell a difference."""


class CompareInputError(ValueError):
    """Counts that are not a comparison: negative, or more conversions than visitors."""


@dataclass(frozen=True)
class Comparison:
    rate_a: float
    rate_b: float
    difference: float
    """``rate_b - rate_a``."""
    ci_low: float
    ci_high: float
    confidence: float
    test: str
    """``"two-proportion z-test"`` or ``"Fisher's exact test"``."""
    p_value: float
    probability_b_beats_a: float
    conclusive: bool
    verdict: str
    """A sentence for people: the conclusion, or why there is none."""


def wilson_interval(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Wilson's score interval for one proportion (Wilson 1927)."""
    if trials == 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(conv_a: int, n_a: int, conv_b: int, n_b: int, confidence: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p_B - p_A``."""
    p_a, p_b = conv_a / n_a, conv_b / n_b
    low_a, high_a = wilson_interval(conv_a, n_a, confidence)
    low_b, high_b = wilson_interval(conv_b, n_b, confidence)
    diff = p_b - p_a
    low = diff - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2)
    high = diff + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)
    return low, high


def two_proportion_z(conv_a: int, n_a: int, conv_b: int, n_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test (1.0 when both rates are 0 % or both 100 %)."""
    pooled = (conv_a + conv_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0
    z = (conv_b / n_b - conv_a / n_a) / se
    return float(2 * norm.sf(abs(z)))


def probability_b_beats_a(conv_a: int, n_a: int, conv_b: int, n_b: int, points: int = 4001) -> float:
    """``P(p_B > p_A)`` for Beta(1 + c, 1 + n - c) posteriors, by the trapezoidal rule on a fine grid."""
    x = np.linspace(0.0, 1.0, points)
    density_b = beta.pdf(x, 1 + conv_b, 1 + n_b - conv_b)
    cdf_a = beta.cdf(x, 1 + conv_a, 1 + n_a - conv_a)
    value = float(np.trapezoid(density_b * cdf_a, x))
    return min(1.0, max(0.0, value))


def compare(conv_a: int, n_a: int, conv_b: int, n_b: int, confidence: float = 0.95) -> Comparison:
    """Compare B's conversion rate with A's.

    Args:
        conv_a, n_a: conversions and visitors of segment A (the baseline).
        conv_b, n_b: the same for B.
        confidence: of the interval, in (0, 1); the test's significance level is ``1 - confidence``.

    Raises:
        CompareInputError: negative counts, conversions above visitors, an empty segment or a bad confidence.
    """
    for name, conv, n in (("A", conv_a, n_a), ("B", conv_b, n_b)):
        if conv < 0 or n < 0:
            raise CompareInputError(f"segment {name}: counts must not be negative")
        if conv > n:
            raise CompareInputError(f"segment {name}: {conv} conversions exceed {n} visitors")
        if n == 0:
            raise CompareInputError(f"segment {name} has no visitors")
    if not 0.5 <= confidence < 1:
        raise CompareInputError("confidence must be at least 0.5 and below 1")
    total = n_a + n_b
    conversions = conv_a + conv_b
    expected = [n * conversions / total for n in (n_a, n_b)] + [n * (total - conversions) / total for n in (n_a, n_b)]
    if min(expected) < 5:
        test = "Fisher's exact test"
        p_value = float(fisher_exact([[conv_b, n_b - conv_b], [conv_a, n_a - conv_a]]).pvalue)
    else:
        test = "two-proportion z-test"
        p_value = two_proportion_z(conv_a, n_a, conv_b, n_b)
    low, high = newcombe_interval(conv_a, n_a, conv_b, n_b, confidence)
    rate_a, rate_b = conv_a / n_a, conv_b / n_b
    p_better = probability_b_beats_a(conv_a, n_a, conv_b, n_b)
    if min(n_a, n_b) < MIN_VISITORS:
        conclusive = False
        verdict = (f"not enough data: {min(n_a, n_b)} visitors in the smaller segment, at least {MIN_VISITORS} "
                   "are needed before a difference can be called")
    elif conversions < MIN_CONVERSIONS:
        conclusive = False
        verdict = (f"not enough data: {conversions} conversions in all, at least {MIN_CONVERSIONS} are needed "
                   "before a difference can be called")
    else:
        conclusive = True
        level = round(100 * confidence)
        if p_value < 1 - confidence:
            better = "B" if rate_b > rate_a else "A"
            verdict = (f"{better} converts better: {100 * rate_b:.2f} % vs {100 * rate_a:.2f} %, difference "
                       f"{100 * (rate_b - rate_a):+.2f} points ({level} % CI {100 * low:+.2f} to {100 * high:+.2f}), "
                       f"p = {p_value:.3g} ({test})")
        else:
            verdict = (f"no significant difference at {level} %: {100 * rate_b:.2f} % vs {100 * rate_a:.2f} %, "
                       f"p = {p_value:.3g} ({test})")
    return Comparison(rate_a, rate_b, rate_b - rate_a, low, high, confidence, test, p_value, p_better,
                      conclusive, verdict)
