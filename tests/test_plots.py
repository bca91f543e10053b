import re

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import animation

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


def _family():
    from helpers import stats

    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 6)
    family = stats.holm([
        stats.paired(base + 1 + rng.normal(0, 0.1, 6), base, name="better"),
        stats.paired(base - 1 + rng.normal(0, 0.1, 6), base, name="worse"),
        stats.paired(base + rng.normal(0, 1, 6), base, name="unclear"),
    ])
    same = stats.equivalence(base, base + rng.normal(0, 0.01, 6), 0.5, name="same")
    return family, same


def test_forest_plot_draws_one_row_per_comparison_in_its_verdict_colour():
    family, same = _family()
    assert [c.verdict for c in family] == ["higher", "lower", "not resolved"]
    comparisons = [*family, same]
    ax = plots.forest_plot(comparisons, unit="pp", title="Two differences are real")
    intervals = [line for line in ax.get_lines() if line.get_gid() == "interval"]
    estimates = [line for line in ax.get_lines() if line.get_gid() == "estimate"]
    assert len(intervals) == len(estimates) == len(comparisons)
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    for line, dot, c in zip(intervals, estimates, comparisons):
        row = line.get_ydata()[0]
        assert labels[list(ax.get_yticks()).index(row)] == c.name
        assert list(line.get_xdata()) == pytest.approx([c.low, c.high])
        assert dot.get_xdata()[0] == pytest.approx(c.mean)
        expected = mpl.colors.to_rgba(plots.VERDICT_COLORS[c.verdict])
        assert mpl.colors.to_rgba(line.get_color()) == expected
        assert mpl.colors.to_rgba(dot.get_color()) == expected
    assert [line.get_ydata()[0] for line in intervals] == sorted(
        (line.get_ydata()[0] for line in intervals), reverse=True), "first comparison on top"
    zero = [line for line in ax.get_lines() if line.get_gid() == "zero"]
    assert len(zero) == 1 and set(zero[0].get_xdata()) == {0.0}
    margins = [line for line in ax.get_lines() if line.get_gid() == "margin"]
    assert len(margins) == 1 and list(margins[0].get_xdata()) == [-0.5, 0.5]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["higher", "lower", "not resolved", "equivalent"]
    assert "pp" in ax.get_xlabel() and ax.get_title() == "Two differences are real"
    plt.close(ax.figure)


def test_verdict_colours_are_distinct_where_the_verdicts_differ():
    decisive = [plots.VERDICT_COLORS[v] for v in ("higher", "lower", "not resolved", "equivalent")]
    assert len(set(decisive)) == len(decisive)
    assert all(mpl.colors.is_color_like(c) for c in plots.VERDICT_COLORS.values())


def test_forest_plot_rejects_what_is_not_a_comparison():
    with pytest.raises(ValueError, match="at least one"):
        plots.forest_plot([])
    with pytest.raises(ValueError, match="helpers.stats results"):
        plots.forest_plot([(0.1, 0.0, 0.2)])


def test_offline_jshtml_embeds_every_frame_links_nothing_and_carries_alt_text():
    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    (line,) = ax.plot([0, 1], [0, 0])
    frames = 3

    def draw(f):
        line.set_ydata([0, f])
        return [line]

    anim = animation.FuncAnimation(fig, draw, frames=frames, interval=100)
    text = plots.offline_jshtml(anim, 'A line tilting up, frame by frame ("slope" 0 to 2)')
    plt.close(fig)
    assert not re.search(r"https?://", text) and 'class="fa' not in text
    assert text.count("data:image/png;base64") == frames
    assert 'alt="A line tilting up, frame by frame (&quot;slope&quot; 0 to 2)"' in text
    assert "▶" in text
    with pytest.raises(ValueError, match="alt text"):
        plots.offline_jshtml(anim, "  ")
