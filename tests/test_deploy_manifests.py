"""Issue 12: the Kubernetes manifests in deploy/k8s hang together and match the real sbert-host: every flag they
pass is one `sbert-host up` knows, probes and Service point at declared ports, the autoscaler scales the
Deployment, and the runtime config they mount is one sbert-host reads (Redis at the Redis Service)."""
from __future__ import annotations

import re
import subprocess
import tomllib

import pytest
import yaml

from conftest import ROOT, host_binary

K8S = ROOT / "deploy/k8s"


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((K8S / name).read_text()):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def container(objects) -> dict:
    (only,) = objects[("Deployment", "sbert-host")]["spec"]["template"]["spec"]["containers"]
    return only


def test_every_flag_is_one_sbert_host_up_knows(objects):
    help_text = subprocess.run([str(host_binary()), "up", "--help"], capture_output=True, text=True,
                               check=True).stdout
    known = set(re.findall(r"--[a-z][a-z0-9-]+", help_text))
    flags = {arg.split("=")[0] for arg in container(objects)["args"] if arg.startswith("--")}
    assert flags and flags <= known, f"unknown to `sbert-host up`: {flags - known}"


def test_probes_use_health_for_readiness_and_ping_for_liveness(objects):
    main = container(objects)
    ports = {port["name"] for port in main["ports"]}
    assert main["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert main["livenessProbe"]["httpGet"]["path"] == "/v1/ping"
    assert {main[p]["httpGet"]["port"] for p in ("readinessProbe", "livenessProbe", "startupProbe")} <= ports


def test_the_pod_outlives_its_drain(objects):
    spec = objects[("Deployment", "sbert-host")]["spec"]["template"]["spec"]
    pause = container(objects)["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain_grace = 10  # sbert-host's SHUTDOWN_GRACE
    assert spec["terminationGracePeriodSeconds"] > pause + drain_grace


def test_services_select_their_pods(objects):
    for name in ("sbert-host", "sbert-redis"):
        labels = objects[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        service = objects[("Service", name)]["spec"]
        assert service["selector"].items() <= labels.items(), name
        (pod,) = objects[("Deployment", name)]["spec"]["template"]["spec"]["containers"]
        assert {p["targetPort"] for p in service["ports"]} <= {p["name"] for p in pod["ports"]}, name


def test_the_autoscaler_scales_the_deployment(objects):
    hpa = objects[("HorizontalPodAutoscaler", "sbert-host")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sbert-host"}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["metrics"])


def test_the_runtime_config_is_redis_at_the_redis_service(objects):
    config = objects[("ConfigMap", "sbert-host-runtime-config")]["data"]["runtime-config.toml"]
    store = tomllib.loads(config)["key_value_store"]["default"]
    port = objects[("Service", "sbert-redis")]["spec"]["ports"][0]["port"]
    assert store == {"type": "redis", "url": f"redis://sbert-redis:{port}"}
    mounted = {m["mountPath"] for m in container(objects)["volumeMounts"]}
    (flag,) = [a for a in container(objects)["args"] if a.startswith("--runtime-config-file=")]
    assert flag.split("=", 1)[1].rsplit("/", 1)[0] in mounted


# --- Issue 23: deploy/edge, the edge build as a SpinApp in front of an origin Deployment ---

EDGE = ROOT / "deploy/edge"


@pytest.fixture(scope="module")
def edge_objects() -> dict[tuple[str, str], dict]:
    kustomization = yaml.safe_load((EDGE / "kustomization.yaml").read_text())
    found = {}
    for name in [*kustomization["resources"], "inference-token.yaml"]:
        for document in yaml.safe_load_all((EDGE / name).read_text()):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def origin_container(edge_objects) -> dict:
    (only,) = edge_objects[("Deployment", "sbert-origin")]["spec"]["template"]["spec"]["containers"]
    return only


def test_the_origin_runs_the_fast_build_with_flags_sbert_host_knows(edge_objects):
    help_text = subprocess.run([str(host_binary()), "up", "--help"], capture_output=True, text=True,
                               check=True).stdout
    known = set(re.findall(r"--[a-z][a-z0-9-]+", help_text))
    origin = origin_container(edge_objects)
    flags = {arg.split("=")[0] for arg in origin["args"] if arg.startswith("--")}
    assert flags and flags <= known, f"unknown to `sbert-host up`: {flags - known}"
    assert "--from=/app/spin.toml" in origin["args"]
    assert origin["readinessProbe"]["httpGet"]["path"] == "/health"
    assert origin["livenessProbe"]["httpGet"]["path"] == "/v1/ping"
    config = edge_objects[("ConfigMap", "sbert-origin-runtime-config")]["data"]["runtime-config.toml"]
    assert tomllib.loads(config)["key_value_store"]["default"] == {"type": "spin"}


def test_the_origin_service_and_autoscaler_point_at_the_origin(edge_objects):
    labels = edge_objects[("Deployment", "sbert-origin")]["spec"]["template"]["metadata"]["labels"]
    service = edge_objects[("Service", "sbert-origin")]["spec"]
    assert service["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["ports"]} <= {p["name"] for p in origin_container(edge_objects)["ports"]}
    hpa = edge_objects[("HorizontalPodAutoscaler", "sbert-origin")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sbert-origin"}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]


def test_the_edge_spinapp_sets_every_required_variable_of_spin_edge_toml(edge_objects):
    manifest = tomllib.loads((ROOT / "spin-edge.toml").read_text())
    declared = manifest["variables"]
    spinapp = edge_objects[("SpinApp", "sbert-edge")]["spec"]
    given = {variable["name"]: variable for variable in spinapp["variables"]}
    assert set(given) <= set(declared), set(given) - set(declared)
    required = {name for name, variable in declared.items() if variable.get("required")}
    assert required <= set(given), required - set(given)
    assert spinapp["executor"] == "containerd-shim-spin"


def test_the_edge_calls_the_origin_service_with_the_origins_own_key(edge_objects):
    """`inference_url` is the origin Service (scheme, name and port; no path, as Spin's allowed_outbound_hosts
    template needs), and `inference_token` comes from the Secret that is also the origin's only API key."""
    spinapp = {v["name"]: v for v in edge_objects[("SpinApp", "sbert-edge")]["spec"]["variables"]}
    url = spinapp["inference_url"]["value"]
    service = edge_objects[("Service", "sbert-origin")]
    port = service["spec"]["ports"][0]["port"]
    assert url in (f"http://{service['metadata']['name']}", f"http://{service['metadata']['name']}:{port}")
    assert port == 80 or url.endswith(f":{port}")
    token_ref = spinapp["inference_token"]["valueFrom"]["secretKeyRef"]
    (api_keys,) = [e for e in origin_container(edge_objects)["env"] if e["name"] == "SPIN_VARIABLE_API_KEYS"]
    assert api_keys["valueFrom"]["secretKeyRef"] == token_ref
    secret = edge_objects[("Secret", token_ref["name"])]
    assert token_ref["key"] in secret["stringData"]
