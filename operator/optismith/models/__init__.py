"""Model sources and graphs: fetching, recognising, loading, freezing and optimizing TensorFlow models.
TensorFlow is imported inside functions so that this package is cheap to import."""
