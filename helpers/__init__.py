"""Thin helpers shared by the chapters of the book.

One module per concern (see DESIGN.md): ``config``, ``data``, ``activations``, ``plots``,
``training``, ``color``, ``freeze`` and ``stats`` (paired comparisons, Holm, equivalence,
bootstrap and power, on scipy and statsmodels). Planned beside them: ``perceptrons`` (many
seeds of a perceptron trained as one model; today ``experiments``) and ``colorizer`` (the
colorization network, its data and training). Import the module you need, e.g.
``from helpers import config, stats``.
"""

__all__ = ["activations", "color", "config", "data", "freeze", "plots", "stats", "training"]
