"""What runs where: the services, their ports and environment, and their configuration files.

Pure: reads nothing but the mapping it is given, so `make run`, the fleet tests and the
consistency tests compute exactly the same process list.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CONTAINER_PORT = 8000
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
MAIL_SERVICE = "notifications"
# The local Twilio double's account: fixed and fake, so the Procfile holds no real secret.
LOCAL_TWILIO_SID = "AC" + "0" * 32
LOCAL_TWILIO_TOKEN = "local-twilio-double-token"
LOCAL_TWILIO_FROM = "+15005550006"
WS_SERVICE = "ai-scoring"


@dataclass(frozen=True)
class Service:
    name: str
    package: str
    port: int
    database: str

    @property
    def app(self) -> str:
        return f"{self.package}.main:create_app"

    @property
    def distribution(self) -> str:
        return self.package.replace("_", "-")

    @property
    def env_key(self) -> str:
        """`ai-scoring` -> `AI_SCORING`, for the `SONATA_<KEY>_PORT` override."""
        return self.name.upper().replace("-", "_")

    @property
    def upstream(self) -> str:
        return "svc_" + self.name.replace("-", "_")

    @property
    def prefix(self) -> str:
        return f"/api/{self.name}"


SERVICES: tuple[Service, ...] = (
    Service("auth", "sonata_auth", 8001, "auth"),
    Service("db", "sonata_db", 8002, "library"),
    Service("ai-scoring", "sonata_scoring", 8003, "scoring"),
    Service("notifications", "sonata_notifications", 8004, "notifications"),
    Service("payment", "sonata_payment", 8005, "payment"),
    Service("metrics", "sonata_metrics", 8006, "metrics"),
)


def service(name: str) -> Service:
    for s in SERVICES:
        if s.name == name:
            return s
    raise KeyError(name)


class PlanError(ValueError):
    """A setting `make run` cannot work with; the message says which and why."""


def _port(environ: Mapping[str, str], key: str, default: int) -> int:
    raw = environ.get(key, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise PlanError(f"{key}={raw!r} is not a TCP port")
    return int(raw)


@dataclass(frozen=True)
class Config:
    """One local fleet. Ports and paths come from `SONATA_*` variables, the rest unprefixed."""

    root: Path
    var_dir: Path
    python: str
    ports: Mapping[str, int]
    gateway_port: int
    mongo_port: int
    prometheus_port: int
    mail_port: int
    external_smtp: str | None
    external_smtp_port: int | None
    sms_port: int
    external_twilio: bool
    external_mongo_url: str | None
    amqp_url: str
    environment: str
    log_level: str
    nginx: str | None
    prometheus: str | None
    host: str = "127.0.0.1"
    # web push's VAPID key pair (private, public; base64url) for notifications, kept under
    # var/ by the fleet; None leaves the service to the environment (push off without one)
    vapid_keys: tuple[str, str] | None = None

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        *,
        root: Path,
        python: str,
        nginx: str | None,
        prometheus: str | None,
    ) -> Config:
        var = environ.get("SONATA_VAR_DIR", "").strip()
        smtp_host = environ.get("SMTP_HOST", "").strip()
        ports = {s.name: _port(environ, f"SONATA_{s.env_key}_PORT", s.port) for s in SERVICES}
        cfg = cls(
            root=root,
            var_dir=Path(var) if var else root / "var",
            python=python,
            ports=ports,
            gateway_port=_port(environ, "SONATA_GATEWAY_PORT", 8080),
            mongo_port=_port(environ, "SONATA_MONGO_PORT", 27017),
            prometheus_port=_port(environ, "SONATA_PROMETHEUS_PORT", 9090),
            mail_port=_port(environ, "SONATA_MAIL_PORT", 1025),
            # a real server named in the environment replaces the sink
            external_smtp=smtp_host or None,
            external_smtp_port=(_port(environ, "SMTP_PORT", 0) or None) if smtp_host else None,
            sms_port=_port(environ, "SONATA_SMS_PORT", 8090),
            # a Twilio account in the environment is used as it is (the service reads it)
            external_twilio=bool(environ.get("TWILIO_ACCOUNT_SID", "").strip()),
            external_mongo_url=environ.get("MONGODB_URL") or None,
            amqp_url=environ.get("AMQP_URL") or DEFAULT_AMQP_URL,
            environment=environ.get("ENVIRONMENT") or "development",
            log_level=environ.get("LOG_LEVEL") or "INFO",
            nginx=nginx,
            prometheus=prometheus,
        )
        cfg.check()
        return cfg

    def check(self) -> None:
        used = [*self.ports.values(), self.gateway_port]
        if self.external_mongo_url is None:
            used.append(self.mongo_port)
        if self.prometheus:
            used.append(self.prometheus_port)
        if self.mail_sink:
            used.append(self.mail_port)
        if self.sms_sink:
            used.append(self.sms_port)
        if len(set(used)) != len(used):
            raise PlanError(f"two parts of the fleet were given the same port: {sorted(used)}")
        amqp = urlsplit(self.amqp_url)
        if amqp.scheme not in ("amqp", "amqps") or not amqp.hostname:
            raise PlanError(f"AMQP_URL={self.amqp_url!r} is not an amqp:// URL")

    # where things live
    @property
    def mongo_dir(self) -> Path:
        return self.var_dir / "mongo"

    @property
    def nginx_dir(self) -> Path:
        return self.var_dir / "nginx"

    @property
    def prometheus_dir(self) -> Path:
        return self.var_dir / "prometheus"

    @property
    def mail_dir(self) -> Path:
        """Where the SMTP sink keeps every message, one .eml file each."""
        return self.var_dir / "mail"

    @property
    def vapid_path(self) -> Path:
        return self.var_dir / "vapid.json"

    @property
    def sms_dir(self) -> Path:
        """Where the Twilio double keeps every text, one .json file each."""
        return self.var_dir / "sms"

    @property
    def sms_sink(self) -> bool:
        return not self.external_twilio

    @property
    def sms_api_url(self) -> str:
        return f"http://{self.host}:{self.sms_port}"

    @property
    def mail_sink(self) -> bool:
        """True unless SMTP_HOST names a real server: then mail goes there and no sink runs."""
        return self.external_smtp is None

    def smtp_env(self) -> dict[str, str]:
        """notifications' SMTP_HOST/SMTP_PORT; the port of a real server only when given
        (otherwise the service's default). Credentials stay in the inherited environment."""
        if self.external_smtp is None:
            return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.mail_port)}
        env = {"SMTP_HOST": self.external_smtp}
        if self.external_smtp_port is not None:
            env["SMTP_PORT"] = str(self.external_smtp_port)
        return env

    @property
    def procfile_path(self) -> Path:
        return self.var_dir / "Procfile"

    @property
    def mongo_url(self) -> str:
        return self.external_mongo_url or (
            f"mongodb://{self.host}:{self.mongo_port}/?directConnection=true"
        )

    @property
    def gateway(self) -> bool:
        return self.nginx is not None

    def direct_url(self, svc: Service) -> str:
        return f"http://{self.host}:{self.ports[svc.name]}"

    def gateway_url(self, svc: Service) -> str:
        return f"http://{self.host}:{self.gateway_port}{svc.prefix}"

    @property
    def gateway_base(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    # what runs
    def service_env(self, svc: Service) -> dict[str, str]:
        env = {
            "ENVIRONMENT": self.environment,
            "LOG_LEVEL": self.log_level,
            "MONGODB_URL": self.mongo_url,
            "MONGODB_DB": svc.database,
            "AMQP_URL": self.amqp_url,
            "AUTH_JWKS_URL": f"{self.direct_url(service('auth'))}/.well-known/jwks.json",
        }
        if svc.name == MAIL_SERVICE:
            env |= self.smtp_env()
            if self.vapid_keys is not None:
                env["VAPID_PRIVATE_KEY"], env["VAPID_PUBLIC_KEY"] = self.vapid_keys
            if self.sms_sink:
                env |= {
                    "TWILIO_ACCOUNT_SID": LOCAL_TWILIO_SID,
                    "TWILIO_AUTH_TOKEN": LOCAL_TWILIO_TOKEN,
                    "TWILIO_FROM_NUMBER": LOCAL_TWILIO_FROM,
                    "TWILIO_API_URL": self.sms_api_url,
                }
            # unsubscribe links in the mail (and Twilio's callbacks) reach it where it runs
            env["PUBLIC_BASE_URL"] = self.gateway_url(svc) if self.gateway else self.direct_url(svc)
        if self.gateway:
            # The docs page links the OpenAPI document under this prefix; requests that
            # arrive directly still route, as the prefix is stripped only when present.
            env["ROOT_PATH"] = svc.prefix
        return env

    def service_argv(self, svc: Service) -> list[str]:
        return [
            self.python,
            "-m",
            "uvicorn",
            "--factory",
            svc.app,
            "--host",
            self.host,
            "--port",
            str(self.ports[svc.name]),
            "--no-access-log",
            # The WebSocket protocol's frame limit: refused by the server before it is buffered.
            "--ws-max-size",
            "65536",
            # Live-session frames are a few hundred bytes: compressing each costs more server
            # CPU than the bandwidth it saves, and each compressed connection keeps zlib state.
            "--ws-per-message-deflate",
            "false",
        ]

    def gateway_argv(self) -> list[str]:
        if self.nginx is None:
            raise PlanError("no nginx on this machine")
        conf = self.nginx_dir / "nginx.conf"
        return [self.nginx, "-p", f"{self.nginx_dir}/", "-c", str(conf), "-e", "stderr"]

    def prometheus_argv(self) -> list[str]:
        if self.prometheus is None:
            raise PlanError("no prometheus on this machine")
        return [
            self.prometheus,
            f"--config.file={self.prometheus_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.prometheus_dir / 'data'}",
            f"--web.listen-address={self.host}:{self.prometheus_port}",
        ]

    def mail_sink_argv(self) -> list[str]:
        return [
            self.python,
            "-m",
            "sonata_local.mailsink",
            "--host",
            self.host,
            "--port",
            str(self.mail_port),
            "--dir",
            str(self.mail_dir),
        ]

    def sink_env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.root / "deploy" / "local")}

    def sms_sink_argv(self) -> list[str]:
        return [
            self.python,
            "-m",
            "sonata_local.smssink",
            "--port",
            str(self.sms_port),
            "--dir",
            str(self.sms_dir),
            "--account-sid",
            LOCAL_TWILIO_SID,
            "--auth-token",
            LOCAL_TWILIO_TOKEN,
        ]

    def processes(self) -> list[tuple[str, list[str], dict[str, str]]]:
        """(name, argv, env) of every process the process manager runs, services first."""
        procs = [(s.name, self.service_argv(s), self.service_env(s)) for s in SERVICES]
        if self.mail_sink:
            procs.append(("mail", self.mail_sink_argv(), self.sink_env()))
        if self.sms_sink:
            procs.append(("sms", self.sms_sink_argv(), self.sink_env()))
        if self.nginx is not None:
            procs.append(("gateway", self.gateway_argv(), {}))
        if self.prometheus is not None:
            procs.append(("prometheus", self.prometheus_argv(), {}))
        return procs

    def procfile(self) -> str:
        lines = ["# Written by `make run` (deploy/local/sonata_local); rewritten on every start."]
        for name, argv, env in self.processes():
            assigns = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
            # exec: the process manager signals the program itself, not a shell around it
            prefix = ["exec", "env", *assigns] if assigns else ["exec"]
            cmd = " ".join([*prefix, *map(shlex.quote, argv)])
            lines.append(f"{name}: {cmd}")
        return "\n".join(lines) + "\n"


def render_gateway(upstreams: Sequence[tuple[Service, str]], listen: str) -> str:
    """The gateway's http-level rules, shared by `make run` and docker compose.

    `upstreams` pairs each service with the address nginx reaches it at. `proxy_set_header`
    is repeated in every location because a location that sets any header inherits none.
    """
    out = [
        "# Rendered by deploy/local/sonata_local/plan.py (render_gateway): edit there, then",
        "# `PYTHONPATH=deploy/local uv run --frozen python -m sonata_local render`.",
        "map $http_upgrade $connection_upgrade {",
        "    default upgrade;",
        "    '' close;",
        "}",
        "# Keep the client's X-Request-ID (the service judges if it is sane), else mint one.",
        "map $http_x_request_id $sonata_request_id {",
        "    default $http_x_request_id;",
        "    '' $request_id;",
        "}",
        "",
    ]
    for svc, address in upstreams:
        out += [f"upstream {svc.upstream} {{", f"    server {address};", "    keepalive 8;", "}"]
    common = [
        "proxy_http_version 1.1;",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Request-ID $sonata_request_id;",
        "proxy_set_header X-Real-IP $remote_addr;",
        # The gateway is the edge: what a client claims in X-Forwarded-For is dropped, or it
        # could pick the address auth's per-IP login limit counts.
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ]
    out += [
        "",
        "server {",
        f"    listen {listen};",
        "    server_name _;",
        "    client_max_body_size 10m;",
        "    default_type application/json;",
        "    error_page 502 503 504 = @upstream_down;",
        "",
        "    location = /healthz {",
        '        return 200 \'{"status":"ok"}\';',
        "    }",
        "    location @upstream_down {",
        '        return 502 \'{"error":"upstream_unavailable",'
        '"detail":"the service behind this path is not answering"}\';',
        "    }",
        "    location / {",
        '        return 404 \'{"error":"not_found","detail":"no route at the gateway: '
        "use /api/<service>/... or /ws/...\"}';",
        "    }",
    ]
    for svc, _ in upstreams:
        out += [f"    location {svc.prefix}/ {{"]
        out += [f"        {line}" for line in common]
        out += [
            '        proxy_set_header Connection "";',
            f"        proxy_set_header X-Forwarded-Prefix {svc.prefix};",
            # the trailing slash makes nginx replace the matched prefix with "/"
            f"        proxy_pass http://{svc.upstream}/;",
            "    }",
        ]
    ws = service(WS_SERVICE)
    out += ["    location /ws/ {"]
    out += [f"        {line}" for line in common]
    out += [
        "        proxy_set_header Upgrade $http_upgrade;",
        "        proxy_set_header Connection $connection_upgrade;",
        # a practice session is a long, often quiet connection: an hour, not nginx's 60 s
        "        proxy_read_timeout 3600s;",
        "        proxy_send_timeout 3600s;",
        "        proxy_buffering off;",
        f"        proxy_pass http://{ws.upstream};",
        "    }",
        "}",
    ]
    return "\n".join(out) + "\n"


def render_local_nginx(cfg: Config) -> str:
    """A whole nginx.conf for an unprivileged, foreground nginx rooted in var/nginx."""
    d = cfg.nginx_dir
    upstreams = [(s, f"{cfg.host}:{cfg.ports[s.name]}") for s in SERVICES]
    body = render_gateway(upstreams, f"{cfg.host}:{cfg.gateway_port}")
    indented = "\n".join(f"    {line}" if line else "" for line in body.splitlines())
    return "\n".join(
        [
            "# Written by `make run`; rewritten on every start.",
            "daemon off;",
            "worker_processes 1;",
            "worker_rlimit_nofile 8192;",
            f"pid {d / 'nginx.pid'};",
            "error_log stderr warn;",
            "events {",
            # every live session holds two (the learner's and the one to ai-scoring)
            "    worker_connections 4096;",
            "}",
            "http {",
            "    access_log off;",
            f"    client_body_temp_path {d / 'tmp' / 'client_body'};",
            f"    proxy_temp_path {d / 'tmp' / 'proxy'};",
            f"    fastcgi_temp_path {d / 'tmp' / 'fastcgi'};",
            f"    uwsgi_temp_path {d / 'tmp' / 'uwsgi'};",
            f"    scgi_temp_path {d / 'tmp' / 'scgi'};",
            indented,
            "}",
            "",
        ]
    )


def compose_gateway() -> str:
    """deploy/nginx/gateway.conf: the same rules, services reached by their compose names."""
    return render_gateway([(s, f"{s.name}:{CONTAINER_PORT}") for s in SERVICES], "8080")


def render_prometheus(targets: Sequence[tuple[Service, str]], header: str, rules: str) -> str:
    out = [
        header,
        "global:",
        "  scrape_interval: 15s",
        "  evaluation_interval: 15s",
        "rule_files:",
        f"  - {rules}",
        "scrape_configs:",
    ]
    for svc, address in targets:
        out += [
            f"  - job_name: {svc.name}",
            "    metrics_path: /metrics",
            "    static_configs:",
            f"      - targets: ['{address}']",
            "        labels:",
            f"          service: {svc.name}",
        ]
    return "\n".join(out) + "\n"


def local_prometheus(cfg: Config) -> str:
    return render_prometheus(
        [(s, f"{cfg.host}:{cfg.ports[s.name]}") for s in SERVICES],
        "# Prometheus for `make run`: the services on their local ports (rewritten under var/).",
        str(cfg.root / "prometheus" / "rules" / "*.yml"),
    )
