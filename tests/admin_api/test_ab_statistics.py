"""The A/B comparison's statistics against known values (no services)."""

import math

import pytest

from admin_api.ab_statistics import mean, rate, t_quantile_975, wilson_interval


def test_no_trials_have_no_rate_and_no_interval() -> None:
    assert wilson_interval(0, 0) is None
    assert rate(0, 0).model_dump() == {"value": None, "successes": 0, "n": 0, "ci95": None}


def test_none_of_n_and_all_of_n_keep_an_interval_inside_zero_and_one() -> None:
    # z^2 / (n + z^2) at n = 10: the "rule of three" territory, never the Wald interval's [0, 0]
    low, high = wilson_interval(0, 10) or (math.nan, math.nan)
    assert low == 0.0 and high == pytest.approx(0.277533, abs=1e-6)
    low, high = wilson_interval(10, 10) or (math.nan, math.nan)
    assert low == pytest.approx(0.722467, abs=1e-6) and high == 1.0
    assert rate(0, 10).value == 0.0 and rate(10, 10).value == 1.0


def test_wilson_matches_newcombes_textbook_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, method 3: 81/263 -> 0.2553 to 0.3662
    low, high = wilson_interval(81, 263) or (math.nan, math.nan)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert rate(81, 263).value == pytest.approx(81 / 263)


def test_a_rate_refuses_more_successes_than_trials() -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_a_mean_has_a_t_interval_from_two_values_on() -> None:
    assert mean([]).model_dump() == {"mean": None, "n": 0, "ci95": None}
    assert mean([7]).model_dump() == {"mean": 7.0, "n": 1, "ci95": None}
    # 1..5: s = sqrt(2.5), t(0.975, 4) = 2.776445 -> 3 +- 1.963243
    five = mean([1, 2, 3, 4, 5])
    assert five.mean == 3.0 and five.n == 5
    assert five.ci95 == pytest.approx((1.036757, 4.963243), abs=1e-6)
    same = mean([4, 4, 4])
    assert same.ci95 == (4.0, 4.0)


def test_the_t_quantile_joins_the_table_and_tends_to_the_normal() -> None:
    assert t_quantile_975(1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile_975(30) == pytest.approx(2.0423, abs=1e-4)
    # past the table: the expansion (t(0.975, 60) = 2.000298, t(0.975, 120) = 1.979930)
    assert t_quantile_975(60) == pytest.approx(2.000298, abs=1e-5)
    assert t_quantile_975(120) == pytest.approx(1.979930, abs=1e-5)
    assert t_quantile_975(100_000) == pytest.approx(1.959964, abs=1e-4)
