"""Shared figure code: one colour per activation and per method, across the whole book."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt

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
    "softmax": "#000000",
    # methods (regularisation, colorisation, deployment formats)
    "l1": "#D55E00",
    "l2": "#0072B2",
    "elastic_net": "#009E73",
    "none": "#999999",
    "regression": "#999999",
    "classification": "#0072B2",
    "rebalanced": "#D55E00",
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
    "softmax": "Softmax", "l1": "L1", "l2": "L2", "elastic_net": "Elastic net",
    "none": "No penalty", "regression": "L2 regression", "classification": "Classification",
    "rebalanced": "Classification, rebalanced",
    "keras": "Keras (.keras), eager", "savedmodel": "SavedModel",
    "frozen_graph": "Frozen GraphDef",
    "tflite_float": "TFLite float", "tflite_dynamic": "TFLite dynamic-range",
    "tflite_int8": "TFLite full-integer",
    "tflite_int8_raw": "TFLite full-integer, int8 in/out", "tflite_float16": "TFLite float16",
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
