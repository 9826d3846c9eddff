"""The simulator against the real figures of issue 14 (stylized facts), with stated tolerances.

One session-scoped corpus: four calm days (seeds 1-4, 24 h each) and two seeds of every other
scenario family, each on its largest drawn venue only (the label sums the forced notional of
all venues, so one venue is the same market at a smaller scale; it keeps the test near a
minute on two cores). No recording is written. The figures come from
:func:`cascadewatch.pipelines.simulate.facts.measure`, the same code that prints the README
table.

Real figures (BitMEX XBTUSD 2020-04-16 to 2020-05-19, this project's label): 39 cascades in
456 h, duration median 59 s, p10 26 s, p90 132 s; BTC hourly liquidations over Binance, Bybit
and OKX: largest hour 273x the median, top hours 94-99 % one-sided; cascades cluster.
"""

from __future__ import annotations

import pytest

from cascadewatch.pipelines.simulate.facts import measure, run_corpus


@pytest.fixture(scope="session")
def facts() -> dict[str, float]:
    return measure(run_corpus(range(1, 5), 24.0, range(1, 3), venues=1))


def test_cascades_last_tens_of_seconds_to_minutes(facts):
    # real: median 59 s, p90 132 s; tolerance: median within 30-120 s, p90 at least 100 s
    assert facts["cascades"] >= 10
    assert 30.0 <= facts["duration_median_s"] <= 120.0
    assert facts["duration_p90_s"] >= 100.0


def test_a_calm_day_holds_a_few_small_cascades(facts):
    # real: about 2 labelled cascades a day; tolerance 0.5-4 per calm day
    assert 0.5 <= facts["calm_cascades_per_day"] <= 4.0


def test_liquidations_are_bursty_and_one_sided(facts):
    # real: largest hour 273x the median hour, top hours 94-99 % one-sided;
    # tolerance: max/median >= 50 (with liquidations in the median hour), one-sidedness >= 0.85
    assert facts["hourly_median_usd"] > 0
    assert facts["hourly_max_over_median"] >= 50.0
    assert facts["top_hour_one_sided"] >= 0.85


def test_cascades_cluster_in_time(facts):
    # after a calm-day cascade, another starts within the hour more often than at a random time
    assert facts["followed_n"] >= 3
    assert facts["cascade_followed_within_1h"] > facts["base_rate_cascade_within_1h"]


def test_liquidations_trickle_before_a_cascade(facts):
    # real (BitMEX XBTUSD 2020-04/05): 0.24 liquidation orders a minute (median) in the five minutes
    # before a labelled cascade, 0.01 at random calm times. Tolerance: the median before a calm-day
    # cascade at least 0.1 a minute, and at least ten times the median of calm 5-minute windows;
    # at least 40 % of the cascades with a liquidation in the five minutes before their start,
    # at most half that share among the calm windows.
    assert facts["trickle_before_per_min"] >= 0.1
    assert facts["trickle_before_per_min"] >= 10.0 * facts["trickle_calm_per_min"]
    assert facts["trickle_before_share"] >= 0.4
    assert facts["trickle_calm_share"] <= 0.5 * facts["trickle_before_share"]
