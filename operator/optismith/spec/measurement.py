"""How variants are built, measured and chosen: graph optimization, the benchmark, the selection."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from optismith.spec.base import SpecModel
from optismith.spec.quantities import Decimal, Percent, ShortDuration, Size

GrapplerPass = Literal[
    "constfold", "arithmetic", "remapper", "layout", "dependency", "debug_stripper", "pruning",
    "shape", "loop", "function", "common_subgraph_elimination",
]
DEFAULT_PASSES: list[GrapplerPass] = [
    "pruning", "function", "constfold", "shape", "arithmetic", "layout", "remapper",
    "loop", "dependency", "debug_stripper", "common_subgraph_elimination",
]
Scenario = Literal["singleStream", "offline", "server"]
DEFAULT_SCENARIOS: tuple[Scenario, ...] = ("singleStream", "offline", "server")
Objective = Literal["latencyP50", "latencyP99", "throughput", "size"]


class OptimizeSpec(SpecModel):
    passes: list[GrapplerPass] = Field(
        default_factory=lambda: list(DEFAULT_PASSES), description="Grappler passes to run, in order."
    )
    max_abs_error: Decimal = Field(
        "1e-3", description="Largest output difference (relative to the output's range) a graph "
        "transformation may introduce before it is rejected."
    )


class BenchmarkSpec(SpecModel):
    batch_sizes: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [1, 8], min_length=1, max_length=8, description="Batch sizes to sweep."
    )
    threads: list[Annotated[int, Field(ge=1, le=256)]] = Field(
        default_factory=list, max_length=8, description="Thread counts to sweep; empty means 1..cores."
    )
    warmup_runs: int = Field(5, ge=0, le=1000, description="Inferences discarded before measuring.")
    min_rounds: int = Field(15, ge=3, le=100000, description="Paired rounds before stability is judged.")
    time_budget: ShortDuration = Field("3s", description="Time per variant and configuration before giving up "
                                       "on stability (the result is then flagged unstable). At most 1h.")
    stability: Percent = Field("5%", description="Stop when the 95% confidence interval of the median is "
                               "within this fraction of it.")
    scenarios: list[Scenario] = Field(
        default_factory=lambda: list(DEFAULT_SCENARIOS), description="Load scenarios."
    )
    server_qps: int | None = Field(
        None, ge=1, le=1000000, description="Poisson arrival rate for the server scenario; default: half "
        "of the variant's measured single-stream throughput."
    )
    server_duration: ShortDuration = Field("2s", description="Length of the server scenario. At most 1h.")
    finalists: int = Field(
        4, ge=0, le=16, description="At each batch size, this many of the fastest variants (those within 2x "
        "of the fastest) are measured again head to head, in interleaved rounds with the baseline, and "
        "ranked on that; 0 or 1 turns this off."
    )
    tie_budget: ShortDuration = Field(
        "5s", description="At each batch size, while the fastest finalist's 95% confidence interval (over the "
        "final's per-round medians) overlaps another finalist's, the final runs more interleaved rounds, for "
        "at most this long. If they still overlap, the selection reports a tie and picks the smaller "
        "artifact, then the lower p50. 0s turns the extra rounds off (a tie is still reported). At most 1h."
    )


class ConstraintsSpec(SpecModel):
    """Gates a variant must pass to be selected."""

    max_accuracy_drop: Percent = Field("1%", description="Largest accuracy (or agreement) drop vs the source.")
    max_latency: ShortDuration | None = Field(None, description="Largest p99 latency at the objective's batch "
                                              "size. At most 1h.")
    max_size: Size | None = Field(None, description="Largest artifact size. At most 1Ti.")


class SelectionSpec(SpecModel):
    objective: Objective = Field("latencyP50", description="What the winner minimizes (throughput: maximizes).")
    batch_size: int = Field(1, ge=1, le=4096, description="Batch size the objective is measured at.")
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec, description="Gates a winner must pass.")
