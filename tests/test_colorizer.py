import numpy as np
import pytest
import tensorflow as tf
from skimage.color import rgb2lab

from helpers import color
from helpers import colorizer as cz

BINS = np.array([[a, b] for a in range(-20, 21, 10) for b in range(-20, 21, 10)], np.float32)
C = slice(cz.MARGIN, cz.MARGIN + cz.OUTPUT)  # the centre a window colours


def _random_rgb(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _numbered_windows(n, size=cz.WINDOW):
    """Grey windows whose lightness tells which window each is (window i has L close to i)."""
    grey = np.linspace(0.05, 0.95, n, dtype=np.float32)
    return np.broadcast_to(grey[:, None, None, None], (n, size, size, 3)).copy()


def _which(L_batches, n):
    """Decode the window index of every window in a list of L batches."""
    L = np.concatenate([np.asarray(b)[:, 0, 0, 0] for b in L_batches])
    reference = rgb2lab(_numbered_windows(n, 1)[:, 0])[:, 0, 0]
    return np.abs(L[:, None] - reference[None]).argmin(1)


def test_post_model_maps_32_px_windows_to_16_px_distributions():
    model = cz.build_model(24)
    assert model.output_shape == (None, 16, 16, 24)
    widths = [layer.filters for layer in model.layers if hasattr(layer, "filters")]
    assert widths == [3, 6, 9, 12, 15, 18, 21, 24]
    out = model(np.full((2, 32, 32, 1), 50.0, np.float32)).numpy()
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-5)
    assert cz.build_model(24, "regression").output_shape == (None, 16, 16, 2)


def test_receptive_fields_computed_from_the_layers():
    assert cz.receptive_field(cz.build_model(24)) == 17  # 8 unpadded 3x3: 1 + 8 * 2
    # 3 stride-2 3x3 (15 px, jump 8), dilated 1, 2, 4 (+16, +32, +64), bilinear upsampling
    # (+8: two neighbours at jump 8, then jump 4), a 3x3 (+8), a 1x1 head
    assert cz.receptive_field(cz.build_model(24, architecture="context")) == 143
    # the local control: the same encoder (15 px), 1x1 convolutions, the upsampling (+8)
    assert cz.receptive_field(cz.build_model(24, architecture="local")) == 23


@pytest.mark.parametrize("architecture", ["context", "local"])
def test_receptive_field_of_the_whole_image_networks_by_their_gradients(architecture):
    """Independent of ``receptive_field``: the input square one output pixel depends on."""
    import tensorflow as tf

    model = cz.build_model(16, architecture=architecture)
    x = tf.Variable(np.random.default_rng(4).random((1, 256, 256, 1)).astype(np.float32) * 100)
    with tf.GradientTape() as tape:
        out = tf.reduce_sum(model(x)[0, 32, 33] * tf.range(16, dtype=tf.float32))
    g = np.abs(tape.gradient(out, x).numpy()[0, ..., 0]) > 0
    rows, cols = np.flatnonzero(g.any(1)), np.flatnonzero(g.any(0))
    assert rows.max() - rows.min() + 1 == cz.receptive_field(model)
    assert cols.max() - cols.min() + 1 == cz.receptive_field(model)


def test_local_control_differs_from_the_context_network_only_in_its_receptive_field():
    """Same encoder, stride, output resolution and output for any size; ~ the same weights."""
    import tensorflow as tf

    context = cz.build_model(150, architecture="context")
    local = cz.build_model(150, architecture="local")
    assert 0.95 < local.count_params() / context.count_params() < 1.05
    assert cz._context_weights(150, cz.context_width(150)) == context.count_params()
    for name in ("down1", "down2", "down3"):
        assert local.get_layer(name).get_config()["kernel_size"] == (3, 3)
        assert local.get_layer(name).kernel.shape == context.get_layer(name).kernel.shape
    x = tf.Variable(np.random.default_rng(3).random((1, 96, 64, 1)).astype(np.float32) * 100)
    with tf.GradientTape() as tape:
        y = local(x)
        assert y.shape == (1, 24, 16, 150)
        out = y[0, 12, 8, 0]
    g = np.abs(tape.gradient(out, x).numpy()[0, ..., 0]) > 0
    rows, cols = np.flatnonzero(g.any(1)), np.flatnonzero(g.any(0))
    assert rows.max() - rows.min() + 1 <= 23 and cols.max() - cols.min() + 1 <= 23
    assert cz._is_context(local) and not cz._is_context(cz.build_model(150))
    with pytest.raises(ValueError, match="post, context, local"):
        cz.build_model(150, architecture="wide")


def test_receptive_field_by_perturbing_the_input():
    """An independent check: which input pixels change one output pixel of the post's net."""
    import tensorflow as tf

    model = cz.build_model(16, "regression")
    x = tf.Variable(np.random.default_rng(0).random((1, 32, 32, 1)).astype(np.float32) * 100)
    with tf.GradientTape() as tape:
        y = model(x)[0, 8, 8, 0]
    g = np.abs(tape.gradient(y, x).numpy()[0, ..., 0]) > 0
    rows, cols = np.flatnonzero(g.any(1)), np.flatnonzero(g.any(0))
    assert rows.max() - rows.min() + 1 <= 17 and cols.max() - cols.min() + 1 <= 17


@pytest.mark.parametrize("q", [40, 150, 300])
def test_context_network_has_about_the_post_networks_weights(q):
    post = cz.build_model(q).count_params()
    context = cz.build_model(q, architecture="context")
    assert 0.8 < context.count_params() / post < 1.25
    out = context(np.full((2, 96, 64, 1), 50.0, np.float32)).numpy()
    assert out.shape == (2, 24, 16, q)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-5)


def test_mixed_bfloat16_model_computes_in_bfloat16_and_outputs_float32():
    model = cz.build_model(24, precision="mixed_bfloat16")
    assert model.get_layer("conv3").compute_dtype == "bfloat16"
    assert model.get_layer("conv3").variable_dtype == "float32"  # weights stay float32
    out = model(np.full((2, 32, 32, 1), 50.0, np.float32))
    assert out.dtype == "float32" and out.shape == (2, 16, 16, 24)
    np.testing.assert_allclose(out.numpy().sum(axis=-1), 1.0, atol=1e-5)
    reg = cz.build_model(24, "regression", precision="mixed_bfloat16")
    assert reg.output_shape == (None, 16, 16, 2) and reg.output.dtype == "float32"


@pytest.mark.parametrize("kwargs, match", [({"precision": "float16"}, "precision"),
                                           ({"architecture": "unet"}, "architecture"),
                                           ({"variant": "rebalanced"}, "variant")])
def test_build_model_rejects_unknown_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cz.build_model(24, **kwargs)


def test_make_targets_gives_centre_targets_and_nearest_bin_weights():
    windows = _random_rgb((2, 32, 32, 3), seed=3)
    weights = np.linspace(0.5, 2.0, len(BINS)).astype(np.float32)
    L, z, w = cz.make_targets(windows, BINS, weights)
    lab = rgb2lab(windows)
    np.testing.assert_allclose(L.numpy()[..., 0], lab[..., 0], atol=2e-3)
    assert z.shape == (2, 16, 16, len(BINS)) and w.shape == (2, 16, 16)
    centre = lab[:, C, C, 1:]
    nearest = np.argmin(((centre[..., None, :] - BINS) ** 2).sum(-1), axis=-1)
    np.testing.assert_allclose(w.numpy(), weights[nearest], atol=1e-6)
    _, ab, ones = cz.make_targets(windows, BINS, None, "regression")
    np.testing.assert_allclose(ab.numpy(), centre, atol=2e-3)
    assert np.all(ones.numpy() == 1.0)


def test_opacity_channel_removes_a_cut_outs_background_from_the_loss():
    windows = _random_rgb((2, 32, 32, 3), seed=5)
    alpha = np.zeros((2, 32, 32, 1), np.float32)
    alpha[0, :, :16] = 1.0  # left half of the first window opaque, the second all background
    weights = np.linspace(0.5, 2.0, len(BINS)).astype(np.float32)
    L, z, w = cz.make_targets(np.concatenate([windows, alpha], -1), BINS, weights,
                              architecture="main")
    _, z3, w3 = cz.make_targets(windows, BINS, weights, architecture="main")
    np.testing.assert_allclose(z.numpy(), z3.numpy())  # the same targets, other weights
    assert L.shape == (2, 32, 32, 1)
    col = np.arange(8) * 4 + cz.MAIN_TARGET_OFFSET  # the pixels the targets come from
    opaque = np.zeros((2, 8, 8), bool)
    opaque[0][:, col < 16] = True
    assert np.all(w.numpy()[~opaque] == 0)
    # scaled so that the batch's mean weight is the mean over its opaque pixels
    np.testing.assert_allclose(w.numpy()[opaque] * opaque.mean(), w3.numpy()[opaque], rtol=1e-5)


def test_context_targets_are_the_crop_averaged_over_4x4_blocks():
    crops = _random_rgb((2, 16, 24, 3), seed=4)
    _, ab, _ = cz.make_targets(crops, BINS, None, "regression", architecture="context")
    lab = rgb2lab(crops)[..., 1:]
    want = lab.reshape(2, 4, 4, 6, 4, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(ab.numpy(), want, atol=2e-3)


def test_window_order_is_a_sequence_of_permutations():
    order = cz.window_order(10, 25, seed=3)
    assert len(order) == 25
    for start in (0, 10):
        assert sorted(order[start:start + 10]) == list(range(10))
    assert len(set(order[20:])) == 5
    np.testing.assert_array_equal(order[:7], cz.window_order(10, 7, seed=3))  # a prefix
    assert not np.array_equal(order, cz.window_order(10, 25, seed=4))


def test_dataset_yields_the_windows_of_the_order_given():
    windows = _numbered_windows(12)
    order = np.array([5, 0, 11, 3, 3, 7])
    ds = cz.make_dataset(windows, BINS, batch_size=3, order=order, variant="regression")
    assert _which([L for L, _, _ in ds], 12).tolist() == order.tolist()
    with pytest.raises(ValueError, match="outside"):
        cz.make_dataset(windows, BINS, order=np.array([12]))


def test_held_out_loss_is_the_mean_loss_over_the_windows():
    trainer = cz.make_trainer(len(BINS), "classification", seed=7)
    held_out = _random_rgb((6, 32, 32, 3), 8)
    L, z, w = cz.make_targets(held_out, BINS)
    p = trainer.model.predict(L, verbose=0)
    want = float(np.mean(-np.sum(z.numpy() * np.log(np.maximum(p, 1e-7)), -1)))
    assert cz.held_out_loss(trainer, L, z, w, batch_size=4) == pytest.approx(want, rel=1e-3)


def _digest(model):
    return [w.tobytes() for w in model.get_weights()]


@pytest.mark.parametrize("variant", ["rebalanced", "regression"])
def test_train_loop_reproduces_keras_fit_bit_for_bit(tmp_path, variant):
    """The one loop gives the weights, losses and held-out losses Keras' fit and evaluate
    give (checked for every network, variant and precision when the loop replaced fit)."""
    windows, held_out = _random_rgb((24, 32, 32, 3), seed=9), _random_rgb((6, 32, 32, 3), 10)
    weights = np.linspace(0.5, 2, len(BINS)).astype(np.float32)
    kind = "regression" if variant == "regression" else "classification"
    use_w = weights if variant == "rebalanced" else None
    order = cz.window_order(len(windows), 16, seed=2)
    L, z, w = next(iter(cz.make_dataset(held_out, BINS, use_w, kind, len(held_out))))
    trainer = cz.make_trainer(len(BINS), variant, lr=3e-3, seed=2)
    manager = tf.train.CheckpointManager(trainer.checkpoint, tmp_path, max_to_keep=1)
    mine, mine_held = [], []

    def on_chunk(now, n, loss, seconds):
        mine.append([now, loss])
        mine_held.append([now, cz.held_out_loss(trainer, L, z, w)])

    cz.train_loop(trainer, cz.make_dataset(windows, BINS, use_w, kind, 4, order=order),
                  until=4, every=2, manager=manager, on_chunk=on_chunk)
    ref = cz.make_trainer(len(BINS), variant, lr=3e-3, seed=2).model  # compiled: fit works
    losses, held = [], []
    for start in (0, 2):
        ds = cz.make_dataset(windows, BINS, use_w, kind, 4, order=order[start * 4:(start + 2) * 4])
        h = ref.fit(ds, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
        losses.append([start + 2, float(h.history["loss"][-1])])
        held.append([start + 2, float(ref.evaluate(L, z, sample_weight=w, verbose=0))])
    assert _digest(trainer.model) == _digest(ref)
    assert mine == losses and mine_held == held


def test_train_loop_scales_the_loss_under_mixed_float16(tmp_path):
    import keras
    import tensorflow as tf

    trainer = cz.make_trainer(len(BINS), "rebalanced", precision="mixed_float16", seed=3)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    assert {v.dtype for v in trainer.model.weights} == {"float32"}
    convs = [layer for layer in trainer.model.layers if hasattr(layer, "kernel_size")]
    assert all(layer.dtype_policy.name == "mixed_float16" for layer in convs)
    ds = cz.make_dataset(_random_rgb((8, 32, 32, 3), 11), BINS, np.ones(len(BINS)), batch_size=4)
    manager = tf.train.CheckpointManager(trainer.checkpoint, tmp_path, max_to_keep=1)
    chunks = []
    cz.train_loop(trainer, ds, until=2, every=1, manager=manager,
                  on_chunk=lambda *a: chunks.append(a))
    assert [c[:2] for c in chunks] == [(1, 1), (2, 1)] and all(np.isfinite(c[2]) for c in chunks)
    assert int(trainer.step.numpy()) == 2 and manager.latest_checkpoint.endswith("ckpt-2")
    with pytest.raises(ValueError, match="positive"):
        cz.train_loop(trainer, ds, until=3, every=0, manager=manager)


def _centre_model(gains):
    """A post-shaped network (8 unpadded 3x3 convolutions) whose output channels are the
    window's centre L times ``gains``: a stand-in to test the whole-image pass."""
    import keras

    inputs = keras.Input((cz.WINDOW, cz.WINDOW, 1))
    x = inputs
    for i in range(8):
        out = len(gains) if i == 7 else 1
        conv = keras.layers.Conv2D(out, 3, use_bias=False)
        x = conv(x)
        kernel = np.zeros((3, 3, 1, out), np.float32)
        kernel[1, 1, 0] = gains if i == 7 else 1.0
        conv.set_weights([kernel])
    return keras.Model(inputs, x, name="centre")


def _echo():
    """ab = (L, -L) of the pixel itself."""
    return _centre_model([1.0, -1.0])


def test_the_whole_image_pass_equals_windows_that_tile_the_image():
    """The post's network over the padded image gives what each tiling window gives."""
    model = cz.build_model(16, "classification")
    L = (np.random.default_rng(5).random((37, 50)) * 100).astype(np.float32)
    out = cz.predict_tiles(model, L)
    padded = np.pad(L, ((8, 8 + 48 - 37), (8, 8 + 64 - 50)), mode="reflect")
    for ty, tx in [(0, 0), (1, 2), (2, 3)]:  # windows whose centres tile the image
        window = padded[16 * ty:16 * ty + 32, 16 * tx:16 * tx + 32]
        expected = model(window[None, :, :, None], training=False).numpy()[0]
        got = out[16 * ty:16 * ty + 16, 16 * tx:16 * tx + 16]
        np.testing.assert_allclose(got, expected[:got.shape[0], :got.shape[1]], atol=1e-5)


@pytest.mark.parametrize("shape", [(16, 16), (37, 50), (64, 48)])
def test_predict_ab_colours_every_pixel_in_place(shape):
    L = np.random.default_rng(0).random(shape).astype(np.float32) * 100
    ab = cz.predict_ab(_echo(), L)
    assert ab.shape == shape + (2,)
    np.testing.assert_allclose(ab[..., 0], L, atol=1e-5)  # no grey border, no shift
    np.testing.assert_allclose(ab[..., 1], -L, atol=1e-5)


def test_predict_tiles_names_itself_when_the_image_is_too_small():
    with pytest.raises(ValueError, match="predict_tiles needs .* at least 16"):
        cz.predict_ab(_echo(), np.zeros((10, 40)))


def test_predict_tiles_returns_every_output_channel_in_place():
    L = np.random.default_rng(1).random((40, 33)).astype(np.float32)
    out = cz.predict_tiles(_centre_model([1.0, 2.0, 3.0]), L)
    assert out.shape == (40, 33, 3)
    np.testing.assert_allclose(out, L[..., None] * [1, 2, 3], atol=1e-5)
    with pytest.raises(ValueError, match="bins"):
        cz.predict_ab(_centre_model([1.0, 2.0, 3.0]), L)


def test_context_network_colours_a_whole_photo_of_any_size():
    model = cz.build_model(len(BINS), architecture="context")
    probs = cz.predict_tiles(model, np.random.default_rng(2).random((37, 50)) * 100)
    assert probs.shape == (37, 50, len(BINS))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    assert cz.predict_ab(model, np.full((20, 30), 50.0), BINS).shape == (20, 30, 2)


def test_random_windows_rejects_small_and_non_rgb_images():
    with pytest.raises(ValueError, match="smaller than"):
        cz.random_windows([np.zeros((20, 60, 3))], 4)
    with pytest.raises(ValueError, match="RGB"):
        cz.random_windows([np.zeros((64, 64))], 4)
    windows = cz.random_windows([_random_rgb((40, 50, 3))], 6, seed=1)
    assert windows.shape == (6, 32, 32, 3)


def test_colorize_keeps_lightness_and_uses_the_predicted_ab():
    rgb = _random_rgb((20, 36, 3), seed=7)
    out = cz.colorize(_echo(), rgb)  # ab = (L, -L): clipped, but L must survive
    assert out.shape == rgb.shape and 0.0 <= out.min() and out.max() <= 1.0
    grey = cz.colorize(_centre_model([0.0, 0.0]), rgb)
    lab = rgb2lab(rgb)
    np.testing.assert_allclose(rgb2lab(grey)[..., 0], lab[..., 0], atol=0.05)
    np.testing.assert_allclose(grey[..., 0], grey[..., 1], atol=2e-3)  # ab = 0 is grey
    with pytest.raises(ValueError, match="RGB"):
        cz.colorize(_echo(), rgb[..., 0])


def test_cpu_bf16_flags_reads_the_cpu_flags(tmp_path, monkeypatch):
    flags = cz.cpu_bf16_flags()
    assert set(flags) <= {"avx512_bf16", "amx_bf16", "avx_ne_convert"} and flags == sorted(flags)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx512f amx_bf16 avx512_bf16\n")
    real = cz.Path

    def fake(path):
        return cpuinfo if str(path) == "/proc/cpuinfo" else real(path)

    monkeypatch.setattr(cz, "Path", fake)
    assert cz.cpu_bf16_flags() == ["amx_bf16", "avx512_bf16"]


def test_evaluate_photos_scores_networks_and_baselines_on_the_trained_pixels():
    rng = np.random.default_rng(3)
    photos = [rng.random((40, 56, 3)).astype(np.float32), rng.random((48, 48, 3)).astype(
        np.float32)]
    bins = color.gamut_bins(10.0)
    prior = np.full(len(bins), 1 / len(bins))
    models = {"classification": cz.build_model(len(bins), "classification",
                                                      architecture="main"),
              "regression": cz.build_model(len(bins), "regression", architecture="main")}
    table = cz.evaluate_photos(models, photos, bins, prior)
    assert len(table) == 2 * 5 and set(table.method) == {"grey", "prior mean", "prior",
                                                          "classification", "regression"}
    grey = table[table.method == "grey"]
    assert (grey.hue_hits == 0).all() and (grey.chroma == 0).all()
    lab = color.rgb_to_lab(photos[0]).numpy()
    o = cz.MAIN_TARGET_OFFSET
    true = lab[o::4, o::4, 1:][:10, :14]  # 40×56 photo: output 10×14
    row = table[(table.photo == 0) & (table.method == "prior")].iloc[0]
    assert row.pixels == 140
    assert row.cross_entropy == pytest.approx(color.soft_cross_entropy(prior, true, bins) * 140)
    zero = table[(table.photo == 0) & (table.method == "grey")].iloc[0]
    assert zero.auc / zero.pixels == pytest.approx(color.error_auc(np.zeros_like(true), true))
    assert np.isnan(table[table.method == "regression"].cross_entropy).all()
    assert np.isfinite(table[table.method == "classification"].cross_entropy).all()
    half = [np.zeros(p.shape[:2], bool) for p in photos]
    half[0][:, :28] = True  # the left half of the 40×56 photo: 7 of 14 output columns
    half[1] = None
    masked = cz.evaluate_photos(models, photos, bins, prior, masks=half)
    grey_masked = masked[(masked.photo == 0) & (masked.method == "grey")].iloc[0]
    assert grey_masked.pixels == 70
    assert grey_masked.auc / 70 == pytest.approx(
        color.error_auc(np.zeros_like(true[:, :7]), true[:, :7]))
    assert masked[(masked.photo == 1)].pixels.iloc[0] == table[(table.photo == 1)].pixels.iloc[0]
    with pytest.raises(ValueError, match="one mask"):
        cz.evaluate_photos(models, photos, bins, prior, masks=half[:1])
    with pytest.raises(ValueError, match="main networks only"):
        cz.evaluate_photos({"post": cz.build_model(len(bins))}, photos, bins,
                                  prior)


def test_evaluate_photos_scores_8_bit_photos_as_their_float_copies():
    rng = np.random.default_rng(4)
    photo = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    bins = color.gamut_bins(10.0)
    prior = np.full(len(bins), 1 / len(bins))
    models = {"classification": cz.build_model(len(bins), "classification",
                                                architecture="main")}
    as_bytes = cz.evaluate_photos(models, [photo], bins, prior)
    as_float = cz.evaluate_photos(models, [photo.astype(np.float32) / 255], bins, prior)
    assert as_bytes.drop(columns="method").to_numpy() == pytest.approx(
        as_float.drop(columns="method").to_numpy(), rel=1e-5, nan_ok=True)
    assert as_bytes[as_bytes.method == "grey"].auc.iloc[0] > 0  # scored, not all zero


def test_prior_only_loss_scores_the_prior_and_its_mean_colour():
    windows = _random_rgb((2, 32, 32, 3), seed=6)
    prior = np.linspace(1, 2, len(BINS)).astype(np.float32)
    prior /= prior.sum()
    _, z, w = cz.make_targets(windows, BINS, None)
    want = -np.mean(np.sum(z.numpy() * np.log(prior), axis=-1))
    assert cz.prior_only_loss(z, w, prior, BINS) == pytest.approx(want, rel=1e-4)
    _, ab, ones = cz.make_targets(windows, BINS, None, "regression")
    mean_ab = prior @ BINS
    want = np.mean((ab.numpy() - mean_ab) ** 2)
    assert cz.prior_only_loss(ab, ones, prior, BINS) == pytest.approx(want, rel=1e-4)


def test_main_classifier_is_decoded_at_its_own_resolution_then_upsampled():
    model = cz.build_model(len(BINS), architecture="main")
    L = np.asarray(rgb2lab(_random_rgb((40, 48, 3), seed=8))[..., 0], np.float32)
    ab = cz.predict_ab(model, L, BINS)
    grid = model(L[None, :, :, None], training=False)  # 40 × 48: multiples of 8, no padding
    want = tf.image.resize(color.annealed_mean(grid, BINS, color.T_ANNEALED), (40, 48),
                           method="bilinear").numpy()[0]
    assert ab.shape == (40, 48, 2)
    np.testing.assert_allclose(ab, want, atol=1e-3)
    with pytest.raises(ValueError, match="needs the bins"):
        cz.predict_ab(model, L)
