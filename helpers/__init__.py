"""Thin helpers shared by the chapters of the book.

One module per concern (see DESIGN.md): ``config``, ``data``, ``activations``, ``plots``,
``training``, ``color`` and ``freeze``. Import the module you need, e.g.
``from helpers import config, data``.
"""

__all__ = ["activations", "color", "config", "data", "freeze", "plots", "training"]
