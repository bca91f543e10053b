"""helpers.stats against scipy/statsmodels called directly, and against simulations.

Every simulation has a fixed seed, and its tolerance is the 99.9 % acceptance region of the
binomial count of "hits" over the number of simulated experiments: a correct implementation
fails one such check with probability 0.1 % (and, seeded, either always or never).
"""

import gc

import numpy as np
import pytest
import scipy.stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from helpers import stats

ACCEPT = 0.999  # the binomial acceptance region of every simulation check


@pytest.fixture
def no_full_collections(monkeypatch):
    """statsmodels' Holm branch calls gc.collect() on every call (0.1-0.4 s each here);
    skip those collections so that hundreds of simulated families stay fast."""
    monkeypatch.setattr(gc, "collect", lambda *args: 0)


def _acceptance(n_sims: int, rate: float) -> tuple[float, float]:
    """The range of hit counts a correct implementation lands in with probability ACCEPT."""
    return scipy.stats.binom.interval(ACCEPT, n_sims, rate)


def test_paired_matches_scipy_ttest_rel():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 6), rng.normal(0.0, 1.0, 6)
    c = stats.paired(a, b, name="a - b", confidence=0.9)
    ref = scipy.stats.ttest_rel(a, b)
    interval = ref.confidence_interval(confidence_level=0.9)
    assert c.mean == pytest.approx(np.mean(a - b))
    assert (c.low, c.high) == pytest.approx((interval.low, interval.high))
    assert c.p == pytest.approx(ref.pvalue) and c.p_adjusted == c.p
    assert (c.n, c.method, c.confidence, c.name) == (6, "paired t", 0.9, "a - b")
    assert c.verdict == ("higher" if interval.low > 0 else "lower" if interval.high < 0
                         else "not resolved")


def test_paired_verdicts_follow_the_sign_of_a_clear_difference():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 8)
    noise = rng.normal(0, 0.01, 8)
    assert stats.paired(base + 1 + noise, base).verdict == "higher"
    assert stats.paired(base - 1 + noise, base).verdict == "lower"


def test_paired_interval_covers_the_true_difference_at_its_nominal_rate():
    # 2000 simulated experiments of 5 seeds; a normal (z) interval with the same data
    # would cover only about 88 % and fail this check, as would a wrong paired variance.
    n_sims, true_difference = 2000, 0.7
    rng = np.random.default_rng(2)
    shared = rng.normal(0, 2.0, (n_sims, 5))  # seed effect common to a and b
    a = shared + true_difference + rng.normal(0, 1.0, (n_sims, 5))
    b = shared + rng.normal(0, 1.0, (n_sims, 5))
    covered = 0
    for row_a, row_b in zip(a, b):
        c = stats.paired(row_a, row_b)
        covered += c.low < true_difference < c.high
    low, high = _acceptance(n_sims, 0.95)
    assert low <= covered <= high, f"coverage {covered / n_sims:.3f} of 2000 experiments"


def test_holm_matches_multipletests_and_its_intervals_match_its_verdicts(no_full_collections):
    rng = np.random.default_rng(3)
    data = [(rng.normal(shift, 1.0, 6), rng.normal(0, 1.0, 6))
            for shift in [0.0, 2.0, 1.2, 0.3, 3.0, 0.8]]
    family = [stats.paired(a, b, name=f"c{i}") for i, (a, b) in enumerate(data)]
    corrected = stats.holm(family, alpha=0.05)
    _, expected, _, _ = multipletests([c.p for c in family], alpha=0.05, method="holm")
    assert [c.name for c in corrected] == [c.name for c in family]
    assert [c.p_adjusted for c in corrected] == pytest.approx(list(expected))
    assert any(c.verdict != "not resolved" for c in corrected)
    assert any(c.verdict == "not resolved" and c.p < 0.05 for c in corrected), \
        "the family should hold a comparison that Holm's correction overturns"
    rank = {name: i for i, name in enumerate(sorted((c.p, c.name) for c in family), start=1)}
    floored = 0
    for raw, c, (a, b) in zip(family, corrected, data):
        assert c.p == raw.p and c.mean == raw.mean
        step = 1 - 0.05 / (len(family) - rank[(c.p, c.name)] + 1)  # Holm's level at its step
        assert c.confidence == pytest.approx(max(1 - 0.05 * c.p / c.p_adjusted, step))
        assert c.confidence >= step - 1e-12
        floored += c.confidence == pytest.approx(step) and c.p_adjusted == 1.0
        interval = scipy.stats.ttest_rel(a, b).confidence_interval(confidence_level=c.confidence)
        assert (c.low, c.high) == pytest.approx((interval.low, interval.high))
        assert c.confidence >= raw.confidence
        assert (c.low > 0 or c.high < 0) == (c.p_adjusted < 0.05)
        assert (c.verdict != "not resolved") == (c.p_adjusted < 0.05)
    assert floored, "the family should hold an unrejected comparison whose floor applies"
    again = stats.holm(corrected)
    assert [c.p_adjusted for c in again] == [c.p_adjusted for c in corrected]


def test_holm_keeps_the_family_wise_error_at_alpha_under_the_global_null(no_full_collections):
    n_families, m, alpha = 500, 5, 0.05
    rng = np.random.default_rng(4)
    a = rng.normal(0, 1, (n_families, m, 6))
    b = rng.normal(0, 1, (n_families, m, 6))
    corrected_errors = raw_errors = 0
    for family_a, family_b in zip(a, b):
        family = [stats.paired(x, y) for x, y in zip(family_a, family_b)]
        raw_errors += any(c.verdict != "not resolved" for c in family)
        corrected_errors += any(c.verdict != "not resolved" for c in stats.holm(family, alpha))
    _, high = _acceptance(n_families, alpha)
    assert corrected_errors <= high, f"family-wise error {corrected_errors / n_families:.3f}"
    # The check can fail: without the correction about 1 - 0.95**5 = 23 % of families err.
    assert raw_errors > high


def test_crossed_mean_equals_the_mean_of_the_resampled_matrix():
    rng = np.random.default_rng(5)
    diffs = rng.normal(size=(7, 4))
    units = rng.integers(0, 7, (10, 7))
    seeds = rng.integers(0, 4, (10, 4))
    expected = [diffs[np.ix_(u, s)].mean() for u, s in zip(units, seeds)]
    assert stats._crossed_mean(diffs, units, seeds) == pytest.approx(expected)


def test_bootstrap_interval_matches_a_direct_two_level_resampling_joined_with_seed_means_t():
    rng = np.random.default_rng(6)
    units, seeds, n_resamples = 25, 6, 4000
    a = (rng.normal(0, 1, (units, 1)) + rng.normal(0, 0.5, (1, seeds))
         + rng.normal(0, 1, (units, seeds)))
    b = a - 0.2 - rng.normal(0, 0.5, (1, seeds)) - rng.normal(0, 0.5, (units, seeds))
    c = stats.bootstrap_paired(a, b, n_resamples=n_resamples, seed=1)
    # Independent resampling: rows and columns drawn with numpy, the matrix built explicitly.
    diffs, direct_rng = a - b, np.random.default_rng(99)
    direct = np.array([diffs[np.ix_(direct_rng.integers(0, units, units),
                                    direct_rng.integers(0, seeds, seeds))].mean()
                       for _ in range(n_resamples)])
    boot_low, boot_high = np.quantile(direct, [0.025, 0.975])
    seed_t = scipy.stats.ttest_rel(a.mean(axis=0), b.mean(axis=0))
    t_interval = seed_t.confidence_interval(confidence_level=0.95)
    # Two independent Monte Carlo estimates of a 2.5 % quantile differ by about
    # sqrt(2 q (1 - q) / B) / phi(z_q) standard errors; allow four times that.
    tolerance = 4 * np.sqrt(2 * 0.025 * 0.975 / n_resamples) / scipy.stats.norm.pdf(1.96)
    tolerance *= direct.std()
    assert c.low == pytest.approx(min(boot_low, t_interval.low), abs=tolerance)
    assert c.high == pytest.approx(max(boot_high, t_interval.high), abs=tolerance)
    assert c.p >= seed_t.pvalue
    assert c.mean == pytest.approx(diffs.mean())
    assert (c.n, c.shape, c.method) == (units * seeds, (units, seeds), "bootstrap")


def test_weighted_crossed_mean_is_the_ratio_of_the_resampled_sums():
    rng = np.random.default_rng(15)
    diffs, w = rng.normal(size=(7, 4)), rng.uniform(0.1, 5, 7)
    units = rng.integers(0, 7, (10, 7))
    seeds = rng.integers(0, 4, (10, 4))
    expected = [w[u] @ diffs[np.ix_(u, s)].mean(axis=1) / w[u].sum() for u, s in zip(units, seeds)]
    assert stats._crossed_mean(diffs, units, seeds, weights=w) == pytest.approx(expected)


def test_unit_weights_recompute_a_pooled_ratio_on_every_resample():
    """A score pooled over units of unequal size, sum(n_i) / sum(d_i): weighting the per-unit
    scores n_i / d_i by d_i gives it exactly, and its bootstrap matches a direct resampling of
    the ratio (the unweighted mean of per-unit scores is a different, here larger, number)."""
    rng = np.random.default_rng(16)
    units, seeds, n_resamples = 12, 4, 4000
    d = rng.uniform(1, 30, units) ** 2  # one unit carries much of the weight
    score_a = rng.uniform(0.4, 0.9, (units, 1)) + rng.normal(0, 0.05, (units, seeds))
    score_b = score_a - 0.05 * (d[:, None] < 100) + rng.normal(0, 0.05, (units, seeds))
    c = stats.bootstrap_paired(score_a, score_b, unit_weights=d, n_resamples=n_resamples, seed=2)
    pooled = lambda s, rows, cols: (d[rows] @ s[np.ix_(rows, cols)].mean(axis=1)) / d[rows].sum()  # noqa: E731
    everything = np.arange(units), np.arange(seeds)
    assert c.mean == pytest.approx(pooled(score_a, *everything) - pooled(score_b, *everything))
    assert c.mean != pytest.approx((score_a - score_b).mean(), rel=0.05)
    direct_rng = np.random.default_rng(98)
    direct = []
    for _ in range(n_resamples):
        rows, cols = direct_rng.integers(0, units, units), direct_rng.integers(0, seeds, seeds)
        direct.append(pooled(score_a, rows, cols) - pooled(score_b, rows, cols))
    tolerance = 4 * np.sqrt(2 * 0.025 * 0.975 / n_resamples) / scipy.stats.norm.pdf(1.96)
    tolerance *= np.std(direct)
    boot_low, boot_high = np.quantile(direct, [0.025, 0.975])
    seed_t = scipy.stats.ttest_rel(d @ score_a / d.sum(), d @ score_b / d.sum())
    t_interval = seed_t.confidence_interval(confidence_level=0.95)
    assert c.low == pytest.approx(min(boot_low, t_interval.low), abs=tolerance)
    assert c.high == pytest.approx(max(boot_high, t_interval.high), abs=tolerance)
    one_zero = np.ones(units)
    one_zero[0] = 0.0
    nan = np.full(units, np.nan)
    for bad in (np.ones(units - 1), -np.ones(units), np.zeros(units), one_zero, nan):
        with pytest.raises(ValueError, match="unit_weights"):
            stats.bootstrap_paired(score_a, score_b, unit_weights=bad)


def test_bootstrap_p_value_is_where_its_interval_reaches_zero():
    rng = np.random.default_rng(7)
    d = 0.15 + rng.normal(0, 1, (20, 1)) + rng.normal(0, 0.3, (1, 5)) + rng.normal(0, 1, (20, 5))
    c = stats.bootstrap_paired(d, np.zeros_like(d), n_resamples=2000, seed=3)
    assert 0.001 < c.p < 0.5
    low, high = c._interval_at(1 - c.p)
    assert min(abs(low), abs(high)) == pytest.approx(0.0, abs=1e-9)
    low, high = c._interval_at(1 - c.p * 1.01)  # a little narrower: excludes zero
    assert low > 0 or high < 0
    low, high = c._interval_at(1 - c.p * 0.99)  # a little wider: contains zero
    assert low < 0 < high
    corrected = stats.holm([c, stats.paired(d[:, 0], np.zeros(20))])
    for x in corrected:
        assert (x.verdict != "not resolved") == (x.p_adjusted < 0.05)


@pytest.mark.parametrize(("seeds", "unit_sd", "seed_sd"), [(10, 1.0, 0.5), (3, 0.3, 1.0)])
def test_bootstrap_covers_the_true_difference_on_a_two_level_design(seeds, unit_sd, seed_sd):
    # 30 test units x seeds with unit, seed and interaction noise; 200 simulated experiments.
    # With 3 seeds and seed noise dominating, the bootstrap alone covers only about 74 %;
    # the seed-means t interval it is joined with restores the nominal rate.
    n_sims, units, truth = 200, 30, 0.3
    rng = np.random.default_rng(8 + seeds)
    covered = covered_units_only = 0
    for k in range(n_sims):
        d = (truth + rng.normal(0, unit_sd, (units, 1)) + rng.normal(0, seed_sd, (1, seeds))
             + rng.normal(0, 1.0, (units, seeds)))
        c = stats.bootstrap_paired(d, np.zeros_like(d), n_resamples=1000, seed=k)
        covered += c.low < truth < c.high
        # What resampling the units alone would give (it ignores the seed-to-seed noise).
        boot = d.mean(axis=1)[rng.integers(0, units, (1000, units))].mean(axis=1)
        low, high = np.quantile(boot, [0.025, 0.975])
        covered_units_only += low < truth < high
    low, high = _acceptance(n_sims, 0.95)
    assert low <= covered <= high, f"two-level coverage {covered / n_sims:.3f}"
    assert covered_units_only < low  # the check can fail: one level is not enough


def test_equivalence_matches_statsmodels_and_accepts_a_tight_null():
    rng = np.random.default_rng(9)
    a = rng.normal(0.8, 0.05, 10)
    b = a + rng.normal(0, 0.01, 10)
    e = stats.equivalence(a, b, 0.02, name="same")
    p_ref, _, _ = ttost_paired(a, b, -0.02, 0.02)
    interval = scipy.stats.ttest_rel(a, b).confidence_interval(confidence_level=0.9)
    assert e.p == pytest.approx(p_ref)
    assert (e.low, e.high) == pytest.approx((interval.low, interval.high))
    assert e.equivalent and e.verdict == "equivalent" and -0.02 < e.low < e.high < 0.02
    assert (e.margin, e.n, e.confidence) == (0.02, 10, pytest.approx(0.9))


def test_equivalence_refuses_a_difference_beyond_the_margin():
    rng = np.random.default_rng(10)
    a = rng.normal(0.8, 0.05, 10)
    b = a - 0.05 + rng.normal(0, 0.01, 10)  # a - b is about 0.05, the margin is 0.02
    e = stats.equivalence(a, b, 0.02)
    assert not e.equivalent and e.p > 0.5 and e.high > 0.02
    # Noisy data with a true zero difference is not shown equivalent either.
    noisy = stats.equivalence(a, a + rng.normal(0, 0.1, 10), 0.02)
    assert not noisy.equivalent and noisy.verdict == "not shown equivalent"


@pytest.mark.parametrize("family_size", [1, 3])
def test_detectable_difference_has_the_power_it_claims(family_size):
    sd, n, n_sims = 1.5, 8, 4000
    delta = stats.detectable_difference(sd, n, family_size=family_size)
    effect = TTestPower().solve_power(nobs=n, alpha=0.05 / family_size, power=0.8)
    assert delta == pytest.approx(effect * sd)
    rng = np.random.default_rng(11 + family_size)
    d = rng.normal(delta, sd, (n_sims, n))  # paired differences with the detectable mean
    p = scipy.stats.ttest_1samp(d, 0.0, axis=1).pvalue
    detected = int(np.sum(p < 0.05 / family_size))
    low, high = _acceptance(n_sims, 0.8)
    assert low <= detected <= high, f"simulated power {detected / n_sims:.3f}"


@pytest.mark.parametrize("n, family_size", [(4, 10), (3, 5), (5, 20)])
def test_detectable_difference_has_its_power_where_statsmodels_stops_short(n, family_size):
    # statsmodels' solve_power returned 3.42 sd for 4 seeds at 0.05 / 10, a difference with 52 %
    # power, without a warning; the answer must have 80 % power by simulation.
    sd, n_sims, level = 1.0, 4000, 0.05 / family_size
    delta = stats.detectable_difference(sd, n, family_size=family_size)
    rng = np.random.default_rng(20 + n + family_size)
    p = scipy.stats.ttest_1samp(rng.normal(delta, sd, (n_sims, n)), 0.0, axis=1).pvalue
    detected = int(np.sum(p < level))
    low, high = _acceptance(n_sims, 0.8)
    assert low <= detected <= high, f"simulated power {detected / n_sims:.3f}"
    assert stats.detectable_difference(sd, n + 1, family_size=family_size) < delta


def test_seeds_needed_is_the_smallest_number_with_that_power():
    solver = TTestPower()
    for difference, sd, family_size in [(0.5, 1.0, 1), (0.2, 0.3, 4), (1.0, 0.5, 2)]:
        n = stats.seeds_needed(difference, sd, family_size=family_size)
        effect, level = difference / sd, 0.05 / family_size
        assert n > 2
        assert solver.power(effect_size=effect, nobs=n, alpha=level) >= 0.8
        assert solver.power(effect_size=effect, nobs=n - 1, alpha=level) < 0.8
        assert stats.detectable_difference(sd, n, family_size=family_size) <= difference
    assert stats.seeds_needed(-0.5, 1.0) == stats.seeds_needed(0.5, 1.0)


def test_seeds_needed_at_very_large_effects_matches_simulated_power():
    # Six standard deviations: statsmodels' power is NaN at 2 seeds (1 degree of freedom).
    n = stats.seeds_needed(3.0, 0.5)
    assert n > 2  # one seed fewer must still be testable
    rng = np.random.default_rng(13)
    n_sims = 4000
    for seeds, enough in [(n - 1, False), (n, True)]:
        p = scipy.stats.ttest_1samp(rng.normal(3.0, 0.5, (n_sims, seeds)), 0.0, axis=1).pvalue
        detected = int(np.sum(p < 0.05))
        low, high = _acceptance(n_sims, 0.8)
        assert (detected > low) == enough, f"{seeds} seeds: power {detected / n_sims:.3f}"


def test_table_has_one_row_per_comparison_with_its_verdict():
    rng = np.random.default_rng(12)
    base = rng.normal(0, 1, 6)
    family = stats.holm([stats.paired(base + 2 + rng.normal(0, 0.1, 6), base, name="big"),
                         stats.paired(base + rng.normal(0, 1, 6), base, name="none")])
    family_text = stats.table(family, unit="pp", digits=1)
    lines = family_text.splitlines()
    assert lines[0].startswith("| Comparison | Difference (pp)") and lines[1].startswith("|---")
    assert len(lines) == 2 + len(family)
    for line, c in zip(lines[2:], family):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == c.name and cells[-1] == c.verdict
        assert cells[1] == f"{c.mean:+.1f} [{c.low:+.1f}, {c.high:+.1f}]"
    e = stats.equivalence(base, base + rng.normal(0, 0.01, 6), 0.5, name="eq")
    assert "equivalent (margin ±0.50)" in stats.table([e])


def test_comparisons_print_their_interval_and_verdict():
    c = stats.paired([1.0, 2.0, 3.5, 4.0], [0.0, 1.5, 2.0, 3.0], name="x - y")
    text = str(c)
    assert text.startswith("x - y: +") and "95 % paired t, n = 4" in text and c.verdict in text
    assert f"{c.low:+.2f}" in f"{c:.2f}"


BAD_INPUTS = [
    (lambda: stats.paired([1, 2, 3], [1, 2]), "a has shape"),
    (lambda: stats.paired([1.0], [2.0]), "at least 2"),
    (lambda: stats.paired([1, np.nan, 3], [1, 2, 3]), "NaN"),
    (lambda: stats.paired([1, 2, 3], [0, 1, 2]), "no spread"),
    (lambda: stats.paired(np.ones((3, 2)), np.zeros((3, 2))), "bootstrap_paired"),
    (lambda: stats.paired([1, 2, 3], [0, 2, 1], confidence=95), "confidence"),
    (lambda: stats.bootstrap_paired([1, 2, 3], [0, 2, 1]), "units, seeds"),
    (lambda: stats.bootstrap_paired(np.ones((5, 1)), np.zeros((5, 1))), "at least 2"),
    (lambda: stats.bootstrap_paired(np.eye(3), np.zeros((3, 3)), n_resamples=10), "n_resamples"),
    (lambda: stats.holm([]), "at least one"),
    (lambda: stats.holm([0.01, 0.2]), "Comparison"),
    (lambda: stats.equivalence([1, 2, 3], [0, 2, 1], 0.0), "positive margin"),
    (lambda: stats.equivalence([1, 2, 3], [0, 2, 1], -1.0), "positive margin"),
    (lambda: stats.detectable_difference(0.0, 5), "sd"),
    (lambda: stats.detectable_difference(1.0, 1), "n"),
    (lambda: stats.detectable_difference(1.0, 5, family_size=0), "family_size"),
    (lambda: stats.detectable_difference(1.0, 5, power=1.2), "power"),
    (lambda: stats.seeds_needed(0.0, 1.0), "nonzero difference"),
    (lambda: stats.table([]), "at least one"),
]


@pytest.mark.parametrize(("call", "message"), BAD_INPUTS)
def test_bad_input_raises_a_readable_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_comparisons_survive_pickling_and_can_still_be_corrected():
    import pickle

    rng = np.random.default_rng(14)
    family = [stats.paired(rng.normal(1, 1, 5), rng.normal(0, 1, 5), name="t"),
              stats.bootstrap_paired(rng.normal(0.5, 1, (10, 4)), rng.normal(0, 1, (10, 4)),
                                     name="boot")]
    restored = pickle.loads(pickle.dumps(family))
    assert restored == family
    assert stats.holm(restored) == stats.holm(family)


def test_seeds_needed_never_grows_with_the_effect_even_in_the_thousands():
    # statsmodels' noncentral t returns NaN at some large n; the fallback once returned power 0
    # there, so sd 0.289 asked for 3544 seeds and sd 0.295 for 547 (difference 0.05, 26 tests)
    sds = np.linspace(0.25, 0.6, 36)
    needed = [stats.seeds_needed(0.05, sd, family_size=26) for sd in sds]
    assert all(a <= b for a, b in zip(needed, needed[1:])), needed
    # and the normal approximation holds at these sizes: n ~ ((z_{1-a/2} + z_power) sd / d)^2
    z = scipy.stats.norm.isf(0.05 / 26 / 2) + scipy.stats.norm.ppf(0.8)
    for sd, n in zip(sds, needed):
        assert abs(n - (z * sd / 0.05) ** 2) < 0.02 * n + 3, (sd, n)
    for n in (1024, 2048, 4096):  # the fallback against the normal approximation of the power
        shift = 0.05 / 0.289 * np.sqrt(n)
        approx = scipy.stats.norm.sf(scipy.stats.t.isf(0.05 / 52, n - 1) - shift)
        assert abs(stats._power(0.05 / 0.289, n, 0.05 / 26) - approx) < 0.01


# -- Family: differences and equivalence tests under one Holm correction ------------------

def _holm_matched_alpha(p: np.ndarray, p_adjusted: np.ndarray, alpha: float) -> np.ndarray:
    """Per test, the level Holm's decision for it is matched to (computed here, not in stats)."""
    order = np.argsort(p, kind="stable")
    step = np.empty(p.size)
    step[order] = alpha / (p.size - np.arange(p.size))  # alpha / (m - i + 1), i from 1
    return np.where(p_adjusted > 0, np.minimum(alpha * p / np.where(p_adjusted > 0, p_adjusted, 1),
                                               step), step)


def test_family_applies_holm_once_over_differences_and_equivalence_tests(no_full_collections):
    rng = np.random.default_rng(20)
    base = rng.normal(0, 1, 8)
    diffs = [(base + shift + rng.normal(0, 0.4, 8), base) for shift in (1.0, 0.45, 0.1)]
    equivs = [(base + rng.normal(0, 0.05, 8), base, 0.15),
              (base + rng.normal(0, 0.3, 8), base, 0.3)]
    boot_a, boot_b = rng.normal(0.4, 1, (12, 4)), rng.normal(0, 1, (12, 4))
    boot = stats.bootstrap_paired(boot_a, boot_b, n_resamples=1000, seed=0, name="boot")
    family = stats.Family(alpha=0.05)
    for i, (a, b) in enumerate(diffs):
        family.compare(a, b, name=f"d{i}")
    for i, (a, b, margin) in enumerate(equivs):
        family.equivalence(a, b, margin, name=f"e{i}")
    family.add(boot)
    members = family.members
    # The raw p-values, computed here with scipy/statsmodels directly, and Holm over all six.
    p = np.array([scipy.stats.ttest_rel(a, b).pvalue for a, b in diffs]
                 + [ttost_paired(a, b, -m, m)[0] for a, b, m in equivs] + [boot.p])
    _, pooled, _, _ = multipletests(p, alpha=0.05, method="holm")
    assert [m.name for m in members] == ["d0", "d1", "d2", "e0", "e1", "boot"]
    assert [m.test for m in members] == ["difference"] * 3 + ["equivalence"] * 2 + ["difference"]
    assert [m.p for m in members] == pytest.approx(list(p))
    assert [m.p_adjusted for m in members] == pytest.approx(list(pooled))
    # Correcting the two kinds separately gives other numbers: the family really is pooled.
    separate = np.concatenate([multipletests(p[[0, 1, 2, 5]], method="holm")[1],
                               multipletests(p[3:5], method="holm")[1]])
    assert not np.allclose(np.array([m.p_adjusted for m in members])[[0, 1, 2, 5, 3, 4]], separate)
    matched = _holm_matched_alpha(p, pooled, 0.05)
    for m, (a, b), level in zip(members[:3], diffs, matched[:3]):
        interval = scipy.stats.ttest_rel(a, b).confidence_interval(confidence_level=1 - level)
        assert m.confidence == pytest.approx(1 - level)
        assert (m.low, m.high) == pytest.approx((interval.low, interval.high))
        assert m.estimate == pytest.approx(np.mean(a - b))
    for m, (a, b, _), level in zip(members[3:5], equivs, matched[3:5]):
        interval = scipy.stats.ttest_rel(a, b).confidence_interval(confidence_level=1 - 2 * level)
        assert m.confidence == pytest.approx(1 - 2 * level)
        assert (m.low, m.high) == pytest.approx((interval.low, interval.high))
    assert (members[5].low, members[5].high) == pytest.approx(boot._interval_at(1 - matched[5]))
    for m in members:
        assert m.verdict in stats.FAMILY_VERDICTS
        assert (m.verdict != "not resolved") == (m.p_adjusted < 0.05)
    assert members[0].verdict == "higher" and members[3].verdict == "equivalent"
    assert any(m.verdict == "not resolved" and m.p < 0.05 for m in members), \
        "the family should hold a test that the pooled correction overturns"


def test_family_equivalence_holds_only_when_its_interval_lies_inside_the_margin(
        no_full_collections):
    rng = np.random.default_rng(21)
    a = rng.normal(0.8, 0.05, 10)
    b = a + 0.004 + rng.normal(0, 0.01, 10)
    alone = stats.Family().equivalence(a, b, 0.05, name="alone").members[0]
    assert alone.confidence == pytest.approx(0.9) and alone.verdict == "equivalent"
    assert -0.05 < alone.low < alone.high < 0.05
    # A margin between the largest |end| of the 90 % interval and of the Holm-matched 98 %
    # interval in a family of five: equivalent alone, not resolved in the family.
    t90 = scipy.stats.ttest_rel(a, b).confidence_interval(confidence_level=0.90)
    t98 = scipy.stats.ttest_rel(a, b).confidence_interval(confidence_level=0.98)
    margin = (max(-t90.low, t90.high) + max(-t98.low, t98.high)) / 2
    assert stats.Family().equivalence(a, b, margin, name="e").members[0].verdict == "equivalent"
    family = stats.Family().equivalence(a, b, margin, name="e")
    for k in range(4):  # four differences with p = 1 put the TOST on Holm's strictest step
        half = rng.normal(0, 0.01, 5)
        family.compare(a + np.concatenate([half, -half]), a, name=f"null {k}")
    member = family.members[0]
    assert member.confidence == pytest.approx(0.98)
    assert member.verdict == "not resolved" and max(-member.low, member.high) > margin
    # A real difference beyond the margin is never "equivalent", however tight.
    far = stats.Family().equivalence(a + 0.1 + rng.normal(0, 0.001, 10), a, 0.05, name="far")
    assert far.members[0].verdict == "not resolved" and far.members[0].low > 0.05
    for m in [alone, member, far.members[0]]:
        assert (m.verdict == "equivalent") == (-m.margin < m.low and m.high < m.margin)


def test_family_resolves_known_differences_in_their_direction(no_full_collections):
    # 300 simulated experiments, 8 seeds: a - b = +1, c - b = -1 (sd of differences 0.6) and
    # an equivalence member with a true difference 0, margin 0.6. Power is computed for the
    # strictest Holm step (alpha / 3), a lower bound on the power the family has.
    n_sims, seeds, sd = 300, 8, 0.6
    rng = np.random.default_rng(22)
    power = float(TTestPower().power(effect_size=1 / sd, nobs=seeds, alpha=0.05 / 3))
    counts = {"up": 0, "down": 0, "wrong": 0}
    for _ in range(n_sims):
        b = rng.normal(0, 1, seeds)
        family = (stats.Family()
                  .compare(b + 1 + rng.normal(0, sd, seeds), b, name="up", labels=("A", "B"))
                  .compare(b - 1 + rng.normal(0, sd, seeds), b, name="down", labels=("C", "B"))
                  .equivalence(b + rng.normal(0, sd, seeds), b, 0.6, name="same"))
        up, down, _ = family.members
        counts["up"] += up.verdict == "higher"
        counts["down"] += down.verdict == "lower"
        counts["wrong"] += up.verdict == "lower" or down.verdict == "higher"
    low, _ = _acceptance(n_sims, power)
    assert counts["up"] >= low and counts["down"] >= low, (counts, power)
    assert counts["wrong"] == 0
    assert up.statement in ("A higher than B", "not resolved")


def test_family_keeps_the_family_wise_error_over_both_kinds_of_test(no_full_collections):
    # Every null true: two differences of 0 and two equivalence tests whose true difference
    # sits on the margin. Uncorrected, about 1 - 0.95**2 * 0.95**2 = 19 % of families err.
    n_families, seeds, margin, alpha = 500, 6, 0.5, 0.05
    rng = np.random.default_rng(23)
    corrected = raw = 0
    for _ in range(n_families):
        b = rng.normal(0, 1, (4, seeds))
        a = b + rng.normal(0, 1, (4, seeds)) + np.array([[0], [0], [margin], [-margin]])
        family = (stats.Family(alpha).compare(a[0], b[0], name="0").compare(a[1], b[1], name="1")
                  .equivalence(a[2], b[2], margin, name="+m")
                  .equivalence(a[3], b[3], margin, name="-m"))
        corrected += any(m.verdict != "not resolved" for m in family)
        raw += any(m.p < alpha for m in family.members)
    _, high = _acceptance(n_families, alpha)
    assert corrected <= high, f"family-wise error {corrected / n_families:.3f}"
    assert raw > high


def test_family_table_and_markdown_show_every_member(no_full_collections):
    rng = np.random.default_rng(24)
    base = rng.normal(0, 1, 8)
    family = (stats.Family()
              .compare(base + 2 + rng.normal(0, 0.1, 8), base, name="L1 | L2", labels=("L1", "L2"))
              .equivalence(base + rng.normal(0, 0.01, 8), base, 0.3, name="same"))
    frame = family.table()
    assert list(frame.columns) == ["name", "test", "estimate", "low", "high", "level", "p",
                                   "p_holm", "margin", "verdict", "statement"]
    assert list(frame["statement"]) == ["L1 higher than L2", "equivalent within ±0.3"]
    assert frame["margin"].isna().tolist() == [True, False]
    for row, m in zip(frame.itertuples(), family.members):
        assert (row.estimate, row.low, row.high, row.p_holm) == (m.estimate, m.low, m.high,
                                                                 m.p_adjusted)
    lines = family.markdown(unit="pp", digits=1).splitlines()
    assert len(lines) == 4 and "Estimate (pp) [interval]" in lines[0]
    assert lines[2].startswith(r"| L1 \| L2 | difference | ") and lines[2].endswith(
        "| L1 higher than L2 |")
    assert lines[3].startswith("| same | TOST ±0.3 | ")
    m = family.members[0]
    assert f"{m.estimate:+.1f} [{m.low:+.1f}, {m.high:+.1f}]" in lines[2]


def test_sd_upper_matches_chi_square_quantiles_and_covers_the_true_sd():
    # chi2(9) has 5 % of its mass below 3.325113 (printed tables): 1.6452 times the sample sd.
    assert stats.sd_upper(1.0, 10) == pytest.approx(np.sqrt(9 / 3.325113), rel=1e-6)
    assert stats.sd_upper(np.float64(0.3), np.int64(5), level=0.9) == pytest.approx(
        0.3 * np.sqrt(4 / scipy.stats.chi2.ppf(0.1, 4)))
    assert stats.sd_upper(0.3, 5) > stats.sd_upper(0.3, 5, level=0.8) > 0.3
    assert stats.sd_upper(0.0, 5) == 0.0
    # Coverage: in 4000 samples of 6 from N(0, 1) the limit exceeds sigma = 1 in about 95 %.
    rng = np.random.default_rng(25)
    sds = np.std(rng.normal(0, 1, (4000, 6)), axis=1, ddof=1)
    covered = sum(stats.sd_upper(float(s), 6) > 1.0 for s in sds)
    low, high = _acceptance(4000, 0.95)
    assert low <= covered <= high, f"coverage {covered / 4000:.3f}"


FAMILY_BAD_INPUTS = [
    (lambda: stats.Family(alpha=0.6), "alpha"),
    (lambda: stats.Family().members, "empty"),
    (lambda: stats.Family().add(0.01), "Family.add"),
    (lambda: stats.Family().add(stats.Equivalence("x", 0.0, -0.1, 0.1, 0.5, 0.01, True)),
     "Family.add"),
    (lambda: stats.Family().compare([1, 2, 3], [0, 2, 1], name="x", labels=("a",)), "labels"),
    (lambda: stats.Family().equivalence([1, 2, 3], [0, 2, 1], 0.0, name="x"), "positive margin"),
    (lambda: stats.Family().compare([1, 2, 3], [0, 2, 1], name="x").markdown(digits=-1),
     "digits"),
    (lambda: stats.sd_upper(-1.0, 5), "non-negative"),
    (lambda: stats.sd_upper(float("nan"), 5), "non-negative"),
    (lambda: stats.sd_upper(1.0, 1), "integer >= 2"),
    (lambda: stats.sd_upper(1.0, 5.5), "integer >= 2"),
    (lambda: stats.sd_upper(1.0, 5, level=95), "level"),
]


@pytest.mark.parametrize(("call", "message"), FAMILY_BAD_INPUTS)
def test_family_and_sd_upper_bad_input_raises_a_readable_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bootstrap_units_resolves_a_real_difference_and_pools_by_weight():
    rng = np.random.default_rng(4)
    b = rng.normal(0, 1, 40)
    a = b + 0.8 + rng.normal(0, 0.3, 40)
    up = stats.bootstrap_units(a, b, name="a - b")
    assert up.verdict == "higher" and up.low > 0 and up.shape == (40, 1)
    same = stats.bootstrap_units(b + rng.normal(0, 0.3, 40), b)
    assert same.low < 0 < same.high and same.verdict == "not resolved"
    w = rng.uniform(1, 10, 40)
    pooled = stats.bootstrap_units(a, b, unit_weights=w)
    assert pooled.mean == pytest.approx(np.sum(w * (a - b)) / w.sum())
    family = stats.Family().add(up, labels=("a", "b")).add(same)
    assert family.members[0].verdict == "higher"  # Holm can re-level it
    with pytest.raises(ValueError, match="same 1-D shape"):
        stats.bootstrap_units(a[:, None], b[:, None])
