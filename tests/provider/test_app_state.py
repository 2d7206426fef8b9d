"""stratum_app's state: the arguments come back from the control plane's spec in the form the
configuration wrote them (so a second plan is empty), and an import writes what a plain
configuration would (pure)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from provider.resource_app import SPEC_FIELDS, AppResource, _state, to_spec
from provider.resource_service import requirements_state, to_spec as service_spec
from stratum.v1 import apps_pb2 as a

ARGS = {a.name for a in AppResource.get_schema().attributes if a.optional or a.required}


def config(**values) -> dict:
    """A planned state as Terraform sends it: every argument present, null when not written."""
    out = {k: None for k in ARGS}
    out.update(values)
    return out


BROKER = config(
    name="broker", kind="service", command="mosquitto", args=["-p", "${STRATUM_PORT_MQTT}"], env={"LOG": "info"},
    ports={"mqtt": 1883, "metrics": 0},
    health={"http": None, "port": None, "tcp": "mqtt", "exec": None, "interval": "60s", "timeout": "1500ms",
            "grace": None, "failures": 2},
    restart={"attempts": -1, "interval": None, "delay": "1m30s", "mode": "fail"},
    requirements={"cpu": 0.25, "memory_mb": 64, "tiers": ["fog"], "labels": None, "arch": None, "gpu": None,
                  "gpu_model": None, "gpu_memory_mb": None, "zone": None, "data": None, "binaries": ["mosquitto"]},
    kill_timeout="2s", timeouts={"create": "5m", "update": None, "delete": None})


def app_of(values: dict, **observed) -> a.App:
    return a.App(spec=to_spec(values), state="ready", spec_version=3, **observed)


def test_state_after_apply_keeps_the_configured_form():
    state = _state(app_of(BROKER), BROKER)
    assert {k: state[k] for k in ARGS} == BROKER  # "60s" is not rewritten "1m", unset stays null
    assert state["id"] == "broker" and state["spec_version"] == 3 and state["artifact_sha256"] is None


def test_explicit_zeros_stay_as_written():
    values = config(name="job", kind="batch", command="true", args=[], env={}, replicas=0, kill_timeout="0s",
                    restart={"attempts": 0, "interval": None, "delay": None, "mode": ""},
                    schedule=None, placement={"pack": False, "prefer_tiers": [], "affinity": None, "anti_affinity": None})
    state = _state(app_of(values), values)
    assert {k: state[k] for k in ARGS} == values


def test_import_writes_what_a_plain_configuration_would():
    state = _state(app_of(BROKER), None)
    assert state["timeouts"] is None and state["schedule"] is None and state["outputs"] is None
    assert state["placement"] is None and state["connects_to"] is None and state["replicas"] is None
    assert state["health"] == {**BROKER["health"], "interval": "1m", "timeout": "1s500ms"}
    assert state["restart"] == BROKER["restart"] and state["kill_timeout"] == "2s"
    assert state["requirements"] == BROKER["requirements"]


def test_an_artifact_keeps_its_configured_path_and_imports_as_its_name():
    values = config(name="job", kind="batch", artifact="jobs/aggregate", command="python3", args=["main.py"])
    spec = to_spec(values)
    spec.artifact.CopyFrom(a.Artifact(sha256="ab" * 32, size=10240, name="aggregate", directory=True))
    app = a.App(spec=spec, state="ready")
    assert _state(app, values)["artifact"] == "jobs/aggregate"
    imported = _state(app, None)
    assert imported["artifact"] == "aggregate" and imported["artifact_sha256"] == "ab" * 32


def test_observed_attributes():
    run = a.AppRun(number=4, state="failed", exit_code=0, message="output rejected")
    app = app_of(BROKER, last_run=run, instances=[a.AppInstance(index=0, node_name="fog-1", state="healthy", restarts=1)],
                 next_run_at=Timestamp(seconds=1_800_000_000))
    app.endpoints["mqtt"].addresses.append("10.0.0.5:1883")
    state = _state(app, BROKER)
    assert state["endpoints"] == {"mqtt": ["10.0.0.5:1883"]}
    assert state["instances"] == [{"index": 0, "node_name": "fog-1", "state": "healthy", "restarts": 1}]
    assert state["last_run"] == {"number": 4, "state": "failed", "exit_code": 0, "dataset_version": None,
                                 "message": "output rejected"}  # exit code 0 is not null: it is set
    assert state["next_run_at"] == "2027-01-15T08:00:00Z"
    assert _state(app_of(BROKER), BROKER)["last_run"] is None and _state(app_of(BROKER), BROKER)["next_run_at"] is None


def test_durations_and_replicas_reach_the_spec():
    spec = to_spec(config(**{**BROKER, "replicas": 3}))
    assert (spec.health.interval_s, spec.health.timeout_s, spec.restart.delay_s, spec.kill_timeout_s) == (60, 1.5, 90, 2)
    assert spec.count == 3 and list(spec.requirements.binaries) == ["mosquitto"]
    assert set(SPEC_FIELDS) == ARGS - {"timeouts"}


def test_services_get_binaries_and_connects_to():
    values = {"name": "s", "model": "m", "requirements": {"binaries": ["ffmpeg"]}, "connects_to": ["broker"]}
    spec = service_spec(values)
    assert list(spec.requirements.binaries) == ["ffmpeg"] and list(spec.connects_to) == ["broker"]
    assert requirements_state(spec.requirements)["binaries"] == ["ffmpeg"]
