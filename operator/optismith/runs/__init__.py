"""The run directory and what stages see of it.

    layout       every key of a run directory, and the run URI
    stage        the stage contract: Stage, StageContext (records, artifacts, scratch space)
    manifest     sealing a run (manifest.json with sha256 digests) and verifying it; artifact digests
    eligibility  whether a built variant can run on a target, and with which runtime
"""
