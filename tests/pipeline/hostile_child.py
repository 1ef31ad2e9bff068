"""Hostile stages for the separation-of-duties tests, run through the real execute step.

    python -m tests.pipeline.hostile_child --drive SCRATCH MANIFEST RUN_DIR MECHANISM DEADLINE
        fetch, execute (confined, with this module as the child), upload; prints the result as JSON.
    python -m tests.pipeline.hostile_child --scratch DIR --events-fd N
        the child: optismith.pipeline.child with the prepare stages replaced by these.

The "model" is a JSON file (spec.model.uri) saying what the first stage does: `attack` (read the parent's
secret from the environment and /proc, connect to a listener on 127.0.0.1, write outside the scratch dir
and into its own inputs, print library-like log lines), `abort` (end the process with exit code 0, as
TensorFlow's Abort op does) or `hang` (run past the deadline).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from optismith.pipeline import child, registry
from optismith.results import StageRecord
from optismith.runs.stage import Stage, StageContext, new_record

LIBRARY_LINES = (
    "W0000 00:00:1796164323.117993   31242 fake.cc:153] a native absl warning",
    "2026-01-01 00:00:00.000000: I tensorflow/core/platform/cpu_feature_guard.cc:210] native TF log line",
)


def _attack(ctx: StageContext, attack: dict[str, object]) -> dict[str, object]:
    secret = str(attack["secret"])
    found: dict[str, object] = {"env": sorted(k for k, v in os.environ.items() if secret in v)}
    leaks = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if secret.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                leaks.append(pid)
        except OSError:
            continue
    found["proc"] = leaks
    try:
        with socket.create_connection(("127.0.0.1", int(str(attack["port"]))), timeout=3):
            found["tcp"] = "connected"
    except OSError as error:
        found["tcp"] = f"{type(error).__name__}: {error}"
    for name, target in (("outside", Path(str(attack["outside"]))), ("inputs", Path(ctx.spec.model.uri))):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("pwned")
            found[name] = "written"
        except OSError as error:
            found[name] = f"{type(error).__name__}: {error}"
    print(LIBRARY_LINES[0], file=sys.stderr, flush=True)
    os.write(2, (LIBRARY_LINES[1] + "\n").encode())
    os.write(1, b"a library printing to stdout\n")
    return found


class HostileStage(Stage):
    name = "inspect"

    def run(self, ctx: StageContext) -> StageRecord:
        attack = json.loads(Path(ctx.spec.model.uri).read_text())
        if attack["mode"] == "abort":
            os._exit(0)
        if attack["mode"] == "hang":
            time.sleep(600)
        ctx.progress("attacking")
        return new_record(ctx, self.name, payload={"found": _attack(ctx, attack)})


class QuietStage(Stage):
    name = "quiet"

    def run(self, ctx: StageContext) -> StageRecord:
        ctx.store.write_bytes(f"variants/{ctx.spec.model.signature}-{time.monotonic_ns()}.txt", b"built")
        return new_record(ctx, self.name)


def _drive(scratch: str, manifest_path: str, run_dir: str, mechanism: str, deadline: str) -> int:
    from optismith.pipeline.execute import execute
    from optismith.pipeline.staging import Scratch, fetch, upload
    from optismith.spec import load_manifest

    manifest = load_manifest(manifest_path)
    where = Scratch(Path(scratch))
    fetch(manifest, run_dir, "prepare", where)
    result = execute(where, mechanism=mechanism, deadline=float(deadline), child_module="tests.pipeline.hostile_child",
                     on_progress=lambda message: print(f"progress: {message}", flush=True))
    upload(manifest, run_dir, "prepare", where)
    print(result.model_dump_json())
    return 0


def main() -> int:
    if sys.argv[1] == "--drive":
        return _drive(*sys.argv[2:7])
    quiet = "tests.pipeline.hostile_child:QuietStage"
    registry.STAGES.update(dict.fromkeys(("freeze", "optimize", "quantize", "convert"), quiet))
    registry.STAGES["inspect"] = "tests.pipeline.hostile_child:HostileStage"
    return child.main()


if __name__ == "__main__":
    sys.exit(main())
