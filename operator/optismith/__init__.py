"""Optismith: the fastest inference artifact for a TensorFlow model that still meets its accuracy bar."""

__version__ = "0.1.0"
API_GROUP = "optismith.io"
API_VERSION = "v1alpha1"
KIND = "ModelOptimization"
