"""Shared test configuration: quiet TensorFlow, and the built site's location."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
