import math

import numpy as np
import pytest

from helpers import color, scenes

BINS = color.gamut_bins(10.0)


@pytest.fixture(scope="module")
def drawn():
    return scenes.make_scenes(200, 64, seed=3)


def _bin_of(ab) -> int:
    return int(color.nearest_bin(np.asarray([ab], np.float32), BINS).numpy()[0])


def test_make_scenes_is_deterministic_per_seed():
    rgb1, labels1 = scenes.make_scenes(20, 32, seed=5)
    rgb2, labels2 = scenes.make_scenes(20, 32, seed=5)
    rgb3, _ = scenes.make_scenes(20, 32, seed=6)
    np.testing.assert_array_equal(rgb1, rgb2)
    assert labels1.keys() == labels2.keys()
    for key in labels1:
        np.testing.assert_array_equal(labels1[key], labels2[key])
    assert not np.array_equal(rgb1, rgb3)


def test_scenes_have_the_documented_shapes_and_range(drawn):
    rgb, labels = drawn
    assert rgb.shape == (200, 64, 64, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    for key in ("region", "colour", "object"):
        assert labels[key].shape == (200, 64, 64)
    for key in ("object_shape", "object_colour", "object_radius"):
        assert labels[key].shape == (200, scenes.N_OBJECTS)
    assert labels["object_centre"].shape == (200, scenes.N_OBJECTS, 2)


@pytest.mark.parametrize("pair", [("red", "green"), ("tree_green", "yellow")])
def test_a_shapes_two_colours_share_L_and_differ_in_ab(drawn, pair):
    rgb, labels = drawn
    lab = color.rgb_to_lab(rgb).numpy().astype(np.float64)
    first, second = (lab[labels["colour"] == scenes.COLOURS.index(c)] for c in pair)
    assert len(first) > 100 and len(second) > 20
    # every pixel of either colour has the same L, measured from the sRGB the scenes hold
    assert np.abs(np.concatenate([first, second])[:, 0] - first[0, 0]).max() < 1.0
    assert np.hypot(*(first[:, 1:].mean(0) - second[:, 1:].mean(0))) > 50.0


def test_the_mean_of_red_and_green_is_dull():
    mean = (scenes.colour_lab("red")[1:] + scenes.colour_lab("green")[1:]) / 2
    np.testing.assert_allclose(mean, scenes.DISC_MEAN_AB)
    assert np.hypot(*mean) < 0.25 * np.hypot(*scenes.colour_lab("red")[1:])


def test_every_pixel_has_the_stated_colour_of_its_label(drawn):
    rgb, labels = drawn
    lab = color.rgb_to_lab(rgb).numpy().astype(np.float64)
    np.testing.assert_allclose(lab[..., 1:], scenes.stated_ab(labels), atol=0.05)
    for name in ("red", "green", "violet", "tree_green", "yellow"):
        m = labels["colour"] == scenes.COLOURS.index(name)
        np.testing.assert_allclose(lab[m][:, 0], scenes.colour_lab(name)[0], atol=0.05)
    sky, grass = labels["region"] == 0, labels["region"] == 1
    lo, hi = scenes.GRASS_L - scenes.GRASS_TEXTURE, scenes.GRASS_L + scenes.GRASS_TEXTURE
    assert lo - 0.1 <= lab[grass][:, 0].min() and lab[grass][:, 0].max() <= hi + 0.1
    assert lab[grass][:, 0].std() > scenes.GRASS_TEXTURE / 4  # textured
    rows = np.arange(64)[None, :, None] / labels["horizon"][:, None, None]
    sky_L = np.broadcast_to(scenes.SKY_L[0] + (scenes.SKY_L[1] - scenes.SKY_L[0]) * rows, sky.shape)
    np.testing.assert_allclose(lab[..., 0][sky], sky_L[sky], atol=scenes.L_STEP)
    assert np.array_equal(sky, (rows < 1) & (labels["object"] < 0))  # sky above the horizon


def test_masks_cover_the_objects(drawn):
    _, labels = drawn
    obj, region, colour = labels["object"], labels["region"], labels["colour"]
    n, k = np.indices(obj.shape)[0], np.maximum(obj, 0)
    seen = obj >= 0
    np.testing.assert_array_equal(region[seen], labels["object_shape"][n, k][seen] + 2)
    np.testing.assert_array_equal(colour[seen], labels["object_colour"][n, k][seen])
    assert np.all(region[~seen] <= 1) and np.all(colour[~seen] <= 1)
    # the last object painted is never occluded: its pixels fill its shape's area
    last = scenes.N_OBJECTS - 1
    r = labels["object_radius"][:, last].astype(np.float64)
    area = np.select([labels["object_shape"][:, last] == 0, labels["object_shape"][:, last] == 1],
                     [math.pi * r**2, (1.6 * r) ** 2], 2 * r**2)
    count = (obj == last).sum(axis=(1, 2))
    assert np.all(np.abs(count - area) <= 2.5 * r + 4)  # pixels along the outline
    cy, cx = np.floor(labels["object_centre"][:, last]).astype(int).T
    rows = np.arange(len(cy))
    assert np.all(obj[rows, cy, cx] == last)


def test_colour_frequencies_match_the_stated_probabilities():
    _, labels = scenes.make_scenes(20_000, 16, seed=11)
    shape, colour = labels["object_shape"].ravel(), labels["object_colour"].ravel()

    def check(hits: np.ndarray, p: float) -> None:
        n = len(hits)
        assert abs(hits.sum() - n * p) <= 4 * math.sqrt(n * p * (1 - p)), (hits.mean(), p)

    for code, p in enumerate(scenes.P_SHAPE):
        check(shape == code, p)
    check(colour[shape == 0] == scenes.COLOURS.index("red"), scenes.P_DISC_RED)
    assert set(colour[shape == 0]) == {scenes.COLOURS.index("red"), scenes.COLOURS.index("green")}
    assert set(colour[shape == 1]) == {scenes.COLOURS.index("violet")}
    check(colour[shape == 2] == scenes.COLOURS.index("yellow"), scenes.P_TRIANGLE_YELLOW)


def test_object_core_leaves_out_the_border(drawn):
    _, labels = drawn
    assert np.array_equal(scenes.object_core(labels, 0), labels["object"] >= 0)
    core = scenes.object_core(labels, 1)
    assert core.sum() < (labels["object"] >= 0).sum()
    assert not np.any(core[:, 0]) and not np.any(core[:, :, -1])  # no neighbours beyond the edge
    obj = labels["object"]
    assert np.all(obj[:, 1:-1, 1:-1][core[:, 1:-1, 1:-1]] == obj[:, :-2, 1:-1][core[:, 1:-1, 1:-1]])
    with pytest.raises(ValueError, match="negative"):
        scenes.object_core(labels, -1)


def test_claim_masks_pick_the_claims_pixels(drawn):
    _, labels = drawn
    full = scenes.claim_masks(labels, margin=0)
    assert np.array_equal(full["two_coloured"], labels["region"] == 2)
    assert np.array_equal(full["red"] | full["green"], full["two_coloured"])
    assert not np.any(full["red"] & full["green"])
    assert np.array_equal(full["rare"], labels["colour"] == scenes.COLOURS.index("yellow"))
    grid = scenes.claim_masks(labels, margin=1, factor=4, offset=3)
    assert grid["fixed"].shape == (200, 16, 16)
    assert np.array_equal(grid["fixed"], scenes.claim_masks(labels, 1)["fixed"][:, 3::4, 3::4])
    with pytest.raises(ValueError, match="offset"):
        scenes.claim_masks(labels, factor=4, offset=4)


def test_predicting_the_mean_of_red_and_green_gives_low_chroma(drawn):
    _, labels = drawn
    mask = scenes.claim_masks(labels)["two_coloured"]
    truth = scenes.stated_ab(labels)
    assert scenes.two_coloured_chroma(truth, mask) == pytest.approx(math.hypot(45, 10), abs=1e-3)
    regressed = np.broadcast_to(np.float32(scenes.DISC_MEAN_AB), truth.shape)
    assert scenes.two_coloured_chroma(regressed, mask) == pytest.approx(10.0, abs=1e-3)


def test_hue_share_is_one_for_the_truth_and_zero_for_the_common_colour(drawn):
    _, labels = drawn
    mask = scenes.claim_masks(labels)["rare"]
    yellow = scenes.colour_lab("yellow")[1:]
    truth = scenes.stated_ab(labels)
    assert scenes.hue_share(truth, mask, yellow) == 1.0
    green = np.broadcast_to(np.float32(scenes.GRASS_AB), truth.shape)
    assert scenes.hue_share(green, mask, yellow) == 0.0
    faint = np.broadcast_to(np.float32([0.0, scenes.MIN_CHROMA / 2]), truth.shape)
    assert scenes.hue_share(faint, mask, yellow) == 0.0  # the right hue, but nearly grey


def test_hue_share_wraps_around_and_counts_a_share():
    pred = np.float32([[-40.0, -1.0], [-40.0, 1.0], [40.0, 0.0], [0.0, 40.0]])
    mask = np.ones(4, bool)
    assert scenes.hue_share(pred, mask, (-30.0, 0.0)) == 0.5
    assert scenes.hue_share(pred, mask, (-30.0, 0.0), max_angle=180) == 1.0
    with pytest.raises(ValueError, match="grey"):
        scenes.hue_share(pred, mask, (0.0, 0.0))
    with pytest.raises(ValueError, match="degrees"):
        scenes.hue_share(pred, mask, (1.0, 0.0), max_angle=0)


def _two_bin_probs(n: int, p_red: float) -> np.ndarray:
    probs = np.zeros((n, len(BINS)), np.float32)
    probs[:, _bin_of(scenes.colour_lab("red")[1:])] = p_red
    probs[:, _bin_of(scenes.colour_lab("green")[1:])] = 1 - p_red
    return probs


def test_lowering_the_temperature_saturates_a_leaning_distribution():
    probs, mask = _two_bin_probs(5, 0.6), np.ones(5, bool)
    chroma = scenes.temperature_chroma(probs, BINS, mask)
    assert list(chroma) == [1.0, color.T_ANNEALED, 0.01]
    assert chroma[1.0] < chroma[color.T_ANNEALED] < chroma[0.01]
    assert chroma[0.01] == pytest.approx(np.hypot(*BINS[_bin_of((45.0, 10.0))]), abs=1e-2)
    even = scenes.temperature_chroma(_two_bin_probs(5, 0.5), BINS, mask)
    assert max(even.values()) - min(even.values()) < 1e-3  # equal modes: always their mean
    assert even[0.01] < 15.0


def test_mass_near_finds_each_mode():
    probs, mask = _two_bin_probs(4, 0.7), np.ones(4, bool)
    assert scenes.mass_near(probs, BINS, mask, scenes.colour_lab("red")[1:]) == pytest.approx(0.7)
    assert scenes.mass_near(probs, BINS, mask, scenes.colour_lab("green")[1:]) == pytest.approx(
        0.3)
    assert scenes.mass_near(probs, BINS, mask, scenes.DISC_MEAN_AB) == 0.0
    with pytest.raises(ValueError, match="classes"):
        scenes.mass_near(probs[:, :10], BINS, mask, (0.0, 0.0))


def test_measure_claims_on_the_truth_and_on_a_regressor(drawn):
    _, labels = drawn
    masks = scenes.claim_masks(labels, margin=1, factor=4, offset=3)
    truth = scenes.stated_ab(labels)[:, 3::4, 3::4]
    perfect = scenes.measure_claims(truth, masks)
    assert perfect["disc_chroma"] == pytest.approx(math.hypot(45, 10), abs=1e-3)
    assert perfect["fixed_error"] < 1e-4
    assert perfect["rare_share"] == 1.0 and perfect["common_share"] == 1.0
    mean = truth.copy()  # the least-squares answer: each shape's mean colour
    mean[masks["two_coloured"]] = scenes.DISC_MEAN_AB
    tri = masks["rare"] | masks["rare_common"]
    p = scenes.P_TRIANGLE_YELLOW
    mean[tri] = p * scenes.colour_lab("yellow")[1:] + (1 - p) * np.float32(scenes.GRASS_AB)
    dull = scenes.measure_claims(mean, masks)
    assert dull["disc_chroma"] == pytest.approx(10.0, abs=1e-3)
    assert dull["rare_share"] == 0.0 and dull["common_share"] == 1.0


def test_measure_claims_decodes_distributions(drawn):
    _, labels = drawn
    masks = scenes.claim_masks(labels, margin=1, factor=4, offset=3)
    truth = scenes.stated_ab(labels)[:, 3::4, 3::4]
    nearest = color.nearest_bin(truth, BINS).numpy()
    probs = np.eye(len(BINS), dtype=np.float32)[nearest]
    out = scenes.measure_claims(probs, masks, BINS)
    assert out["rare_share"] == 1.0 and out["common_share"] == 1.0
    assert out["red_mass"] + out["green_mass"] == pytest.approx(1.0)
    assert out["chroma_T1"] == pytest.approx(out["chroma_T0.01"], abs=1e-3)
    with pytest.raises(ValueError, match="bins"):
        scenes.measure_claims(probs, masks)


def test_mismatched_or_empty_inputs_are_refused():
    mask = np.ones((2, 3), bool)
    with pytest.raises(ValueError, match="does not match"):
        scenes.two_coloured_chroma(np.zeros((2, 4, 2)), mask)
    with pytest.raises(ValueError, match="no pixels"):
        scenes.two_coloured_chroma(np.zeros((2, 3, 2)), ~mask)
    with pytest.raises(ValueError, match="at least one scene"):
        scenes.make_scenes(0)
    with pytest.raises(ValueError, match="16 px"):
        scenes.make_scenes(2, size=8)
    with pytest.raises(ValueError, match="Unknown object colour"):
        scenes.colour_lab("sky")


def test_refresh_batch_norm_sets_the_moving_statistics_to_the_batchs():
    import keras

    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    L = np.random.default_rng(0).normal(30.0, 5.0, (64, 4, 4, 1)).astype(np.float32)
    assert scenes.refresh_batch_norm(model, L) == 1
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), [L.mean()], rtol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), [L.var()], rtol=1e-3)
    assert bn.momentum == 0.99  # restored


def test_scene_batches_paint_new_scenes_deterministically():
    first = [b.numpy() for b in scenes.scene_batches(4, 3, size=32, seed=7)]
    again = [b.numpy() for b in scenes.scene_batches(4, 3, size=32, seed=7)]
    assert len(first) == 3 and first[0].shape == (4, 32, 32, 3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[1], scenes.make_scenes(4, 32, seed=[7, 1])[0])
    assert not np.array_equal(first[0], first[1])  # each batch is new
    with pytest.raises(ValueError, match="positive"):
        scenes.scene_batches(0, 3)


def test_train_network_records_its_losses_and_predicts_in_float16():
    weights = np.ones(len(BINS), np.float32)
    model, losses = scenes.train_network("rebalanced", BINS, steps=4, weights=weights, batch=4,
                                         every=2, refresh=8)
    assert [step for step, _ in losses] == [2, 4] and all(np.isfinite(v) for _, v in losses)
    L = color.rgb_to_lab(scenes.make_scenes(3, seed=1)[0]).numpy()[..., :1]
    out = scenes.predict(model, L, chunk=2)
    assert out.dtype == np.float16 and out.shape == (3, 16, 16, len(BINS))
    np.testing.assert_allclose(out.astype(np.float32).sum(-1), 1, atol=0.02)  # distributions
    with pytest.raises(ValueError, match="rebalancing weights"):
        scenes.train_network("rebalanced", BINS, steps=1)
