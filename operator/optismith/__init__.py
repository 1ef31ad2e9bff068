"""Optismith: the fastest inference artifact for a TensorFlow model that still meets its accuracy bar."""

import os

# Each graph-mode Session gets its own intra-op thread pool only with this set before TensorFlow makes its
# first device; without it the first Session's thread count silently applies to all (measured on 2.21).
# The benchmark sweeps thread counts per Session, so every entry point must have it.
os.environ.setdefault("TF_OVERRIDE_GLOBAL_THREADPOOL", "1")

__version__ = "0.1.0"
API_GROUP = "optismith.io"
API_VERSION = "v1alpha1"
KIND = "ModelOptimization"
