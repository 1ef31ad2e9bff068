"""Confining the process that runs a model: no credentials, no network, and a read-only view outside its
scratch directory, as far as this machine allows it without privileges.

Mechanisms, strongest first; the first that works here is used (OPTISMITH_SANDBOX=bwrap|unshare|none
forces one, and a forced one that does not work is an error):

  bwrap    bubblewrap: new user, pid, network, ipc, uts and cgroup namespaces; only the system, the
           interpreter and the code are visible, read-only; the scratch directory read-write (its inputs
           read-only); a private /tmp; a fresh /proc (no other process, so no other environment); all
           capabilities dropped; nested user namespaces refused.
  unshare  util-linux unshare: new user, pid, network and mount namespaces; every mount read-only except
           the scratch directory; a private /tmp and /proc. The host's files stay readable, except home
           directories and secret mounts, which are covered (unless the interpreter lives there).
  none     the scrubbed environment and the scratch directory as working directory only.

In every mode the environment is rebuilt from an allow-list (`KEPT_VARIABLES`, `KEPT_PREFIXES`; nothing
that looks like a secret), and what was in force is returned as an `Isolation` the runner records.

The child is always a separate exec'd process: a process that has imported TensorFlow cannot enter a user
namespace itself (unshare(CLONE_NEWUSER) needs a single-threaded caller: EINVAL), and forking it hangs.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from optismith.errors import SpecError
from optismith.results import Isolation

SANDBOX_ENV = "OPTISMITH_SANDBOX"
MECHANISMS = ("bwrap", "unshare", "none")

# What a model-running child keeps of the parent's environment: locale, the interpreter's search path, and
# library tuning. Everything else (AWS_*, tokens, KUBECONFIG, proxies with passwords...) is dropped.
KEPT_VARIABLES = (
    "PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "TZ",
    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS",
    "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
)
KEPT_PREFIXES = ("TF_", "KMP_", "ONEDNN_", "DNNL_", "XLA_", "ORT_", "OV_")
SECRET_LOOKING = re.compile(r"KEY|SECRET|TOKEN|PASSW|CREDENTIAL|SESSION|AUTH|COOKIE|PRIVATE|CERT", re.IGNORECASE)

# Visible read-only inside bwrap besides the interpreter and the code.
SYSTEM_PATHS = ("/usr", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/alternatives", "/etc/fonts",
                "/sys/devices/system/cpu", "/sys/fs/cgroup")
MERGED_USR = (("/bin", "usr/bin"), ("/sbin", "usr/sbin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64"),
              ("/lib32", "usr/lib32"))
# Covered with an empty tmpfs under unshare (which otherwise shows the host read-only).
SECRET_PLACES = ("/root", "/home", "/run/secrets", "/var/run/secrets", "/etc/ssh")


def is_kept(name: str) -> bool:
    if SECRET_LOOKING.search(name):
        return False
    return name in KEPT_VARIABLES or name.startswith(KEPT_PREFIXES)


def child_environment(scratch: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of `base` (default: this process's environment), with HOME, TMPDIR and the
    libraries' caches inside the scratch directory."""
    source = os.environ if base is None else base
    env = {name: value for name, value in source.items() if is_kept(name)}
    home, tmp = scratch / "home", scratch / "tmp"
    env.update({
        "HOME": str(home), "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(home / ".cache"),
        "KERAS_HOME": str(home / ".keras"), "MPLCONFIGDIR": str(home / ".matplotlib"),
        "PYTHONNOUSERSITE": "1", "PYTHONUNBUFFERED": "1",
    })
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


@dataclass(frozen=True)
class Confinement:
    """How to start the child: argv (the mechanism's wrapper around the command), its environment, and
    what it will be confined by."""

    argv: list[str]
    env: dict[str, str]
    isolation: Isolation


def _works(argv: list[str]) -> str | None:
    """None when the command runs and exits 0; otherwise why not (one line)."""
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{argv[0]}: {error}"
    if done.returncode == 0:
        return None
    text = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
    return f"{Path(argv[0]).name}: {text[-1] if text else f'exit code {done.returncode}'}"


BWRAP_FLAGS = ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
               "--cap-drop", "ALL")
UNSHARE_FLAGS = ("--user", "--map-root-user", "--net", "--pid", "--fork", "--mount", "--kill-child")


@functools.cache
def unavailable(mechanism: str) -> str | None:
    """None when `mechanism` works on this machine for this user; otherwise why not. Probed once."""
    if mechanism == "none":
        return None
    tool = shutil.which(mechanism)
    if tool is None:
        return f"{mechanism} is not installed"
    true = shutil.which("true") or "/bin/true"
    if mechanism == "bwrap":
        return _works([tool, *BWRAP_FLAGS, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", true])
    return _works([tool, *UNSHARE_FLAGS, true])


def choose_mechanism(requested: str | None = None) -> tuple[str, list[str]]:
    """(mechanism, why each stronger one was passed over)."""
    wanted = requested or os.environ.get(SANDBOX_ENV, "") or "auto"
    if wanted not in (*MECHANISMS, "auto"):
        raise SpecError(f"{SANDBOX_ENV}={wanted!r} is not a sandbox mechanism", where=SANDBOX_ENV,
                        fix=f"use one of: auto, {', '.join(MECHANISMS)}")
    if wanted != "auto":
        why = unavailable(wanted)
        if why:
            raise SpecError(f"the {wanted} sandbox does not work here: {why}", where=SANDBOX_ENV,
                            fix=f"unset {SANDBOX_ENV} to use the strongest mechanism that works")
        return wanted, []
    skipped: list[str] = []
    for mechanism in MECHANISMS:
        why = unavailable(mechanism)
        if why is None:
            return mechanism, skipped
        skipped.append(why)
    return "none", skipped  # pragma: no cover - "none" always works


def interpreter_paths() -> list[str]:
    """Directories the child's Python needs: its prefixes and every import path (the code included)."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(sys.executable).resolve().parent),
                  *(entry for entry in sys.path if entry)]
    found: list[str] = []
    for candidate in candidates:
        resolved = Path(candidate).resolve()
        if resolved.exists():
            found.append(str(resolved if resolved.is_dir() else resolved.parent))
    return _outermost(found)


def _outermost(paths: Sequence[str]) -> list[str]:
    """Paths with those inside another dropped (binding the outer one shows them)."""
    result: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(path == kept or path.startswith(kept.rstrip("/") + "/") for kept in result):
            result.append(path)
    return sorted(result)


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _bwrap_argv(command: Sequence[str], scratch: Path, workdir: Path, protected: Sequence[Path]) -> list[str]:
    argv = [shutil.which("bwrap") or "bwrap", *BWRAP_FLAGS]
    for link, target in MERGED_USR:
        if Path(link).is_symlink():
            argv += ["--symlink", target, link]
        elif Path(link).is_dir():
            argv += ["--ro-bind", link, link]
    for path in _outermost([p for p in (*SYSTEM_PATHS, *interpreter_paths()) if Path(p).exists()]):
        if not _inside(str(scratch), path):
            argv += ["--ro-bind", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for device in sorted(Path("/dev").glob("nvidia*")):  # a GPU target's execute step needs its devices
        argv += ["--dev-bind", str(device), str(device)]
    argv += ["--tmpfs", "/tmp", "--bind", str(scratch), str(scratch)]
    for inner in protected:
        argv += ["--ro-bind", str(inner), str(inner)]
    argv += ["--remount-ro", "/"]  # the new root is a tmpfs: without this, files could be made outside scratch
    return [*argv, "--chdir", str(workdir), "--", *command]


# Runs as root of a fresh user namespace (mapped to the caller), in its own mount, pid and network
# namespaces: covers secret places, makes every mount read-only, then brings back the scratch directory
# read-write (through a descriptor opened first: /tmp may be covered) and its inputs read-only.
_UNSHARE_SETUP = r"""
set -eu
scratch=$1; workdir=$2; protected=$3; masks=$4; shift 4
exec 3<"$scratch"
mount --make-rprivate /
IFS='
'
for path in $masks; do mount -t tmpfs -o size=1m,mode=0755 optismith-mask "$path"; done
for mp in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
mount -t tmpfs -o mode=1777 optismith-tmp /tmp
mount -t tmpfs -o mode=1777 optismith-shm /dev/shm 2>/dev/null || true
mkdir -p "$scratch"
mount --no-canonicalize --bind /proc/self/fd/3 "$scratch"
mount -o remount,bind,rw "$scratch"
exec 3<&-
for path in $protected; do mount --bind "$path" "$path"; mount -o remount,bind,ro "$path"; done
mount -t proc proc /proc
unset IFS
cd "$workdir"
exec "$@"
"""


def _masks(scratch: Path) -> tuple[list[str], list[str]]:
    """(places to cover, places left visible because the interpreter or the scratch dir is inside)."""
    needed = [str(scratch), *interpreter_paths()]
    home = os.path.expanduser("~")
    covered: list[str] = []
    left: list[str] = []
    for place in dict.fromkeys((*SECRET_PLACES, home)):
        if not Path(place).is_dir() or place == "/":
            continue
        (left if any(_inside(path, place) for path in needed) else covered).append(place)
    return covered, left


def _unshare_argv(command: Sequence[str], scratch: Path, workdir: Path, protected: Sequence[Path],
                  masks: Sequence[str]) -> list[str]:
    shell = shutil.which("sh") or "/bin/sh"
    return [shutil.which("unshare") or "unshare", *UNSHARE_FLAGS, "--", shell, "-c", _UNSHARE_SETUP,
            "optismith-sandbox", str(scratch), str(workdir), "\n".join(map(str, protected)), "\n".join(masks),
            *command]


def confine(command: Sequence[str], scratch: Path, *, workdir: Path | None = None,
            protected: Sequence[Path] = (), base_env: Mapping[str, str] | None = None,
            mechanism: str | None = None) -> Confinement:
    """Wrap `command` so it runs confined to `scratch` (read-write) with `protected` (inside scratch)
    read-only, in the strongest mechanism that works here (or `mechanism`)."""
    scratch = scratch.resolve()
    workdir = (workdir or scratch).resolve()
    protected = [p.resolve() for p in protected]
    env = child_environment(scratch, base_env)
    for name in ("home", "tmp"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
    chosen, skipped = choose_mechanism(mechanism)
    passed_over = "; ".join(skipped)
    names = sorted(env)
    if chosen == "bwrap":
        return Confinement(_bwrap_argv(command, scratch, workdir, protected), env, Isolation(
            mechanism="bwrap", network="none", filesystem="scratch-only", processes="own-namespace",
            credentials="absent", environment=names))
    if chosen == "unshare":
        covered, left = _masks(scratch)
        note = "host files readable read-only" + (f"; not covered: {', '.join(left)}" if left else "")
        if passed_over:
            note += f"; {passed_over}"
        return Confinement(_unshare_argv(command, scratch, workdir, protected, covered), env, Isolation(
            mechanism="unshare", network="none", filesystem="read-only-host", processes="own-namespace",
            credentials="absent", environment=names, note=note))
    return Confinement(list(command), env, Isolation(
        mechanism="none", network="shared", filesystem="unrestricted", processes="shared", credentials="absent",
        environment=names, note=passed_over or f"{SANDBOX_ENV}=none"))


def in_process(note: str = "") -> Isolation:
    """The isolation of a stage run by the process that holds the credentials (`optismith stage` inline)."""
    return Isolation(mechanism="in-process", network="shared", filesystem="unrestricted", processes="shared",
                     credentials="present" if any(SECRET_LOOKING.search(k) for k in os.environ) else "absent",
                     environment=sorted(os.environ), note=note)
