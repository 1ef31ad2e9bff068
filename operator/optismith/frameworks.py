"""Importing TensorFlow the way Optismith needs it.

TensorFlow sizes one process-wide intra-op thread pool when it creates its first device, and every
later graph Session reuses it whatever its ConfigProto says, unless TF_OVERRIDE_GLOBAL_THREADPOOL is set
before that first device exists. Benchmarks sweep thread counts per Session, so every module that
touches TensorFlow (models, runtimes, builders) imports it through here.
"""

from __future__ import annotations

import os
from typing import Any


def import_tensorflow() -> Any:
    os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf
