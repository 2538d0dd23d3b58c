"""Significance tests of the compute service against statsmodels/scipy reference values."""

from __future__ import annotations

import math

import pytest
from scipy.special import betaln
from scipy.stats import fisher_exact
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from services.compute.significance import CompareInputError, compare, newcombe_interval, two_proportion_z

CASES = [
    pytest.param(120, 1000, 150, 1000, id="typical"),
    pytest.param(0, 500, 12, 480, id="zero-conversions-in-A"),
    pytest.param(300, 300, 280, 300, id="hundred-percent-in-A"),
    pytest.param(0, 200, 0, 210, id="no-conversions-at-all"),
    pytest.param(2, 15, 6, 14, id="tiny"),
    pytest.param(5000, 100000, 5200, 100000, id="large"),
]


def exact_b_beats_a(ca: int, na: int, cb: int, nb: int) -> float:
    """Closed form of P(p_B > p_A) for Beta(1+c, 1+n-c) posteriors (a sum over B's successes + 1)."""
    a_a, b_a, a_b, b_b = 1 + ca, 1 + na - ca, 1 + cb, 1 + nb - cb
    total = 0.0
    for i in range(a_b):
        total += math.exp(betaln(a_a + i, b_a + b_b) - math.log(b_b + i) - betaln(1 + i, b_b) - betaln(a_a, b_a))
    return total


@pytest.mark.parametrize(("ca", "na", "cb", "nb"), CASES)
def test_interval_matches_statsmodels_newcombe(ca: int, na: int, cb: int, nb: int) -> None:
    """The difference's interval equals statsmodels' Newcombe interval."""
    expected = confint_proportions_2indep(cb, nb, ca, na, method="newcomb", compare="diff", alpha=0.05)
    assert newcombe_interval(ca, na, cb, nb, 0.95) == pytest.approx(tuple(map(float, expected)), abs=1e-9)


@pytest.mark.parametrize(("ca", "na", "cb", "nb"), CASES)
def test_z_test_matches_statsmodels(ca: int, na: int, cb: int, nb: int) -> None:
    """The pooled z-test's p-value equals statsmodels' proportions_ztest (1.0 where it is undefined)."""
    if ca + cb in (0, na + nb):
        assert two_proportion_z(ca, na, cb, nb) == 1.0
        return
    _, expected = proportions_ztest([cb, ca], [nb, na])
    assert two_proportion_z(ca, na, cb, nb) == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize(("ca", "na", "cb", "nb"), CASES)
def test_probability_b_beats_a_matches_closed_form(ca: int, na: int, cb: int, nb: int) -> None:
    """The integrated P(B > A) agrees with the closed-form sum to 1e-3."""
    assert compare(ca, na, cb, nb).probability_b_beats_a == pytest.approx(exact_b_beats_a(ca, na, cb, nb), abs=1e-3)


def test_small_counts_use_fisher() -> None:
    """Expected cells below 5 switch to Fisher's exact test, with scipy's p-value."""
    result = compare(2, 15, 6, 14)
    assert result.test == "Fisher's exact test"
    assert result.p_value == pytest.approx(float(fisher_exact([[6, 8], [2, 13]]).pvalue))


def test_tiny_sample_is_not_concluded() -> None:
    """Below the minimum sample the verdict refuses and says why."""
    result = compare(2, 15, 6, 14)
    assert not result.conclusive
    assert result.verdict.startswith("not enough data: 14 visitors")


def test_clear_difference_is_called() -> None:
    """A large, clear difference is called for B with a p-value."""
    result = compare(120, 1000, 180, 1000)
    assert result.conclusive and result.verdict.startswith("B converts better")


@pytest.mark.parametrize(("args", "message"), [
    pytest.param((5, 4, 1, 10), "segment A: 5 conversions exceed 4 visitors", id="more-conversions"),
    pytest.param((-1, 10, 1, 10), "segment A: counts must not be negative", id="negative"),
    pytest.param((0, 10, 0, 0), "segment B has no visitors", id="empty"),
])
def test_bad_counts_are_refused(args: tuple[int, int, int, int], message: str) -> None:
    """Counts that are not a comparison raise an error that says what is wrong."""
    with pytest.raises(CompareInputError, match=message):
        compare(*args)
