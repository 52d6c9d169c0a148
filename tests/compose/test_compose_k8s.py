"""The kustomize manifests (deploy/k8s) agree with the services and with each other.

No cluster and no kustomize binary here: the YAML is parsed and cross-checked.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from sonata_kit import ServiceSettings
from sonata_kit.settings import is_placeholder

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "production"

# Kept literal rather than imported: these manifests are read by people and kustomize, and
# this is the list they must cover.
SERVICES = {
    "auth": ("sonata_auth", "auth"),
    "db": ("sonata_db", "library"),
    "ai-scoring": ("sonata_scoring", "scoring"),
    "notifications": ("sonata_notifications", "notifications"),
    "payment": ("sonata_payment", "payment"),
    "metrics": ("sonata_metrics", "metrics"),
}


@cache
def kustomization(folder: Path) -> dict[str, Any]:
    data = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


@cache
def base_objects() -> list[dict[str, Any]]:
    objects = []
    for name in kustomization(BASE)["resources"]:
        path = BASE / name
        assert path.is_file(), f"kustomization lists missing {name}"
        objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return objects


def find(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in base_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def setting_names(package: str) -> set[str]:
    module = importlib.import_module(f"{package}.settings")
    (cls,) = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    return {name.upper() for name in cls.model_fields}


def container(name: str) -> dict[str, Any]:
    (c,) = find("Deployment", name)["spec"]["template"]["spec"]["containers"]
    assert isinstance(c, dict)
    return c


def dockerfile_user(name: str) -> int:
    text = (ROOT / "services" / name / "Dockerfile").read_text()
    return int(re.findall(r"^USER (\d+)", text, re.MULTILINE)[-1])


@pytest.mark.parametrize("name", SERVICES)
def test_deployment_and_service_select_the_same_pods(name: str) -> None:
    dep = find("Deployment", name)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = find("Service", name)
    assert svc["spec"]["selector"].items() <= labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 8000
    assert port["targetPort"] in ("http", 8000)


@pytest.mark.parametrize("name", SERVICES)
def test_container_probes_resources_and_security(name: str) -> None:
    c = container(name)
    assert c["ports"] == [{"name": "http", "containerPort": 8000}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{name} {kind}"
    pod = find("Deployment", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_user(name) != 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    if c["securityContext"].get("readOnlyRootFilesystem"):
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts, "a read-only root needs a writable /tmp"


def secret_keys(spec: dict[str, Any]) -> set[str]:
    """The keys a secret will hold: those of the committed example of each env file it reads."""
    keys = set()
    for env in spec["envs"]:
        example = OVERLAY / f"{env}.example"
        assert example.is_file(), f"{env} has no {example.name} documenting it"
        keys |= {
            line.split("=", 1)[0]
            for line in example.read_text().splitlines()
            if line and not line.startswith("#")
        }
    return keys


def placeholder_secrets(package: str) -> set[str]:
    """Settings whose default production refuses: the deployment must supply them."""
    module = importlib.import_module(f"{package}.settings")
    (cls,) = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    return {
        n.upper()
        for n, info in cls.model_fields.items()
        if info.is_required()
        or (isinstance(info.default, SecretStr) and is_placeholder(info.default.get_secret_value()))
    }


@pytest.mark.parametrize("name", SERVICES)
def test_environment_comes_from_the_config_and_secrets_the_kustomizations_make(
    name: str,
) -> None:
    package, database = SERVICES[name]
    settings = setting_names(package)
    c = container(name)
    refs = [(k, v["name"]) for e in c["envFrom"] for k, v in e.items()]
    config = {g["name"]: g for g in kustomization(BASE)["configMapGenerator"]}
    secrets = {g["name"]: g for g in kustomization(OVERLAY)["secretGenerator"]}
    provided: set[str] = set()
    for kind, ref in refs:
        if kind == "configMapRef":
            assert ref in config, f"{name} reads ConfigMap {ref}, which no kustomization makes"
            provided |= {lit.split("=", 1)[0] for lit in config[ref]["literals"]}
        else:
            assert ref in secrets, f"{name} reads Secret {ref}, which no kustomization makes"
            provided |= secret_keys(secrets[ref])
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env == {"MONGODB_DB": database, "ROOT_PATH": f"/api/{name}"}
    provided |= set(env)
    assert not provided - settings, f"{name} has no setting for {sorted(provided - settings)}"
    missing = placeholder_secrets(package) - provided
    assert not missing, f"{name} would refuse to start in production without {sorted(missing)}"
    assert image_of(name) == f"sonata/{name}"


def image_of(name: str) -> str:
    return str(container(name)["image"])


def test_overlay_builds_on_base_and_pins_every_image() -> None:
    overlay = kustomization(OVERLAY)
    assert "../../base" in overlay["resources"]
    for res in overlay["resources"]:
        assert (OVERLAY / res).exists(), res
    pinned = {i["name"] for i in overlay["images"] if i.get("newTag")}
    assert pinned == {image_of(n) for n in SERVICES}
    for r in overlay.get("replicas", []):
        assert r["name"] in SERVICES
    # the secrets' sources stay out of git; their examples are committed instead
    ignored = (OVERLAY / "secrets" / ".gitignore").read_text().split()
    assert "*.env" in ignored
    for spec in overlay["secretGenerator"]:
        for env in spec["envs"]:
            assert env.startswith("secrets/")
            assert env.endswith(".env")


def test_ingress_routes_match_the_gateway() -> None:
    api = find("Ingress", "sonata-api")
    paths = {
        p["path"]: p["backend"]["service"]["name"]
        for rule in api["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert paths == {f"/api/{n}(/|$)(.*)": n for n in SERVICES}
    assert api["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"] == "/$2"
    ws = find("Ingress", "sonata-ws")
    (path,) = ws["spec"]["rules"][0]["http"]["paths"]
    assert (path["path"], path["backend"]["service"]["name"]) == ("/ws/", "ai-scoring")
    assert "rewrite-target" not in str(ws["metadata"].get("annotations", {}))
