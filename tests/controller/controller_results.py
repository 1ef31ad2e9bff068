"""A selection result shared by the status and metrics tests."""

RESULTS = {
    "selection": {
        "objective": "latencyP50",
        "batch_size": 1,
        "winner": "tflite-int8",
        "winner_target": "cpu",
        "outcome": "selected",
        "message": "tflite-int8 is 3.10x faster",
        "candidates": [
            {
                "variant": "tflite-int8",
                "target": "cpu",
                "latency_p50_ms": 0.31,
                "latency_p99_ms": 0.52,
                "throughput_per_s": 3000.0,
                "size_bytes": 100000,
                "accuracy_drop": 0.002,
                "speedup": 3.1,
                "passed": True,
            },
            {
                "variant": "tf-savedmodel",
                "target": "cpu",
                "latency_p50_ms": 0.96,
                "latency_p99_ms": 1.5,
                "throughput_per_s": 1000.0,
                "size_bytes": 400000,
                "accuracy_drop": 0.0,
                "speedup": 1.0,
                "passed": True,
            },
        ],
    }
}
