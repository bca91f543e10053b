"""Shared figure code: one colour per activation and per method, across the whole book."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib import animation
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

# Colour-blind-safe palette (Okabe & Ito, and Tol's muted colours), one fixed colour a name.
COLORS: dict[str, str] = {
    # activations
    "sigmoid": "#4D4D4D",
    "tanh": "#882255",
    "relu": "#0072B2",
    "leaky_relu": "#56B4E9",
    "leaky_relu_100": "#56B4E9",
    "leaky_relu_5.5": "#117733",
    "leaky_relu_mean": "#44AA99",
    "prelu": "#009E73",
    "rrelu": "#D55E00",
    "elu": "#CC79A7",
    "gelu": "#E69F00",
    "swish": "#332288",
    "selu": "#44AA99",
    "sigmoid_half": "#999933",
    "softmax": "#000000",
    # methods (regularisation, colorisation, deployment formats)
    "l1": "#D55E00",
    "l2": "#0072B2",
    "elastic_net": "#009E73",
    "none": "#999999",
    "regression": "#999999",
    "classification": "#0072B2",
    "rebalanced": "#D55E00",
    "context_rebalanced": "#009E73",
    "local_rebalanced": "#CC79A7",
    "prior_only": "#4D4D4D",
    # deployment formats (freezing chapter)
    "keras": "#D55E00",
    "savedmodel": "#CC79A7",
    "frozen_graph": "#0072B2",
    "tflite_float": "#009E73",
    "tflite_dynamic": "#E69F00",
    "tflite_int8": "#332288",
    "tflite_int8_raw": "#88CCEE",
    "tflite_float16": "#44AA99",
    "keras_litert": "#117733",
    "keras_function": "#882255",
    "keras_xla": "#AA4499",
    "onnx": "#999933",
}

LABELS: dict[str, str] = {
    "sigmoid": "Sigmoid", "tanh": "tanh", "relu": "ReLU", "leaky_relu": "Leaky ReLU",
    "leaky_relu_100": "Leaky ReLU (a=100)", "leaky_relu_5.5": "Leaky ReLU (a=5.5)",
    "leaky_relu_mean": "Leaky ReLU (slope E[1/a])",
    "prelu": "PReLU", "rrelu": "RReLU", "elu": "ELU", "gelu": "GELU", "swish": "Swish",
    "selu": "SELU", "sigmoid_half": "Sigmoid − ½",
    "softmax": "Softmax", "l1": "L1", "l2": "L2", "elastic_net": "Elastic net",
    "none": "No penalty", "regression": "L2 regression", "classification": "Classification",
    "rebalanced": "Classification, rebalanced",
    "context_rebalanced": "Context network, rebalanced",
    "local_rebalanced": "Local control, rebalanced", "prior_only": "Training prior only",
    "keras": "Keras (.keras), eager", "savedmodel": "SavedModel",
    "frozen_graph": "Frozen GraphDef",
    "tflite_float": "TFLite float", "tflite_dynamic": "TFLite dynamic-range",
    "tflite_int8": "TFLite full-integer",
    "tflite_int8_raw": "TFLite full-integer, int8 in/out", "tflite_float16": "TFLite float16",
    "tflite_float_raw": "TFLite float, invoke() alone",
    "keras_litert": "Keras export, LiteRT", "keras_function": "Keras, tf.function",
    "keras_xla": "Keras, tf.function + XLA", "onnx": "Keras export, ONNX Runtime",
}


def color(name: str) -> str:
    """Return the book's colour for an activation or method name (e.g. ``"relu"``)."""
    key = name.lower()
    if key not in COLORS:
        raise ValueError(f"No colour for {name!r}; known names: {', '.join(sorted(COLORS))}. "
                         "Add it to helpers.plots.COLORS so every chapter uses the same one.")
    return COLORS[key]


def label(name: str) -> str:
    """Return the display label for an activation or method name."""
    return LABELS.get(name.lower(), name)


def use_book_style() -> None:
    """Apply the book's matplotlib defaults (sizes, grid, no top/right spines)."""
    mpl.rcParams.update({
        "figure.figsize": (7.0, 4.0),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "animation.embed_limit": 5.0,  # MB: keeps every animated page under 5 MB
    })
    plt.rcParams["axes.prop_cycle"] = mpl.cycler(color=list(dict.fromkeys(COLORS.values())))


VERDICT_COLORS: dict[str, str] = {
    "higher": "#0072B2",                # blue (Okabe & Ito)
    "lower": "#D55E00",                 # vermillion
    "not resolved": "#999999",          # grey
    "equivalent": "#009E73",            # bluish green
    "not shown equivalent": "#999999",  # grey, drawn with a square marker
}
"""One colour per verdict of ``helpers.stats`` (colour-blind safe), for every forest plot."""


def forest_plot(comparisons: Sequence, ax: Axes | None = None, *, unit: str = "",
                title: str | None = None) -> Axes:
    """Draw a family of comparisons, one row each: interval, mean and verdict colour.

    Args:
        comparisons: ``helpers.stats`` results (``Comparison``, e.g. after ``holm``, or
            ``Equivalence``, whose margin is marked with ticks), top row first.
        ax: the axes to draw on (a new figure when None).
        unit: the unit of the differences, for the x label (e.g. ``"pp"``).
        title: the figure title; state the finding.

    Returns:
        The axes, with a vertical line at zero and a legend of the verdicts shown.
    """
    comparisons = list(comparisons)
    if not comparisons:
        raise ValueError("forest_plot needs at least one comparison.")
    for c in comparisons:
        if not all(hasattr(c, f) for f in ("name", "mean", "low", "high", "verdict")):
            raise ValueError(f"forest_plot takes helpers.stats results (Comparison or "
                             f"Equivalence), got {type(c).__name__}.")
        if c.verdict not in VERDICT_COLORS:
            raise ValueError(f"Unknown verdict {c.verdict!r}; expected one of "
                             f"{', '.join(VERDICT_COLORS)}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.0, 1.2 + 0.4 * len(comparisons)))
    rows = range(len(comparisons) - 1, -1, -1)  # the first comparison on top
    for row, c in zip(rows, comparisons):
        colour = VERDICT_COLORS[c.verdict]
        marker = "s" if c.verdict == "not shown equivalent" else "o"
        ax.plot([c.low, c.high], [row, row], color=colour, lw=2.5, solid_capstyle="butt",
                gid="interval")
        ax.plot([c.mean], [row], marker=marker, color=colour, ms=6, ls="none", gid="estimate")
        if hasattr(c, "margin"):
            ax.plot([-c.margin, c.margin], [row, row], ls="none", marker="|", ms=14,
                    color=colour, gid="margin")
    ax.axvline(0.0, color="black", lw=0.8, gid="zero")
    ax.set_yticks(list(rows), [c.name for c in comparisons])
    ax.set_ylim(-0.7, len(comparisons) - 0.3)
    ax.grid(False, axis="y")
    ax.set_xlabel(f"Difference{f' ({unit})' if unit else ''}; {_levels_text(comparisons)}")
    shown = [v for v in VERDICT_COLORS if any(c.verdict == v for c in comparisons)]
    handles = [Line2D([], [], color=VERDICT_COLORS[v], lw=2.5,
                      marker="s" if v == "not shown equivalent" else "o") for v in shown]
    ax.legend(handles, shown, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def _levels_text(comparisons: list) -> str:
    """Say at which confidence levels a forest plot's intervals are drawn."""
    parts = []
    levels = sorted({round(100 * c.confidence, 1) for c in comparisons if not hasattr(c, "margin")})
    if levels:
        holm = any(c.p_adjusted != c.p for c in comparisons if not hasattr(c, "margin"))
        span = f"{levels[0]:g} %" if len(levels) == 1 else f"{levels[0]:g}–{levels[-1]:g} %"
        parts.append(f"{span} intervals" + (" (Holm-adjusted)" if holm else ""))
    tost = sorted({round(100 * c.confidence, 1) for c in comparisons if hasattr(c, "margin")})
    if tost:
        shown = "/".join(f"{t:g}" for t in tost)
        parts.append(f"equivalence: {shown} % interval, ticks at ±margin")
    return "; ".join(parts)


# to_jshtml links an icon font from a CDN for its buttons; the book works offline, so the
# link goes and the buttons get plain characters.
_BUTTONS: dict[str, str] = {
    "fa fa-minus": "−", "fa fa-fast-backward": "⇤", "fa fa-step-backward": "◂",
    "fa fa-play fa-flip-horizontal": "◀", "fa fa-pause": "❚❚", "fa fa-play": "▶",
    "fa fa-step-forward": "▸", "fa fa-fast-forward": "⇥", "fa fa-plus": "+",
}


def offline_jshtml(anim: animation.Animation, alt: str) -> str:
    """Return an animation as self-contained HTML: every frame embedded, no external link.

    Args:
        anim: the matplotlib animation.
        alt: the alt text of the frame image (what the animation shows).

    Returns:
        ``anim.to_jshtml()`` without its stylesheet link, with text buttons and alt text.
    """
    if not isinstance(anim, animation.Animation):
        raise ValueError(f"offline_jshtml takes a matplotlib Animation, got {type(anim).__name__}.")
    if not isinstance(alt, str) or not alt.strip():
        raise ValueError("offline_jshtml needs alt text that says what the animation shows.")
    text = anim.to_jshtml(default_mode="once")
    text = text.replace("<img id=", f'<img alt="{html.escape(alt)}" id=', 1)
    text = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*">', "", text)
    for icon, glyph in _BUTTONS.items():
        text = text.replace(f'<i class="{icon}"></i>', glyph)
    return text
