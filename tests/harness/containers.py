"""
Turning a container spec into a local process: command, environment, paths, termination message.

Container images do not exist here, so three translations make a container runnable:

* ``command_map`` maps the image's executables to local ones (``optismith`` -> ``<venv>/bin/optismith``);
  ``image_entrypoints`` stands in for images' ENTRYPOINTs when a container has no ``command``.
* Container paths (volume mounts, ``terminationMessagePath``, ``workingDir``) are mapped to
  per-pod local directories, and substituted in args and env values.
* ``env``/``envFrom`` are resolved from Secrets/ConfigMaps/the pod itself, like the kubelet does.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .client import ApiStatusError

# Kubelet limits: the message file is read up to 4 KiB; the log fallback is 80 lines / 2 KiB.
MAX_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048

DEFAULT_COMMAND_MAP: dict[str, str | Sequence[str]] = {"python": sys.executable, "python3": sys.executable}
GPU_RESOURCE = "nvidia.com/gpu"

Fetch = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]  # (kind path, name) -> object or None


class ContainerConfigError(Exception):
    """The container cannot be created yet (a missing Secret/ConfigMap): CreateContainerConfigError."""


class StartError(Exception):
    """The process cannot be started (no command, executable not found): StartError, exit code 128."""


def _gpus(container: Mapping[str, Any]) -> int:
    resources = container.get("resources") or {}
    amount = (resources.get("limits") or {}).get(GPU_RESOURCE) or (resources.get("requests") or {}).get(GPU_RESOURCE)
    return int(amount or 0)


def gpu_request(pod: Mapping[str, Any]) -> int:
    """The pod's effective request, as the scheduler computes it: init containers run one at a time, so
    the larger of their largest request and the sum of the app containers'."""
    spec = pod.get("spec") or {}
    app = sum(_gpus(c) for c in spec.get("containers") or [])
    return max([app, *(_gpus(c) for c in spec.get("initContainers") or [])])


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay as is, ``$$`` escapes."""

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(replace, text)


def substitute_paths(text: str, path_map: Mapping[str, str]) -> str:
    """Replace container path prefixes with local ones, only at path boundaries, in one pass (a local
    path that starts like another mount path, e.g. /tmp/... for /tmp, is not replaced again)."""
    if not path_map:
        return text
    prefixes = {prefix.rstrip("/") or "/": local.rstrip("/") for prefix, local in path_map.items()}
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    pattern = r'(^|(?<=[=:,\s"\']))(' + alternatives + r')(?=/|$|[\s"\',:;])'
    return re.sub(pattern, lambda m: m.group(1) + prefixes[m.group(2)], text)


def _field_ref(pod: Mapping[str, Any], path: str) -> str:
    meta = pod.get("metadata") or {}
    if m := re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path):
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    return str(simple.get(path) or "")


def _decode_data(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    data = dict(obj.get("data") or {})
    if kind == "secrets":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
    return {k: str(v) for k, v in data.items()}


async def resolve_env(
    container: Mapping[str, Any], pod: Mapping[str, Any], fetch: Fetch, base: Mapping[str, str]
) -> dict[str, str]:
    """envFrom first, then env (later entries win); ``$(VAR)`` refers to earlier container vars."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    own: dict[str, str] = {}

    async def source(kind: str, name: str, optional: bool) -> dict[str, str] | None:
        obj = await fetch(kind, name)
        if obj is None:
            if optional:
                return None
            singular = "secret" if kind == "secrets" else "configmap"
            raise ContainerConfigError(f'{singular} "{name}" not found')
        return _decode_data(kind, obj)

    for item in container.get("envFrom") or []:
        for key, kind in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
            if key in item:
                ref = item[key]
                data = await source(kind, ref["name"], bool(ref.get("optional")))
                for name, value in (data or {}).items():
                    own[item.get("prefix", "") + name] = value
    for var in container.get("env") or []:
        if "value" in var or "valueFrom" not in var:
            own[var["name"]] = expand(str(var.get("value", "")), {**base, **own})
            continue
        value_from = var["valueFrom"]
        for key, kind in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if key in value_from:
                ref = value_from[key]
                data = await source(kind, ref["name"], bool(ref.get("optional")))
                if data is None:
                    break
                if ref["key"] not in data:
                    if ref.get("optional"):
                        break
                    singular = "Secret" if kind == "secrets" else "ConfigMap"
                    raise ContainerConfigError(
                        f"couldn't find key {ref['key']} in {singular} {namespace}/{ref['name']}"
                    )
                own[var["name"]] = data[ref["key"]]
        if "fieldRef" in value_from:
            own[var["name"]] = _field_ref(pod, value_from["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in value_from:
            resource = value_from["resourceFieldRef"]["resource"]
            kind_, _, res = resource.partition(".")
            own[var["name"]] = str(((container.get("resources") or {}).get(kind_) or {}).get(res, "0"))
    return own


@dataclasses.dataclass
class ProcessSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    termination_path: Path
    log_path: Path


@dataclasses.dataclass
class Translator:
    """Kubelet settings for turning containers into processes (see the module docstring)."""

    command_map: Mapping[str, str | Sequence[str]] = dataclasses.field(default_factory=dict)
    image_entrypoints: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    path_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
    inherit_env: Sequence[str] = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    extra_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # What stands in for the service-account token: withheld when the pod sets automountServiceAccountToken: false.
    service_account_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    termination_message_env: str | None = "TERMINATION_MESSAGE_PATH"

    def _entrypoint(self, image: str) -> list[str] | None:
        for key in (image, image.rsplit(":", 1)[0], image.rsplit("/", 1)[-1].rsplit(":", 1)[0]):
            if key in self.image_entrypoints:
                return list(self.image_entrypoints[key])
        return None

    def _map_executable(self, argv: list[str], env: Mapping[str, str]) -> list[str]:
        mapping = {**DEFAULT_COMMAND_MAP, **self.command_map}
        head = argv[0]
        replacement = mapping.get(head, mapping.get(os.path.basename(head)))
        if replacement is not None:
            argv = ([replacement] if isinstance(replacement, str) else list(replacement)) + argv[1:]
        if "/" not in argv[0]:
            found = shutil.which(argv[0], path=env.get("PATH", os.defpath))
            if found is None:
                raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH')
            argv[0] = found
        elif not os.access(argv[0], os.X_OK):
            raise StartError(f'exec: "{argv[0]}": stat {argv[0]}: no such file or directory')
        return argv

    def volume_paths(
        self, pod: Mapping[str, Any], container: Mapping[str, Any], pod_dir: Path, shared_dir: Path
    ) -> dict[str, str]:
        """Container mount paths -> local dirs. PVCs persist across pods in ``shared_dir``."""
        namespace = (pod.get("metadata") or {}).get("namespace", "")
        volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
        paths: dict[str, str] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"], {})
            if "persistentVolumeClaim" in volume:
                local = shared_dir / "pvc" / namespace / volume["persistentVolumeClaim"]["claimName"]
            elif "hostPath" in volume:
                local = Path(volume["hostPath"]["path"])
            else:
                local = pod_dir / "volumes" / mount["name"]
            if mount.get("subPath"):
                local = local / mount["subPath"]
            local.mkdir(parents=True, exist_ok=True)
            paths[mount["mountPath"]] = str(local)
        return paths

    async def prepare(
        self,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        fetch: Fetch,
        pod_dir: Path,
        shared_dir: Path,
    ) -> ProcessSpec:
        pod_dir.mkdir(parents=True, exist_ok=True)
        termination_path = pod_dir / "termination-log"
        termination_path.write_bytes(b"")
        log_path = pod_dir / "log"

        paths = dict(self.path_map)
        paths.update(self.volume_paths(pod, container, pod_dir, shared_dir))
        await self._materialize_volumes(pod, container, fetch, paths)
        paths[container.get("terminationMessagePath") or "/dev/termination-log"] = str(termination_path)

        base = {k: os.environ[k] for k in self.inherit_env if k in os.environ}
        base.update(self.extra_env)
        if (pod.get("spec") or {}).get("automountServiceAccountToken") is not False:
            base.update(self.service_account_env)
        base["HOSTNAME"] = (pod.get("metadata") or {}).get("name", "")
        own = await resolve_env(container, pod, fetch, base)
        env = {**base, **{k: substitute_paths(v, paths) for k, v in own.items()}}
        if self.termination_message_env:
            env[self.termination_message_env] = str(termination_path)

        command = list(container.get("command") or []) or self._entrypoint(str(container.get("image", ""))) or []
        args = list(container.get("args") or [])
        if not command and not args:
            raise StartError("no command specified")
        argv = [substitute_paths(expand(str(a), env), paths) for a in [*command, *args]]
        argv = self._map_executable(argv, env)

        working_dir = container.get("workingDir")
        if working_dir:
            mapped = substitute_paths(working_dir, paths)
            cwd = Path(mapped) if mapped != working_dir else pod_dir / "rootfs" / working_dir.lstrip("/")
        else:
            cwd = pod_dir / "work"
        cwd.mkdir(parents=True, exist_ok=True)
        return ProcessSpec(argv=argv, env=env, cwd=cwd, termination_path=termination_path, log_path=log_path)

    async def _materialize_volumes(
        self, pod: Mapping[str, Any], container: Mapping[str, Any], fetch: Fetch, paths: Mapping[str, str]
    ) -> None:
        """configMap and secret volumes become files, one per key (as the kubelet projects them)."""
        volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"], {})
            for key, kind, name_field in (
                ("configMap", "configmaps", "name"),
                ("secret", "secrets", "secretName"),
            ):
                if key not in volume:
                    continue
                ref = volume[key]
                obj = await fetch(kind, ref[name_field])
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise ContainerConfigError(f'{key.lower()} "{ref[name_field]}" not found')
                target = Path(paths[mount["mountPath"]])
                for data_key, value in _decode_data(kind, obj).items():
                    (target / data_key).write_text(value)


def termination_message(spec: ProcessSpec, container: Mapping[str, Any], exit_code: int) -> str:
    message = (
        spec.termination_path.read_bytes()[:MAX_MESSAGE_BYTES].decode(errors="replace")
        if spec.termination_path.exists()
        else ""
    )
    fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    if not message and fallback and exit_code != 0 and spec.log_path.exists():
        lines = spec.log_path.read_bytes().splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
        message = b"".join(lines)[-FALLBACK_LOG_BYTES:].decode(errors="replace")
    return message


def is_not_found(error: Exception) -> bool:
    return isinstance(error, ApiStatusError) and error.status == 404
