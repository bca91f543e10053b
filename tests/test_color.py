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


def test_annealed_mean_goes_from_mean_to_mode():
    bins = np.array([[0, 0], [10, 0], [0, 40]], np.float32)
    p = np.array([[0.5, 0.3, 0.2]], np.float32)
    np.testing.assert_allclose(color.annealed_mean(p, bins, T=1.0).numpy(), [[3.0, 8.0]],
                               atol=1e-4)
    np.testing.assert_allclose(color.annealed_mean(p, bins, T=0.01).numpy(), [[0.0, 0.0]],
                               atol=1e-3)
    mid = color.annealed_mean(p, bins, T=0.38).numpy()
    assert 0 < mid[0, 1] < 8.0


@pytest.mark.parametrize("T", [0.0, -1.0])
def test_annealed_mean_rejects_non_positive_temperature(T):
    with pytest.raises(ValueError, match="positive"):
        color.annealed_mean(np.ones((1, 3)) / 3, BINS[:3], T=T)


def test_model_maps_32_px_windows_to_16_px_distributions():
    model = color.build_model(24)
    assert model.output_shape == (None, 16, 16, 24)
    widths = [layer.filters for layer in model.layers if hasattr(layer, "filters")]
    assert widths == [3, 6, 9, 12, 15, 18, 21, 24]
    out = model(np.full((2, 32, 32, 1), 50.0, np.float32)).numpy()
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-5)
    assert color.build_model(24, "regression").output_shape == (None, 16, 16, 2)


def test_mixed_bfloat16_model_computes_in_bfloat16_and_outputs_float32():
    model = color.build_model(24, precision="mixed_bfloat16")
    assert model.get_layer("conv3").compute_dtype == "bfloat16"
    assert model.get_layer("conv3").variable_dtype == "float32"  # weights stay float32
    out = model(np.full((2, 32, 32, 1), 50.0, np.float32))
    assert out.dtype == "float32" and out.shape == (2, 16, 16, 24)
    np.testing.assert_allclose(out.numpy().sum(axis=-1), 1.0, atol=1e-5)
    reg = color.build_model(24, "regression", precision="mixed_bfloat16")
    assert reg.output_shape == (None, 16, 16, 2) and reg.output.dtype == "float32"
    with pytest.raises(ValueError, match="precision"):
        color.build_model(24, precision="float16")


def test_train_keys_the_cache_on_the_precision(tmp_path):
    windows = _random_rgb((8, 32, 32, 3), seed=6)
    _, f32 = color.train("classification", windows, BINS, None, steps=1, cache=tmp_path,
                         batch_size=4)
    _, bf16 = color.train("classification", windows, BINS, None, steps=1, cache=tmp_path,
                          batch_size=4, precision="mixed_bfloat16")
    assert bf16["steps_trained"] == 1 and bf16["folder"] != f32["folder"]
    assert np.isfinite(bf16["losses"][-1][1])


def test_make_targets_gives_centre_targets_and_nearest_bin_weights():
    windows = _random_rgb((2, 32, 32, 3), seed=3)
    weights = np.linspace(0.5, 2.0, len(BINS)).astype(np.float32)
    L, z, w = color.make_targets(windows, BINS, weights)
    lab = rgb2lab(windows)
    np.testing.assert_allclose(L.numpy()[..., 0], lab[..., 0], atol=2e-3)
    assert z.shape == (2, 16, 16, len(BINS)) and w.shape == (2, 16, 16)
    centre = lab[:, 8:24, 8:24, 1:]
    nearest = np.argmin(((centre[..., None, :] - BINS) ** 2).sum(-1), axis=-1)
    np.testing.assert_allclose(w.numpy(), weights[nearest], atol=1e-6)
    _, ab, ones = color.make_targets(windows, BINS, None, "regression")
    np.testing.assert_allclose(ab.numpy(), centre, atol=2e-3)
    assert np.all(ones.numpy() == 1.0)


class _Echo:
    """A stand-in 'model' whose ab output is its window's centre L, to test the tiling."""

    def predict(self, x, batch_size=None, verbose=0):
        centre = np.asarray(x)[:, 8:24, 8:24, :]
        return np.concatenate([centre, -centre], axis=-1)


@pytest.mark.parametrize("shape", [(16, 16), (37, 50), (64, 48)])
def test_predict_ab_colours_every_pixel_in_place(shape):
    L = np.random.default_rng(0).random(shape).astype(np.float32) * 100
    ab = color.predict_ab(_Echo(), L)
    assert ab.shape == shape + (2,)
    np.testing.assert_allclose(ab[..., 0], L, atol=1e-5)  # no grey border, no shift
    np.testing.assert_allclose(ab[..., 1], -L, atol=1e-5)


def test_predict_ab_rejects_images_smaller_than_the_output():
    with pytest.raises(ValueError, match="at least 16"):
        color.predict_ab(_Echo(), np.zeros((10, 40)))


def test_random_windows_rejects_small_and_non_rgb_images():
    with pytest.raises(ValueError, match="smaller than"):
        color.random_windows([np.zeros((20, 60, 3))], 4)
    with pytest.raises(ValueError, match="RGB"):
        color.random_windows([np.zeros((64, 64))], 4)
    windows = color.random_windows([_random_rgb((40, 50, 3))], 6, seed=1)
    assert windows.shape == (6, 32, 32, 3)


def test_error_auc_perfect_grey_and_weighted():
    true = np.array([[0.0, 0.0], [30.0, 40.0]])
    assert color.error_auc(true, true) == pytest.approx(1.0)
    grey = np.zeros_like(true)
    # one pixel exact (area 1), the other 50 away: within threshold for t >= 50
    expected = 0.5 + 0.5 * (100.0 + 0.5) / 150.0
    assert color.error_auc(grey, true) == pytest.approx(expected, abs=1e-3)
    weighted = color.error_auc(grey, true, pixel_weights=np.array([0.0, 1.0]))
    assert weighted == pytest.approx(100.5 / 150.0, abs=1e-3)


def test_mean_chroma_and_balanced_weights():
    assert color.mean_chroma(np.array([[3.0, 4.0], [0.0, 0.0]])) == pytest.approx(2.5)
    prior = np.full(len(BINS), 1.0 / len(BINS))
    prior[0] += 0.5
    prior /= prior.sum()
    w = color.class_balanced_pixel_weights(np.array([[-20.0, -20.0], [0.0, 0.0]]), BINS, prior)
    assert w[1] > w[0]


def test_train_resumes_and_reuses_finished_weights(tmp_path):
    windows = _random_rgb((16, 32, 32, 3), seed=4)
    weights = np.ones(len(BINS), np.float32)
    _, first = color.train("rebalanced", windows, BINS, weights, steps=2, cache=tmp_path,
                           batch_size=4, chunk=1)
    assert first["steps_trained"] == 2 and len(first["losses"]) == 2
    model, again = color.train("rebalanced", windows, BINS, weights, steps=2, cache=tmp_path,
                               batch_size=4, chunk=1)
    assert again["steps_trained"] == 0 and again["losses"] == first["losses"]
    _, longer = color.train("rebalanced", windows, BINS, weights, steps=3, cache=tmp_path,
                            batch_size=4, chunk=1)
    assert longer["steps_trained"] == 3  # another configuration: its own folder
    _, fresh = color.train("rebalanced", windows, BINS, weights, steps=2, cache=tmp_path,
                           batch_size=4, chunk=1, retrain=True)
    assert fresh["steps_trained"] == 2


def test_train_resumes_from_an_interrupted_run(tmp_path):
    windows = _random_rgb((16, 32, 32, 3), seed=5)

    class Stop(Exception):
        pass

    def interrupt(line):
        if "step 1/" in line:
            raise Stop

    with pytest.raises(Stop):
        color.train("regression", windows, BINS, None, steps=3, cache=tmp_path,
                    batch_size=4, chunk=1, log=interrupt)
    _, info = color.train("regression", windows, BINS, None, steps=3, cache=tmp_path,
                          batch_size=4, chunk=1)
    assert info["steps_trained"] == 2 and [s for s, _ in info["losses"]] == [1, 2, 3]


def test_train_keys_the_cache_on_the_soft_encoding(tmp_path):
    windows = _random_rgb((8, 32, 32, 3), seed=6)
    _, five = color.train("classification", windows, BINS, None, steps=1, cache=tmp_path,
                          batch_size=4, k=5)
    _, ten = color.train("classification", windows, BINS, None, steps=1, cache=tmp_path,
                         batch_size=4, k=10)
    assert five["folder"] != ten["folder"] and ten["steps_trained"] == 1


def test_colorize_keeps_lightness_and_uses_the_predicted_ab():
    rgb = _random_rgb((20, 36, 3), seed=7)
    out = color.colorize(_Echo(), rgb)  # ab = (L, -L): clipped, but L must survive
    assert out.shape == rgb.shape and 0.0 <= out.min() and out.max() <= 1.0
    grey = color.colorize(_Zero(), rgb)
    lab = rgb2lab(rgb)
    np.testing.assert_allclose(rgb2lab(grey)[..., 0], lab[..., 0], atol=0.05)
    np.testing.assert_allclose(grey[..., 0], grey[..., 1], atol=2e-3)  # ab = 0 is grey
    with pytest.raises(ValueError, match="RGB"):
        color.colorize(_Echo(), rgb[..., 0])


class _Zero:
    def predict(self, x, batch_size=None, verbose=0):
        return np.zeros((len(x), 16, 16, 2), np.float32)


def test_train_reports_the_throughput_of_a_reused_run(tmp_path):
    windows = _random_rgb((8, 32, 32, 3), seed=8)
    _, first = color.train("regression", windows, BINS, None, steps=3, cache=tmp_path,
                           batch_size=4, chunk=1)
    _, again = color.train("regression", windows, BINS, None, steps=3, cache=tmp_path,
                           batch_size=4, chunk=1)
    assert again["steps_trained"] == 0 and again["seconds"] == 0
    assert first["windows_per_s"] > 0 and again["windows_per_s"] == first["windows_per_s"]
    assert again["train_seconds"] == pytest.approx(first["train_seconds"])


def test_predict_tiles_returns_every_output_channel_in_place():
    class Probs:
        def predict(self, x, batch_size=None, verbose=0):
            centre = np.asarray(x)[:, 8:24, 8:24, :]
            return np.concatenate([centre, 2 * centre, 3 * centre], axis=-1)

    L = np.random.default_rng(1).random((40, 33)).astype(np.float32)
    out = color.predict_tiles(Probs(), L)
    assert out.shape == (40, 33, 3)
    np.testing.assert_allclose(out, L[..., None] * [1, 2, 3], atol=1e-5)
    with pytest.raises(ValueError, match="bins"):
        color.predict_ab(Probs(), L)


def test_prior_and_balanced_weights_handle_many_pixels_in_chunks():
    ab = np.random.default_rng(2).uniform(-25, 25, (45_000, 2)).astype(np.float32)
    prior = color.empirical_prior(ab, BINS, sigma=0)
    nearest = np.argmin(((ab[:, None, :] - BINS) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(prior, np.bincount(nearest, minlength=len(BINS)) / len(ab))
    w = color.class_balanced_pixel_weights(ab.reshape(300, 150, 2), BINS, prior)
    assert w.shape == (300, 150)
    np.testing.assert_allclose(w.ravel(), 1 / prior[nearest])
