"""Measuring latency honestly, as a library: the benchmark stage and bench/ both use it.

    statistics   medians with distribution-free confidence intervals, percentiles, Poisson arrivals
    paired       paired rounds of a variant against the baseline; a Poisson-arrival server run
    interleave   interleaved rounds of many candidates, for ratios measured in the same minutes
    host         what a measurement ran on (CPU, its extensions, cores, memory, thread settings)

It knows nothing of runtimes or models: a candidate is a callable.
"""
