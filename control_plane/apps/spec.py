"""An app spec's own rules: what is knowable from the spec alone, every problem with its attribute
path (plan time, before anything it names exists). Pure; the store-aware checks (connects_to
targets and cycles, Vault paths, datasets, room on the nodes) are in apps/resource.py.
"""

from __future__ import annotations

import re

from control_plane.apps import schedule
from stratum.validation import (MAX_REPLICAS, Violations, check_name, check_number, check_preferences,
                                check_requirements, check_seconds, check_text, shown, shown_key)
from stratum.v1 import apps_pb2 as a

KINDS = ("service", "batch", "periodic")
RUNS = ("batch", "periodic")  # kinds whose instances run to completion
OUTPUT_MODES = ("replace", "append")
RESTART_MODES = ("delay", "fail")

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PORT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
REF = re.compile(r"\$\{([^}]*)\}")
MAX_ARGS, MAX_ARG = 256, 4096
MAX_ENV, MAX_ENV_VALUE = 256, 32 * 1024
MAX_CONNECTS = 64
MAX_KILL_S, MAX_CHECK_S, MAX_WINDOW_S = 3600.0, 3600.0, 7 * 86400.0
DEFAULT_KILL_S = 10.0


def env_key(name: str) -> str:
    """STRATUM_<NAME>_URL's NAME: the app or service name upper-cased, '-' as '_'."""
    return name.upper().replace("-", "_")


def port_var(port: str) -> str:
    return f"STRATUM_PORT_{port.upper()}"


def stratum_vars(spec: a.AppSpec) -> set[str]:
    """Variables Stratum sets for the process (arguments may refer to them)."""
    out = {"STRATUM_APP", "STRATUM_INSTANCE", "STRATUM_NODE", "STRATUM_HOST", "HOME", "PATH", "LANG"}
    out |= {port_var(p) for p in spec.ports}
    out |= {f"STRATUM_{env_key(t)}_URL" for t in spec.connects_to}
    if spec.kind in RUNS:
        out |= {"STRATUM_OUTPUT", "STRATUM_RUN"}
    return out


def validate_spec(spec: a.AppSpec) -> Violations:
    problems = check_name(spec.name)
    if spec.kind not in KINDS:
        problems.append(("kind", f"unknown kind {shown(spec.kind)}: expected one of {', '.join(KINDS)}"))
    problems += _what_runs(spec)
    problems += _environment(spec)
    problems += _ports(spec)
    problems += _health(spec)
    problems += _restart(spec.restart)
    problems += _schedule(spec)
    problems += check_requirements(spec.requirements)
    problems += check_preferences(spec.placement)
    for i, b in enumerate(spec.requirements.binaries[:64]):
        if b and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", b):
            problems.append((f"requirements.binaries[{i}]", f"{shown(b)} is not a program name (e.g. \"mosquitto\")"))
    if len(spec.connects_to) > MAX_CONNECTS:
        problems.append(("connects_to", f"{len(spec.connects_to)} targets; at most {MAX_CONNECTS}"))
    seen = set()
    for i, target in enumerate(spec.connects_to[:MAX_CONNECTS]):
        path = f"connects_to[{i}]"
        problems += check_name(target, path)
        if target == spec.name:
            problems.append((path, f"app {shown(spec.name)} cannot connect to itself"))
        elif target in seen:
            problems.append((path, f"{shown(target)} is listed twice"))
        seen.add(target)
    problems += _outputs(spec)
    problems += check_number(spec.count, "count", 0, MAX_REPLICAS, integer=True, hint="instances; 0 for 1")
    if spec.kind in RUNS and spec.count > 1:
        problems.append(("count", f"a {spec.kind} app runs one instance; count = {spec.count}"))
    problems += check_seconds(spec.kill_timeout_s, "kill_timeout", MAX_KILL_S)
    return problems


def _what_runs(spec: a.AppSpec) -> Violations:
    problems: Violations = []
    art = spec.artifact
    if not spec.command and not art.sha256:
        problems.append(("command", f"a {spec.kind or 'service'} app needs a command or an artifact to run"))
    problems += check_text(spec.command, "command", MAX_ARG)
    if art.sha256 or art.name or art.size:
        if not re.match(r"^[0-9a-f]{64}$", art.sha256):
            problems.append(("artifact", "the artifact needs the sha256 of its uploaded blob (UploadBlob first)"))
        problems += check_number(art.size, "artifact", 0, 1 << 40, integer=True, hint="bytes")
        if not art.name or art.name in (".", "..") or "/" in art.name or "\0" in art.name or len(art.name) > 255:
            problems.append(("artifact", f"artifact name {shown(art.name)}: give the file or directory's base name"))
        if not spec.command and art.directory:
            problems.append(("command", "an artifact directory needs a command to run (e.g. \"python3\" with args)"))
    if len(spec.args) > MAX_ARGS:
        problems.append(("args", f"{len(spec.args)} arguments; at most {MAX_ARGS}"))
    known = stratum_vars(spec) | set(spec.env) | set(spec.secret_env)
    for i, arg in enumerate(spec.args[:MAX_ARGS]):
        problems += check_text(arg, f"args[{i}]", MAX_ARG)
        for ref in REF.findall(arg[:MAX_ARG]):
            if ref not in known:
                problems.append((f"args[{i}]", f"${{{shown(ref)[1:-1]}}} names no variable the app has (its env, "
                                               "secret_env, STRATUM_PORT_<NAME>, STRATUM_<TARGET>_URL, STRATUM_INSTANCE ...)"))
    return problems


def _environment(spec: a.AppSpec) -> Violations:
    problems: Violations = []
    if len(spec.env) + len(spec.secret_env) > MAX_ENV:
        problems.append(("env", f"{len(spec.env) + len(spec.secret_env)} variables; at most {MAX_ENV}"))
    for field, env in (("env", spec.env), ("secret_env", spec.secret_env)):
        for k, v in env.items():
            path = f'{field}["{shown_key(k)}"]'
            if not ENV_NAME.match(k):
                problems.append((path, f"{shown(k)} is not a variable name: letters, digits and '_', not starting with a digit"))
            elif k.startswith("STRATUM_"):
                problems.append((path, f"{k}: names starting with STRATUM_ are set by Stratum"))
            problems += check_text(v, path, MAX_ENV_VALUE)
    for k in set(spec.env) & set(spec.secret_env):
        problems.append((f'secret_env["{shown_key(k)}"]', f"{k} is in env too; give it once"))
    for k, ref in spec.secret_env.items():
        path, _, key = ref.partition("#")
        if not path or not key or path.startswith("/") or " " in ref:
            problems.append((f'secret_env["{shown_key(k)}"]', f"{shown(ref)}: give a Vault KV v2 path and key as "
                                                             "\"<path>#<key>\", e.g. \"secret/stratum/history#password\""))
    return problems


def _ports(spec: a.AppSpec) -> Violations:
    problems: Violations = []
    if len(spec.ports) > 32:
        problems.append(("ports", f"{len(spec.ports)} ports; at most 32"))
    fixed: dict[int, str] = {}
    for name, port in sorted(spec.ports.items()):
        path = f'ports["{shown_key(name)}"]'
        if not PORT_NAME.match(name):
            problems.append((path, f"{shown(name)} is not a port name: a lowercase letter, then letters, digits or '_'"))
        problems += check_number(port, path, 0, 65535, integer=True, hint="a port, or 0 for any free port")
        if port and port in fixed:
            problems.append((path, f"port {port} is also ports[\"{fixed[port]}\"]"))
        fixed.setdefault(port, name)
    return problems


def _health(spec: a.AppSpec) -> Violations:
    h = spec.health
    if h == a.HealthCheck():
        return []
    problems: Violations = []
    if spec.kind in RUNS:
        return [("health", f"a {spec.kind} app runs to completion: health checks apply to kind = \"service\"")]
    kinds = [k for k in ("http", "tcp", "exec") if getattr(h, k)]
    if len(kinds) != 1:
        problems.append(("health", "give exactly one of health.http, health.tcp and health.exec"))
    if h.http:
        if not h.http.startswith("/"):
            problems.append(("health.http", f"{shown(h.http)}: give a path starting with '/', e.g. \"/healthz\""))
        problems += check_text(h.http, "health.http", 1024)
        if not spec.ports:
            problems.append(("health.http", "an HTTP check needs a port: declare one in ports"))
    for field, name in (("health.port", h.port), ("health.tcp", h.tcp)):
        if name and name not in spec.ports:
            problems.append((field, f"{shown(name)} is not one of ports ({', '.join(sorted(spec.ports)) or 'none declared'})"))
    if len(h.exec) > MAX_ARGS:
        problems.append(("health.exec", f"{len(h.exec)} arguments; at most {MAX_ARGS}"))
    for i, arg in enumerate(h.exec[:MAX_ARGS]):
        problems += check_text(arg, f"health.exec[{i}]", MAX_ARG)
    for field in ("interval_s", "timeout_s", "grace_s"):
        problems += check_seconds(getattr(h, field), f"health.{field.removesuffix('_s')}", MAX_CHECK_S)
    problems += check_number(h.failures, "health.failures", 0, 100, integer=True)
    return problems


def _restart(r: a.RestartPolicy) -> Violations:
    problems = check_number(r.attempts, "restart.attempts", -1, 1000, integer=True, hint="-1 for none, 0 for 3")
    problems += check_seconds(r.interval_s, "restart.interval", MAX_WINDOW_S)
    problems += check_seconds(r.delay_s, "restart.delay", MAX_CHECK_S)
    if r.mode and r.mode not in RESTART_MODES:
        problems.append(("restart.mode", f"unknown mode {shown(r.mode)}: expected \"delay\" or \"fail\""))
    return problems


def _schedule(spec: a.AppSpec) -> Violations:
    s = spec.schedule
    if spec.kind != "periodic":
        if s != a.Schedule():
            return [("schedule", f"a schedule applies only to kind = \"periodic\", not {shown(spec.kind)}")]
        return []
    if not s.cron:
        return [("schedule.cron", "a periodic app needs schedule.cron, e.g. \"*/15 * * * *\"")]
    problems: Violations = []
    why = schedule.cron_problem(s.cron)
    if why:
        problems.append(("schedule.cron", why))
    why = schedule.zone_problem(s.time_zone)
    if why:
        problems.append(("schedule.time_zone", why))
    return problems


def _outputs(spec: a.AppSpec) -> Violations:
    o = spec.outputs
    if o == a.AppOutputs():
        return []
    if spec.kind not in RUNS:
        return [("outputs", "outputs come from runs: they apply to kind = \"batch\" or \"periodic\"")]
    problems = check_name(o.dataset, "outputs.dataset")
    if o.mode and o.mode not in OUTPUT_MODES:
        problems.append(("outputs.mode", f"unknown mode {shown(o.mode)}: expected \"replace\" or \"append\""))
    return problems


def instances(spec: a.AppSpec) -> int:
    return 1 if spec.kind in RUNS else (spec.count or 1)


def kill_timeout(spec: a.AppSpec) -> float:
    return spec.kill_timeout_s or DEFAULT_KILL_S
