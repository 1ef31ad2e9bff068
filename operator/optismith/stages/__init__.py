"""The stages, one module (or package) each: inspect, freeze, optimize, quantize, convert, benchmark,
evaluate, select, report, promote. They are registered by name in optismith.pipeline.registry, import
nothing from one another, and talk only through the run directory (optismith.runs)."""
