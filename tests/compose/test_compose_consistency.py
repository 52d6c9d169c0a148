"""docker-compose.yml, Dockerfiles, gateway, Prometheus and .env.example agree with the code.

No Docker engine here: the files are parsed and checked against what the services really read
(their Settings classes), really are (packages, factories) and where `make run` puts them.
"""

from __future__ import annotations

import importlib
import re
import shlex
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from sonata_kit import ServiceSettings
from sonata_kit.settings import is_placeholder

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from sonata_local.plan import (  # noqa: E402
    CONTAINER_PORT,
    SERVICES,
    Service,
    compose_gateway,
    render_prometheus,
)

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+][^}]*)?\}")
IDS = [s.name for s in SERVICES]


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def settings_class(svc: Service) -> type[ServiceSettings]:
    module = importlib.import_module(f"{svc.package}.settings")
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    assert len(found) == 1, f"{svc.package}.settings should define one ServiceSettings: {found}"
    return found[0]


def env_names(cls: type[ServiceSettings]) -> dict[str, str]:
    """Environment variable -> field name, as pydantic-settings reads them (unprefixed)."""
    names = {}
    for name, info in cls.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        names[(alias or name).upper()] = name
    return names


def dockerfile(svc: Service) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "services" / svc.name / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_compose_runs_the_six_services_and_the_infrastructure() -> None:
    names = set(compose()["services"])
    expected = {s.name for s in SERVICES}
    expected |= {"gateway", "mongo", "rabbitmq", "prometheus", "grafana", "mailpit"}
    assert names == expected


@pytest.mark.parametrize("svc", SERVICES, ids=IDS)
def test_each_service_is_built_from_its_own_dockerfile(svc: Service) -> None:
    spec = compose()["services"][svc.name]
    assert spec["build"] == {"context": ".", "dockerfile": f"services/{svc.name}/Dockerfile"}
    member = tomllib.loads((ROOT / "services" / svc.name / "pyproject.toml").read_text())
    assert member["project"]["name"] == svc.distribution
    main = ROOT / "services" / svc.name / "src" / svc.package / "main.py"
    assert "def create_app(" in main.read_text()

    lines = dockerfile(svc)
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage: a builder and a slim runtime"
    sync = next(ln for ln in lines if "uv sync" in ln)
    for flag in ("--frozen", "--no-dev", f"--package {svc.distribution}"):
        assert flag in sync, f"{svc.name}: `{sync}` lacks {flag}"
    runtime = lines[lines.index(froms[-1]) :]
    user = next(ln for ln in runtime if ln.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert f"EXPOSE {CONTAINER_PORT}" in runtime
    health = next(ln for ln in runtime if ln.startswith("HEALTHCHECK "))
    assert f"127.0.0.1:{CONTAINER_PORT}/healthz" in health
    cmd = shlex.split(next(ln for ln in runtime if ln.startswith("CMD "))[4:].replace(",", " "))
    cmd = [c.strip("[]") for c in cmd]
    assert cmd[:3] == ["uvicorn", "--factory", svc.app]
    assert cmd[cmd.index("--port") + 1] == str(CONTAINER_PORT)


@pytest.mark.parametrize("svc", SERVICES, ids=IDS)
def test_service_environment_matches_its_settings(svc: Service) -> None:
    cls = settings_class(svc)
    fields = env_names(cls)
    env = compose()["services"][svc.name]["environment"]
    unknown = sorted(set(env) - set(fields))
    assert not unknown, f"{svc.name} reads no such setting: {unknown}"
    assert env["ENVIRONMENT"] == "production"
    assert env["MONGODB_DB"] == svc.database == cls.model_fields["mongodb_db"].default
    assert env["ROOT_PATH"] == svc.prefix
    assert env["AUTH_JWKS_URL"] == f"http://auth:{CONTAINER_PORT}/.well-known/jwks.json"
    for var, name in fields.items():
        info = cls.model_fields[name]
        if info.is_required():
            assert var in env, f"{svc.name}: required setting {var} is not set"
        if isinstance(info.default, SecretStr) and is_placeholder(info.default.get_secret_value()):
            # production refuses placeholder secrets, so compose must demand a real one
            assert var in env, f"{svc.name}: secret {var} is not passed"
            assert re.search(r"\$\{[A-Z_0-9]+:\?", str(env[var])), f"{var} must be ${{X:?}}"


def test_every_dependency_waits_for_a_healthy_service() -> None:
    services = compose()["services"]
    for name, spec in services.items():
        for dep, cond in (spec.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond == {"condition": "service_healthy"}, (name, dep)
    for s in SERVICES:
        assert {"mongo", "rabbitmq"} <= set(services[s.name]["depends_on"])
    assert set(services["gateway"]["depends_on"]) == {s.name for s in SERVICES}


def test_everything_has_a_healthcheck() -> None:
    for name, spec in compose()["services"].items():
        if "build" in spec:
            svc = next(s for s in SERVICES if s.name == name)
            assert any(ln.startswith("HEALTHCHECK ") for ln in dockerfile(svc)), name
        else:
            assert spec["healthcheck"]["test"], name


def test_mongo_is_a_replica_set_initiated_by_its_healthcheck() -> None:
    mongo = compose()["services"]["mongo"]
    assert "--replSet" in mongo["command"]
    rs = mongo["command"][mongo["command"].index("--replSet") + 1]
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate(" in check
    assert f"_id: '{rs}'" in check
    for s in SERVICES:
        url = compose()["services"][s.name]["environment"]["MONGODB_URL"]
        assert url.startswith("mongodb://mongo:27017/")
        assert f"replicaSet={rs}" in url


def test_published_ports_are_distinct_and_the_gateway_is_8080() -> None:
    published = []
    for name, spec in compose()["services"].items():
        for port in spec.get("ports", []):
            host = str(port).rsplit(":", 1)[0].removeprefix("127.0.0.1:")
            published.append((name, host))
            if name in {s.name for s in SERVICES}:
                pytest.fail(f"{name} is reached through the gateway, not a published port")
    hosts = [h for _, h in published]
    assert len(hosts) == len(set(hosts)), published
    assert ("gateway", "${GATEWAY_PORT:-8080}") in published


def _container_port(spec: dict[str, Any]) -> int:
    (port,) = spec["ports"]
    return int(str(port).rsplit(":", 1)[-1])


def test_published_ports_are_the_ones_listened_on_and_health_checked() -> None:
    services = compose()["services"]
    conf = (ROOT / "deploy" / "nginx" / "gateway.conf").read_text()
    gateway = services["gateway"]
    assert f"listen {_container_port(gateway)};" in conf
    check = " ".join(gateway["healthcheck"]["test"])
    assert f"http://127.0.0.1:{_container_port(gateway)}/healthz" in check
    assert "location = /healthz {" in conf
    for name in ("prometheus", "grafana"):
        check = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{_container_port(services[name])}/" in check, name
    # the AMQP and MongoDB addresses every service is given are the images' own ports
    env = services["auth"]["environment"]
    assert "@rabbitmq:5672/" in env["AMQP_URL"]
    assert env["MONGODB_URL"].startswith("mongodb://mongo:27017/")
    # notifications sends mail to Mailpit's SMTP port (1025 in the image), not its UI port
    notifications = services["notifications"]["environment"]
    assert (notifications["SMTP_HOST"], str(notifications["SMTP_PORT"])) == ("mailpit", "1025")
    assert _container_port(services["mailpit"]) != 1025


def test_every_variable_is_documented_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required: dict[str, set[bool]] = {}
    for m in INTERPOLATION.finditer(text):
        required.setdefault(m.group(1), set()).add((m.group(2) or "").startswith(":?"))
    documented = env_example()
    assert set(required) == set(documented), (
        f"missing from .env.example: {sorted(set(required) - set(documented))}; "
        f"unused: {sorted(set(documented) - set(required))}"
    )
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"{line!r} has no comment above it"
    for var, kinds in required.items():
        assert len(kinds) == 1, f"{var} is required in one place and defaulted in another"
        if kinds == {True}:
            # a required secret ships empty, so a copied .env.example stops startup until filled
            assert documented[var] == "", var


def test_bind_mounts_exist() -> None:
    for name, spec in compose()["services"].items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_gateway_routes_every_service_as_make_run_does() -> None:
    conf = (ROOT / "deploy" / "nginx" / "gateway.conf").read_text()
    assert conf == compose_gateway(), "rewrite it: python -m sonata_local render"
    for s in SERVICES:
        assert f"location {s.prefix}/ {{" in conf
        assert f"server {s.name}:{CONTAINER_PORT};" in conf
    gateway = compose()["services"]["gateway"]
    assert "./deploy/nginx/gateway.conf:/etc/nginx/conf.d/default.conf:ro" in gateway["volumes"]


def _scrape_targets(path: Path) -> dict[str, tuple[str, str]]:
    data = yaml.safe_load(path.read_text())
    out = {}
    for job in data["scrape_configs"]:
        (target,) = job["static_configs"][0]["targets"]
        out[job["job_name"]] = (target, job.get("metrics_path", "/metrics"))
    return out


def test_prometheus_scrapes_every_service() -> None:
    in_compose = _scrape_targets(ROOT / "prometheus" / "prometheus.yml")
    local = _scrape_targets(ROOT / "prometheus" / "prometheus.local.yml")
    for s in SERVICES:
        assert in_compose[s.name] == (f"{s.name}:{CONTAINER_PORT}", "/metrics")
        assert local[s.name] == (f"127.0.0.1:{s.port}", "/metrics")
    text = (ROOT / "prometheus" / "prometheus.local.yml").read_text()
    header = "\n".join(ln for ln in text.splitlines() if ln.startswith("#"))
    targets = [(s, f"127.0.0.1:{s.port}") for s in SERVICES]
    assert text == render_prometheus(targets, header, "rules/*.yml")
    prom = compose()["services"]["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prom["volumes"]


def test_grafana_reads_the_compose_prometheus() -> None:
    path = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    (source,) = yaml.safe_load(path.read_text())["datasources"]
    port = compose()["services"]["prometheus"]["ports"][0].rsplit(":", 1)[-1]
    assert source["url"] == f"http://prometheus:{port}"
    assert source["type"] == "prometheus"


def test_dockerignore_keeps_the_workspace_and_drops_the_rest() -> None:
    ignored = {
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert {".venv", ".env", "var", "**/tests"} <= ignored
    assert not ignored & {"libs", "services", "uv.lock", "pyproject.toml"}


def interpolate(value: str, dotenv: dict[str, str]) -> str:
    """docker compose's `${X}`, `${X:-default}` and `${X:?message}` against a .env."""

    def one(m: re.Match[str]) -> str:
        name, modifier = m.group(1), m.group(2) or ""
        given = dotenv.get(name, "")
        if modifier.startswith(":?") and not given:
            pytest.fail(f"compose would stop: {name} is empty ({modifier[2:]})")
        if modifier.startswith(":-") and not given:
            return modifier[2:]
        return given

    return INTERPOLATION.sub(one, value)


def filled_env_example(**overrides: str) -> dict[str, str]:
    """.env.example as an operator fills it: every required secret set, the rest as shipped."""
    dotenv = env_example()
    for var, value in dotenv.items():
        if not value and re.search(rf"\$\{{{var}:\?", (ROOT / "docker-compose.yml").read_text()):
            dotenv[var] = f"{var.lower()}-9f8e7d6c5b4a3f2e1d0c"
    return {**dotenv, **overrides}


def settings_from_compose(
    svc: Service, dotenv: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    cls = settings_class(svc)
    for var in env_names(cls):
        monkeypatch.delenv(var, raising=False)
    for var, value in compose()["services"][svc.name]["environment"].items():
        monkeypatch.setenv(var, interpolate(str(value), dotenv))
    return cls()


@pytest.mark.parametrize("svc", SERVICES, ids=IDS)
def test_each_service_starts_from_the_compose_environment(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The optional channels (OAuth, coach, SMS, push) left empty, as .env.example ships them:
    # production settings must build, with those features off rather than refused.
    settings = settings_from_compose(svc, filled_env_example(), monkeypatch)
    assert settings.environment == "production"
    assert settings.amqp_url.startswith("amqp://sonata:rabbitmq_password-")
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            assert not is_placeholder(value.get_secret_value()), name


@pytest.mark.parametrize("svc", SERVICES, ids=IDS)
def test_each_service_refuses_a_placeholder_in_any_of_its_secrets(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(svc)
    secrets = [
        var
        for var, name in env_names(cls).items()
        if "SecretStr" in str(cls.model_fields[name].annotation)
    ]
    dotenv = filled_env_example()
    settings_from_compose(svc, dotenv, monkeypatch)  # builds as filled in
    for var in secrets:
        with monkeypatch.context() as m:
            m.setenv(var, "changeme")
            with pytest.raises(ValueError, match=var):
                cls()
    with monkeypatch.context() as m:
        m.setenv("AMQP_URL", "amqp://guest:guest@rabbitmq:5672/")
        with pytest.raises(ValueError, match="AMQP_URL"):
            cls()


def test_compose_configures_oauth_login_for_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = next(s for s in SERVICES if s.name == "auth")
    providers = (
        '[{"name": "school", "issuer": "https://id.school.example", "client_id": "sonata",'
        ' "client_secret": "oidc-secret-5d4c3b2a"}]'
    )
    dotenv = filled_env_example(
        OIDC_PROVIDERS=providers,
        OAUTH_REDIRECT_URIS='["https://sonata.example/oauth/callback"]',
        GOOGLE_CLIENT_ID="1234.apps.googleusercontent.com",
        GOOGLE_CLIENT_SECRET="google-secret-8a7b6c",
    )
    settings: Any = settings_from_compose(auth, dotenv, monkeypatch)
    assert [p.name for p in settings.oidc_providers] == ["school"]
    assert settings.oauth_redirect_uris == ["https://sonata.example/oauth/callback"]
    assert settings.google_client_secret.get_secret_value() == "google-secret-8a7b6c"
    off: Any = settings_from_compose(auth, filled_env_example(), monkeypatch)
    assert (off.oidc_providers, off.google_client_id, off.google_client_secret) == ([], None, None)
    # a provider's secret left as in an example is refused like any other secret
    placeholder = dotenv | {
        "OIDC_PROVIDERS": providers.replace("oidc-secret-5d4c3b2a", "CHANGE_ME")
    }
    with pytest.raises(ValueError, match=r"OIDC_PROVIDERS\[0\]\.CLIENT_SECRET"):
        settings_from_compose(auth, placeholder, monkeypatch)
