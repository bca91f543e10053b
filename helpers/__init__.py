"""Thin helpers shared by the chapters of the book, one module per concern.

- ``book``: publishing glue for the notebooks: ``glue`` (NumPy scalars welcome) and Markdown
  tables.
- ``config``: run scale (full / quick), seeds, paths, the one cache key and live-session test.
- ``data``: dataset loaders (synthetic line data, Fashion-MNIST, photographs).
- ``stats``: paired comparisons, Holm, equivalence (TOST), a mixed Holm family, two-level
  bootstrap, power, the upper confidence limit of a standard deviation.
- ``plots``: colours per method, the forest plot of a family of comparisons, offline animations.
- ``training``: the compiled ensemble of small dense networks (chapter 1).
- ``activations``: RReLU and what else Keras lacks (chapters 2 and 3).
- ``perceptrons``: many seeds of one perceptron trained as one model (chapter 3).
- ``color``: the colorization algorithm in NumPy/TF: Lab, bins, prior, rebalancing, decoding,
  metrics (chapter 4).
- ``colorizer``: the colorization networks, their windows, data, training and tiling
  (chapter 4); ``python -m helpers.colorizer`` trains one on a photo folder
  (``colorizer_cli``, with ``collection`` reading the folder lazily).
- ``freeze``: freezing a model to a constant GraphDef, loading it, converting it for LiteRT.
- ``deployment``: chapter 5's classifier and the formats it is deployed in.

Import the module you need, e.g. ``from helpers import config, stats``.
"""

__all__ = ["activations", "book", "collection", "color", "colorizer", "colorizer_cli", "config",
           "data", "deployment", "freeze", "perceptrons", "plots", "stats", "training"]

from helpers import config as _config  # noqa: E402  (light: NumPy and the standard library)

_config.lean_malloc()
