import numpy as np
import pytest
from skimage.color import lab2rgb, rgb2lab

from helpers import color

BINS = np.array([[a, b] for a in range(-20, 21, 10) for b in range(-20, 21, 10)], np.float32)


def _random_rgb(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_rgb_to_lab_matches_scikit_image():
    rgb = _random_rgb((7, 9, 3))
    rgb[0, 0] = 0.0  # black and white, the ends of the L axis
    rgb[0, 1] = 1.0
    np.testing.assert_allclose(color.rgb_to_lab(rgb).numpy(), rgb2lab(rgb), atol=2e-3)


def test_rgb_to_lab_handles_any_leading_shape():
    rgb = _random_rgb((2, 3, 4, 3), seed=1)
    out = color.rgb_to_lab(rgb).numpy()
    assert out.shape == rgb.shape
    np.testing.assert_allclose(out[1, 2], rgb2lab(rgb[1, 2]), atol=2e-3)


def test_lab_to_rgb_matches_scikit_image_and_round_trips():
    rgb = _random_rgb((5, 6, 3), seed=2)
    lab = rgb2lab(rgb).astype(np.float32)
    np.testing.assert_allclose(color.lab_to_rgb(lab).numpy(), lab2rgb(lab), atol=2e-4)
    np.testing.assert_allclose(color.lab_to_rgb(color.rgb_to_lab(rgb)).numpy(), rgb, atol=2e-4)


def test_lab_to_rgb_clips_out_of_gamut_colours_like_scikit_image():
    lab = np.array([[[50.0, 100.0, -100.0], [90.0, -100.0, 100.0]]], np.float32)
    ours = color.lab_to_rgb(lab).numpy()
    assert ours.min() >= 0.0 and ours.max() <= 1.0
    np.testing.assert_allclose(ours, lab2rgb(lab), atol=2e-3)


@pytest.mark.parametrize("bad", [np.zeros((4, 4)), np.zeros((4, 4, 4)), np.zeros((4, 4, 1))])
def test_conversions_reject_images_that_are_not_rgb(bad):
    with pytest.raises(ValueError, match="three channels"):
        color.rgb_to_lab(bad)
    with pytest.raises(ValueError, match="three channels"):
        color.lab_to_rgb(bad)


def test_gamut_bins_are_grid_points_and_contain_grey():
    bins = color.gamut_bins(step=10, levels=16)
    assert np.all(bins % 10 == 0)
    assert any(np.all(bins == 0, axis=1))
    assert 200 < len(bins) < 313  # sRGB covers fewer bins than the paper's 313


def test_gamut_bins_from_the_cube_faces_reach_the_bins_of_the_whole_cube():
    cube = {tuple(b) for b in color.gamut_bins(10, levels=16)}
    faces = {tuple(b) for b in color.gamut_bins(10, levels=64, faces=True)}
    assert cube <= faces  # the projection of the solid is that of its surface
    assert len(color.gamut_bins(10, levels=16, faces=True)) <= len(cube)  # 1,536 vs 4,096 colours


def test_squares_meeting_a_polygon_by_hand():
    rect = np.array([[-3, -3], [12, -3], [12, 3], [-3, 3]], float)  # a from -3 to 12, b within 3
    np.testing.assert_array_equal(color._squares_meeting_polygon(rect, 10), [[0, 0], [10, 0]])
    # a diamond |a| + |b| <= 7: its bounding box meets the diagonal squares, the diamond does not
    diamond = np.array([[7, 0], [0, 7], [-7, 0], [0, -7]], float)
    got = {tuple(c) for c in color._squares_meeting_polygon(diamond, 10)}
    assert got == {(0, 0), (10, 0), (-10, 0), (0, 10), (0, -10)}


def test_squares_meeting_a_polygon_agree_with_dense_points_inside_it():
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(3)
    pts = rng.normal(0, 30, (12, 2))
    from scipy.spatial import ConvexHull

    poly = pts[ConvexHull(pts).vertices]
    got = {tuple(c) for c in color._squares_meeting_polygon(poly, 10)}
    g = np.arange(-110, 110.01, 0.25)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    inside = grid[Delaunay(poly).find_simplex(grid) >= 0]
    dense = {tuple(c) for c in (np.round(inside / 10) * 10).astype(np.float32)}
    assert dense <= got  # every square holding a point of the polygon meets it
    assert len(got - dense) <= 2  # at most slivers thinner than the grid's 0.25


def test_gamut_hull_bins_contain_the_in_gamut_bins_and_do_not_depend_on_sampling():
    hull = {tuple(b) for b in color.gamut_hull_bins(10, levels=64)}
    assert {tuple(b) for b in color.gamut_bins(10, levels=64)} < hull
    assert hull == {tuple(b) for b in color.gamut_hull_bins(10, levels=16)}
    assert (0, 0) in hull and all(a % 10 == 0 and b % 10 == 0 for a, b in hull)


@pytest.mark.parametrize("call", [lambda: color.gamut_hull_bins(10, levels=1),
                                  lambda: color.gamut_bins(10, levels=1, faces=True),
                                  lambda: color.gamut_hull_bins(0, levels=8)])
def test_gamut_counts_reject_bad_sampling(call):
    with pytest.raises(ValueError, match="levels|step"):
        call()


def test_used_bins_counts_only_cells_with_pixels():
    ab = np.array([[1, 2], [3, -4], [19, 21], [-31, 0], [-29, 2]], np.float32)
    np.testing.assert_array_equal(color.used_bins(ab, 10),
                                  [[-30, 0], [0, 0], [20, 20]])
    np.testing.assert_array_equal(color.used_bins(ab, 10, min_count=2), [[-30, 0], [0, 0]])


def test_empirical_prior_counts_nearest_bins_and_smoothing_spreads_mass():
    ab = np.array([[0, 0]] * 3 + [[10, 0]], np.float32)
    raw = color.empirical_prior(ab, BINS, sigma=0)
    i0 = np.flatnonzero(np.all(BINS == [0, 0], axis=1))[0]
    i1 = np.flatnonzero(np.all(BINS == [10, 0], axis=1))[0]
    assert raw[i0] == pytest.approx(0.75) and raw[i1] == pytest.approx(0.25)
    smooth = color.empirical_prior(ab, BINS, sigma=5)
    assert smooth.sum() == pytest.approx(1.0)
    assert smooth[i0] < raw[i0] and np.count_nonzero(smooth) > np.count_nonzero(raw)


def test_rebalance_weights_formula_and_normalisation():
    prior = np.array([0.7, 0.2, 0.1])
    w = color.rebalance_weights(prior, lam=0.5)
    expected = 1 / (0.5 * prior + 0.5 / 3)
    np.testing.assert_allclose(w / w[0], expected / expected[0])
    assert np.sum(prior * w) == pytest.approx(1.0)
    assert w[2] > w[1] > w[0]  # rare colours weigh more
    np.testing.assert_allclose(color.rebalance_weights(prior, lam=1.0), 1.0)


@pytest.mark.parametrize("lam", [-0.1, 1.5])
def test_rebalance_weights_rejects_lambda_outside_unit_interval(lam):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        color.rebalance_weights(np.array([0.5, 0.5]), lam=lam)


@pytest.mark.parametrize("prior", [np.array([0.5, 0.6]), np.array([1.2, -0.2])])
def test_rebalance_weights_rejects_priors_that_are_not_distributions(prior):
    with pytest.raises(ValueError, match="sum"):
        color.rebalance_weights(prior)


def test_soft_encode_puts_gaussian_mass_on_k_nearest_bins():
    ab = np.array([[0.0, 0.0], [5.0, 0.0]], np.float32)
    z = color.soft_encode(ab, BINS, sigma=5, k=5).numpy()
    np.testing.assert_allclose(z.sum(axis=-1), 1.0, atol=1e-6)
    assert np.count_nonzero(z[0] > 1e-9) == 5
    d2 = np.sum((BINS - ab[0]) ** 2, axis=1)
    nearest = np.argsort(d2)[:5]
    g = np.exp(-d2[nearest] / 50)
    np.testing.assert_allclose(z[0, nearest], g / g.sum(), atol=1e-6)
    i0 = np.flatnonzero(np.all(BINS == [0, 0], axis=1))[0]
    i1 = np.flatnonzero(np.all(BINS == [10, 0], axis=1))[0]
    assert z[1, i0] == pytest.approx(z[1, i1], abs=1e-6)  # halfway between two bins
    assert np.count_nonzero(color.soft_encode(ab, BINS, k=10).numpy()[0] > 1e-9) == 10


@pytest.mark.parametrize("k", [1, 5, 10])
@pytest.mark.parametrize("which", ["gamut", "sparse"])
def test_nearest_k_matches_a_search_over_all_bins(k, which):
    bins = color.gamut_bins(10, levels=16)
    if which == "sparse":  # an irregular subset, with gaps and far-away bins
        bins = bins[np.random.default_rng(4).random(len(bins)) < 0.3]
    rng = np.random.default_rng(k)
    ab = np.concatenate([
        rng.uniform(-115, 115, (4000, 2)),        # inside the table
        rng.integers(-11, 12, (500, 2)) * 5.0,    # on bin centres and half-way: ties
        rng.uniform(-200, 200, (50, 2)),          # some outside it
    ]).astype(np.float32)
    d2 = ((ab[:, None, :] - bins[None].astype(np.float32)) ** 2).sum(-1)
    want = np.argsort(d2, axis=1, kind="stable")[:, :k]  # ties to the lower index
    got_d2, got = color._nearest_k(ab, bins, k)
    assert np.array_equal(got.numpy(), want)
    np.testing.assert_allclose(got_d2.numpy(), np.take_along_axis(d2, want, 1), rtol=1e-5)
    inside = ab[:4500]  # the table alone (no fallback) must agree as well
    assert np.array_equal(color._nearest_k(inside, bins, k)[1].numpy(), want[:4500])


def test_nearest_bin_np_remembers_recent_answers_by_content():
    rng = np.random.default_rng(8)
    ab = rng.uniform(-100, 100, (300, 2)).astype(np.float32)
    want = color.nearest_bin(ab, BINS).numpy()
    first = color._nearest_bin_np(ab, BINS)
    assert np.array_equal(first, want)
    first[:] = -1  # the caller's copy: the remembered answer stays intact
    assert np.array_equal(color._nearest_bin_np(ab, BINS), want)
    moved = ab.copy()
    moved[0] = BINS[0]  # new content, new answer (not a stale one for the same array shape)
    assert color._nearest_bin_np(moved, BINS)[0] == 0
    other_bins = BINS[::-1].copy()  # the same colours against other bins
    want_other = color.nearest_bin(ab, other_bins).numpy()
    assert np.array_equal(color._nearest_bin_np(ab, other_bins), want_other)


def test_annealed_mean_goes_from_mean_to_mode():
    bins = np.array([[0, 0], [10, 0], [0, 40]], np.float32)
    p = np.array([[0.5, 0.3, 0.2]], np.float32)
    np.testing.assert_allclose(color.annealed_mean(p, bins, T=1.0).numpy(), [[3.0, 8.0]],
                               atol=1e-4)
    np.testing.assert_allclose(color.annealed_mean(p, bins, T=0.01).numpy(), [[0.0, 0.0]],
                               atol=1e-3)
    mid = color.annealed_mean(p, bins, T=color.T_ANNEALED).numpy()
    assert 0 < mid[0, 1] < 8.0


@pytest.mark.parametrize("T", [0.0, -1.0])
def test_annealed_mean_rejects_non_positive_temperature(T):
    with pytest.raises(ValueError, match="positive"):
        color.annealed_mean(np.ones((1, 3)) / 3, BINS[:3], T=T)


def test_error_auc_perfect_grey_and_weighted():
    true = np.array([[0.0, 0.0], [30.0, 40.0]])
    assert color.error_auc(true, true) == pytest.approx(1.0)
    grey = np.zeros_like(true)
    # one pixel exact (area 1), the other 50 away: within threshold for t >= 50
    expected = 0.5 + 0.5 * (100.0 + 0.5) / 150.0
    assert color.error_auc(grey, true) == pytest.approx(expected, abs=1e-3)
    weighted = color.error_auc(grey, true, pixel_weights=np.array([0.0, 1.0]))
    assert weighted == pytest.approx(100.5 / 150.0, abs=1e-3)



def test_pixel_auc_matches_the_curve_integrated_with_the_trapezoid_rule():
    rng = np.random.default_rng(9)
    true = rng.uniform(-60, 60, (500, 2))
    pred = true + rng.normal(0, 40, (500, 2))
    pred[:3] = true[:3]  # exact, and (below) errors on integer thresholds and beyond 150
    pred[3] = true[3] + [30.0, 40.0]
    pred[4] = true[4] + [200.0, 0.0]
    err = np.hypot(*(pred - true).T)
    thresholds = np.arange(0.0, 151.0)
    curves = (err[:, None] <= thresholds).astype(float)
    want = np.trapezoid(curves, thresholds, axis=1) / 150.0
    np.testing.assert_allclose(color.pixel_auc(pred, true), want, atol=1e-12)
    assert color.error_auc(pred, true) == pytest.approx(want.mean())


def test_balanced_auc_is_the_mean_over_colour_classes():
    bins = np.array([[0.0, 0.0], [50.0, 0.0]], np.float32)
    # 99 grey pixels predicted exactly, one red pixel predicted grey (50 away)
    true = np.concatenate([np.zeros((99, 2)), [[50.0, 0.0]]])
    pred = np.zeros_like(true)
    red = (150 - 50 + 0.5) / 150
    assert color.error_auc(pred, true) == pytest.approx((99 + red) / 100)
    assert color.balanced_error_auc(pred, true, bins) == pytest.approx((1 + red) / 2)
    # sums over two halves add up to the whole
    s1, c1 = color.class_auc_sums(pred[:50], true[:50], bins)
    s2, c2 = color.class_auc_sums(pred[50:], true[50:], bins)
    assert color.balanced_auc_from_sums(s1 + s2, c1 + c2) == pytest.approx((1 + red) / 2)
    assert color.balanced_auc_from_sums(s1, c1) == pytest.approx(1.0)  # grey only


def test_rebalanced_auc_weights_pixels_by_the_inverse_training_prior():
    bins = np.array([[0.0, 0.0], [50.0, 0.0]], np.float32)
    prior = np.array([0.8, 0.2])  # the training prior: red is four times rarer than grey
    # 9 grey pixels predicted exactly, one red pixel predicted grey (50 away)
    true = np.concatenate([np.zeros((9, 2)), [[50.0, 0.0]]])
    pred = np.zeros_like(true)
    red = (150 - 50 + 0.5) / 150
    # weights 1/0.8 and 1/0.2, whatever the frequencies in the scored pixels
    want = (9 / 0.8 + red / 0.2) / (9 / 0.8 + 1 / 0.2)
    assert color.rebalanced_error_auc(pred, true, bins, prior) == pytest.approx(want)
    assert color.rebalanced_error_auc(true, true, bins, prior) == pytest.approx(1.0)
    # a uniform prior gives the plain AuC, and the per-photo balanced variant differs from it
    assert color.rebalanced_error_auc(pred, true, bins, np.array([0.5, 0.5])) == pytest.approx(
        color.error_auc(pred, true))
    assert color.balanced_error_auc(pred, true, bins) != pytest.approx(want)
    # sums over two sets of pixels pool to the score of all of them
    (n1, d1), (n2, d2) = (color.rebalanced_auc_sums(pred[s], true[s], bins, prior)
                          for s in (slice(0, 4), slice(4, None)))
    assert (n1 + n2) / (d1 + d2) == pytest.approx(want)
    with pytest.raises(ValueError, match="prior computed over these bins"):
        color.rebalanced_error_auc(pred, true, bins, np.array([0.5, 0.25, 0.25]))


def test_metrics_reject_mismatched_shapes_and_bad_weights():
    with pytest.raises(ValueError, match="same shape"):
        color.error_auc(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        color.error_auc(np.zeros((2, 2)), np.zeros((2, 2)), pixel_weights=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="at least one pixel"):
        color.balanced_auc_from_sums(np.zeros(3), np.zeros(3))


def test_ab_to_bin_index_refuses_values_outside_the_range_instead_of_clipping():
    np.testing.assert_array_equal(color.ab_to_bin_index(np.array([[14.9, -15.1]])), [[1, -2]])
    with pytest.raises(ValueError, match="within"):
        color.ab_to_bin_index(np.array([[0.0, color.AB_RANGE + 1]]))


def test_mean_chroma():
    assert color.mean_chroma(np.array([[3.0, 4.0], [0.0, 0.0]])) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="shape"):
        color.mean_chroma(np.zeros((3, 3)))


def test_soft_cross_entropy_against_a_direct_computation():
    rng = np.random.default_rng(3)
    ab = rng.uniform(-20, 20, (6, 7, 2)).astype(np.float32)
    probs = rng.dirichlet(np.ones(len(BINS)), (6, 7)).astype(np.float32)
    z = color.soft_encode(ab, BINS).numpy()
    want = float(np.mean(-np.sum(z * np.log(probs), axis=-1)))
    assert color.soft_cross_entropy(probs, ab, BINS) == pytest.approx(want, rel=1e-5)
    prior = np.full(len(BINS), 1 / len(BINS))
    assert color.soft_cross_entropy(prior, ab, BINS) == pytest.approx(np.log(len(BINS)), rel=1e-5)
    with pytest.raises(ValueError, match="classes"):
        color.soft_cross_entropy(probs[..., :3], ab, BINS)


def test_reliability_of_a_calibrated_and_an_overconfident_predictor():
    bins = np.array([[0.0, 0.0], [50.0, 0.0]], np.float32)
    rng = np.random.default_rng(0)
    n = 20_000
    p_red = rng.uniform(0, 1, n)  # the true colour is red with exactly this probability
    red = rng.uniform(0, 1, n) < p_red
    true = np.where(red[:, None], [[50.0, 0.0]], [[0.0, 0.0]])
    probs = np.stack([1 - p_red, p_red], -1)
    calibrated = color.reliability(probs, true, bins, n_groups=5)
    assert calibrated["ece"] < 0.02
    assert calibrated["count"].sum() == n and np.isnan(calibrated["confidence"][:2]).all()
    sure = color.reliability(np.round(probs), true, bins, n_groups=5)  # always 100 % sure
    assert sure["confidence"][-1] == 1.0 and sure["ece"] > 0.2


def test_prior_handles_many_pixels_in_chunks():
    ab = np.random.default_rng(2).uniform(-25, 25, (45_000, 2)).astype(np.float32)
    prior = color.empirical_prior(ab, BINS, sigma=0)
    nearest = np.argmin(((ab[:, None, :] - BINS) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(prior, np.bincount(nearest, minlength=len(BINS)) / len(ab))


def test_colour_functions_refuse_arrays_that_are_not_ab_pairs():
    rng = np.random.default_rng(9)
    lab = rng.uniform(-50, 50, (10, 3)).astype(np.float32)  # three channels: silently 15 "pairs"
    probs = rng.dirichlet(np.ones(len(BINS)), 10).astype(np.float32)
    calls = {"empirical_prior": lambda: color.empirical_prior(lab, BINS),
             "reliability": lambda: color.reliability(probs, lab, BINS),
             "soft_cross_entropy": lambda: color.soft_cross_entropy(probs, lab, BINS),
             "class_auc_sums": lambda: color.class_auc_sums(lab[:, :2], lab, BINS)}
    for call in calls.values():
        with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
            call()
    with pytest.raises(ValueError, match="classes last"):
        color.reliability(probs[:, :5], lab[:, 1:], BINS)
    assert color.empirical_prior(lab[:, 1:], BINS).shape == (len(BINS),)  # the ab channels work


def test_hue_hits_counts_right_colours_and_never_grey():
    true = np.array([[30.0, 0.0], [0.0, 40.0], [-25.0, -25.0], [3.0, 4.0]])
    right = true * 0.5  # same hue, half the chroma: still at least 5 ab units
    assert color.hue_hits(right, true) == (3, 3)  # the last pixel (chroma 5) is not scored
    assert color.hue_hits(np.zeros_like(true), true) == (0, 3)  # grey has no hue
    turned = np.array([[20.0, 20.0 * np.tan(np.radians(29))], [20.0, 0.0], [25.0, 25.0],
                       [3.0, 4.0]])
    assert color.hue_hits(turned, true) == (1, 3)  # 29 degrees off is right, 90 and 180 not
    wrap = np.array([[-30.0, 1.0]]), np.array([[-30.0, -1.0]])  # across the ±180° seam
    assert color.hue_hits(*wrap) == (1, 1)
    with pytest.raises(ValueError, match="max_angle"):
        color.hue_hits(true, true, max_angle=0)


def test_grid_points_within_one_step_of_the_gamut_hull_are_the_papers_313():
    """Zhang et al.'s resources/pts_in_hull.npy holds 313 points; the grid points within one
    step (in a and in b) of the convex hull of sRGB's ab projection number the same."""
    near = color.gamut_hull_bins(10.0, levels=64, reach=10.0)
    squares = color.gamut_hull_bins(10.0, levels=64)
    assert len(near) == 313
    assert {tuple(p) for p in squares} < {tuple(p) for p in near}
    with pytest.raises(ValueError, match="reach"):
        color.gamut_hull_bins(10.0, levels=64, reach=0)


def test_hue_range_scores_counts_the_range_and_the_predicted_hue():
    def ab(deg, chroma=40.0):
        rad = np.radians(np.asarray(deg, float))
        return np.stack([chroma * np.cos(rad), chroma * np.sin(rad)], -1).astype(np.float32)

    sky = [ab([270, 260, 10]), ab([250, 250])]  # two photos: 4 pixels in 225-315, one red
    orange = [ab([60, 60, 60]), ab([50, 270])]  # predicted: orange, except one right pixel
    out = color.hue_range_scores(orange, sky, (225, 315))
    assert (out["pixels"], out["photos"], out["hits"]) == (4, 2, 1)
    assert out["share"] == 0.25 and out["top_share"] == 0.5
    assert out["median_hue"] == pytest.approx(60.0, abs=1e-3)
    dull = color.hue_range_scores([ab([60, 60, 60], 3.0), ab([50, 270], 9.0)], sky, (225, 315))
    assert dull["median_chroma"] == pytest.approx(6.0, abs=1e-3)  # of 3, 3, 9, 9
    none = color.hue_range_scores(orange, sky, (100, 200))
    assert none["pixels"] == 0 and np.isnan(none["share"]) and np.isnan(none["median_hue"])
    assert np.isnan(none["median_chroma"])
    faint = color.hue_range_scores([ab([60])], [ab([270], chroma=5.0)], (225, 315))
    assert faint["pixels"] == 0  # not clearly coloured: not counted
    with pytest.raises(ValueError, match="low < high"):
        color.hue_range_scores(orange, sky, (315, 225))
    with pytest.raises(ValueError, match="one prediction per photo"):
        color.hue_range_scores(orange[:1], sky, (225, 315))
