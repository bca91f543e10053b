import matplotlib as mpl
import pytest

from helpers import plots
from helpers.activations import ACTIVATIONS


def test_every_activation_has_its_own_colour():
    colours = [plots.color(name) for name in ACTIVATIONS]
    assert len(set(colours)) == len(colours)
    assert all(mpl.colors.is_color_like(c) for c in colours)


def test_colour_lookup_is_case_insensitive_and_rejects_unknown_names():
    assert plots.color("ReLU") == plots.color("relu")
    with pytest.raises(ValueError, match="No colour for 'softplus'"):
        plots.color("softplus")


def test_book_style_sets_animation_limit():
    plots.use_book_style()
    assert mpl.rcParams["animation.embed_limit"] == 5.0
