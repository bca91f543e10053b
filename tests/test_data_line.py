"""The synthetic line with a group of outliers (helpers.data.make_line_data)."""

import numpy as np
import pytest

from helpers import data


def test_shapes_types_and_split():
    (x_tr, y_tr), (x_te, y_te) = data.make_line_data(n=50, n_outliers=5, n_test=10, seed=0)
    assert x_tr.shape == y_tr.shape == (40,) and x_te.shape == y_te.shape == (10,)
    assert all(a.dtype == np.float32 for a in (x_tr, y_tr, x_te, y_te))
    both = np.sort(np.concatenate([x_tr, x_te]))
    np.testing.assert_allclose(both, np.linspace(0.5, 9.5, 50), rtol=1e-6)
    assert np.all(np.diff(x_tr) > 0) and np.all(np.diff(x_te) > 0)


def test_outliers_are_a_group_in_the_training_split_only():
    kw = dict(n=50, n_outliers=5, noise=0.5, outlier_x=8.0, outlier_offset=-10.0, seed=1)
    (x_tr, y_tr), (x_te, y_te) = data.make_line_data(**kw)
    off_train = np.abs(y_tr - 2 * x_tr) > 5
    assert off_train.sum() == 5
    assert np.all(np.abs(x_tr[off_train] - 8.0) < 1.5)  # grouped around outlier_x
    assert np.all(np.abs(y_te - 2 * x_te) < 5 * 0.5)  # clean test points
    assert np.all(y_tr[off_train] < 2 * x_tr[off_train])  # moved down by the offset


def test_noise_level_and_seeds():
    (x, y), _ = data.make_line_data(n=400, n_outliers=0, n_test=10, noise=0.5, seed=2)
    assert 0.4 < np.std(y - 2 * x) < 0.6
    a = data.make_line_data(seed=3)
    b = data.make_line_data(seed=3)
    c = data.make_line_data(seed=4)
    np.testing.assert_array_equal(a[0][1], b[0][1])
    assert not np.array_equal(a[0][1], c[0][1])
    (x0, y0), _ = data.make_line_data(n_outliers=0, noise=0.0, slope=-1.0, intercept=3.0)
    np.testing.assert_allclose(y0, 3.0 - x0, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_test=0), "at least one test point"),
    (dict(n=5, n_test=4), "two training points"),
    (dict(n_outliers=41), "n_outliers"),
    (dict(noise=-1.0), "cannot be negative"),
    (dict(x_range=(3.0, 1.0)), "low < high"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.make_line_data(**kwargs)


def test_line_draws_stack_one_independent_draw_per_seed():
    (x, y), (xt, yt) = data.make_line_draws([3, 4, 3], n_outliers=2)
    assert x.shape == y.shape == (3, 40) and xt.shape == yt.shape == (3, 10)
    (x3, y3), (xt3, _) = data.make_line_data(n_outliers=2, seed=3)
    np.testing.assert_array_equal(y[0], y3)
    np.testing.assert_array_equal(xt[2], xt3)
    assert not np.array_equal(y[0], y[1])
    with pytest.raises(ValueError, match="at least one seed"):
        data.make_line_draws([])
    with pytest.raises(ValueError, match="first argument"):
        data.make_line_draws([1], seed=2)
