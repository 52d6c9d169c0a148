"""The plan `make run` follows: ports from the environment, refusals, and a Procfile the shell
reads back exactly, whatever characters the settings hold; the SMTP sink it runs unless
SMTP_HOST names a real server, started from the plan and keeping each message in var/mail."""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import json
import shlex
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "local"))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402
from sonata_local.fleet import config_from_environ, local_vapid_keys  # noqa: E402
from sonata_local.plan import SERVICES, Config, PlanError, service  # noqa: E402
from sonata_testing import free_port  # noqa: E402
from twilio.http.http_client import TwilioHttpClient  # noqa: E402
from twilio.rest import Client  # noqa: E402


def plan(**environ: str) -> Config:
    return Config.from_environ(
        environ, root=ROOT, python=sys.executable, nginx="/usr/sbin/nginx", prometheus=None
    )


def test_defaults_are_the_fleet_conventions() -> None:
    cfg = plan()
    assert {s.name: cfg.ports[s.name] for s in SERVICES} == {
        "auth": 8001,
        "db": 8002,
        "ai-scoring": 8003,
        "notifications": 8004,
        "payment": 8005,
        "metrics": 8006,
    }
    assert (cfg.gateway_port, cfg.mongo_port) == (8080, 27017)
    assert cfg.var_dir == ROOT / "var"
    env = cfg.service_env(SERVICES[1])
    assert env["ENVIRONMENT"] == "development"
    assert env["MONGODB_DB"] == "library"
    assert env["ROOT_PATH"] == "/api/db"
    assert env["AUTH_JWKS_URL"] == "http://127.0.0.1:8001/.well-known/jwks.json"
    assert env["MONGODB_URL"] == "mongodb://127.0.0.1:27017/?directConnection=true"


def test_ports_move_with_the_sonata_variables() -> None:
    cfg = plan(SONATA_AUTH_PORT="9101", SONATA_AI_SCORING_PORT="9103", SONATA_GATEWAY_PORT="9180")
    assert cfg.ports["auth"] == 9101
    assert cfg.ports["ai-scoring"] == 9103
    assert cfg.gateway_url(SERVICES[2]) == "http://127.0.0.1:9180/api/ai-scoring"
    # every service finds auth's keys where auth now listens
    assert cfg.service_env(SERVICES[5])["AUTH_JWKS_URL"].startswith("http://127.0.0.1:9101/")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SONATA_DB_PORT": "eighty"}, "SONATA_DB_PORT"),
        ({"SONATA_GATEWAY_PORT": "70000"}, "SONATA_GATEWAY_PORT"),
        ({"SONATA_DB_PORT": "8001"}, "same port"),
        ({"SONATA_MAIL_PORT": "8004"}, "same port"),
        ({"SONATA_MAIL_PORT": "smtp"}, "SONATA_MAIL_PORT"),
        ({"SMTP_HOST": "mail.example.org", "SMTP_PORT": "0"}, "SMTP_PORT"),
        ({"AMQP_URL": "http://127.0.0.1:5672/"}, "AMQP_URL"),
    ],
)
def test_unusable_settings_are_refused_with_their_name(environ: dict[str, str], named: str) -> None:
    with pytest.raises(PlanError, match=named):
        plan(**environ)


def test_without_nginx_services_keep_their_own_root() -> None:
    cfg = Config.from_environ({}, root=ROOT, python=sys.executable, nginx=None, prometheus=None)
    assert "ROOT_PATH" not in cfg.service_env(SERVICES[0])
    assert [name for name, _, _ in cfg.processes()] == [
        *(s.name for s in SERVICES),
        "mail",
        "sms",
    ]


def test_notifications_mails_the_sink_that_keeps_messages_under_var() -> None:
    cfg = plan(SONATA_VAR_DIR="/srv/sonata-var")
    assert cfg.mail_dir == Path("/srv/sonata-var/mail")
    env = cfg.service_env(service("notifications"))
    assert (env["SMTP_HOST"], env["SMTP_PORT"]) == ("127.0.0.1", "1025")
    procs = {name: (argv, penv) for name, argv, penv in cfg.processes()}
    argv, penv = procs["mail"]
    assert argv[1:3] == ["-m", "sonata_local.mailsink"]
    assert argv[argv.index("--port") + 1] == "1025"
    assert argv[argv.index("--dir") + 1] == "/srv/sonata-var/mail"
    assert penv["PYTHONPATH"] == str(ROOT / "deploy" / "local")
    # no other service is handed an SMTP server
    assert all("SMTP_HOST" not in cfg.service_env(s) for s in SERVICES if s.name != "notifications")

    assert env["PUBLIC_BASE_URL"] == "http://127.0.0.1:8080/api/notifications"

    moved = plan(SONATA_MAIL_PORT="2525", SONATA_GATEWAY_PORT="9180")
    moved_env = moved.service_env(service("notifications"))
    assert moved_env["SMTP_PORT"] == "2525"
    # the links in the mail follow the gateway, or the service itself without nginx
    assert moved_env["PUBLIC_BASE_URL"] == "http://127.0.0.1:9180/api/notifications"
    bare = Config.from_environ(
        {"SONATA_NOTIFICATIONS_PORT": "9104"},
        root=ROOT,
        python=sys.executable,
        nginx=None,
        prometheus=None,
    )
    assert bare.service_env(service("notifications"))["PUBLIC_BASE_URL"] == "http://127.0.0.1:9104"
    moved_argv = next(argv for name, argv, _ in moved.processes() if name == "mail")
    assert moved_argv[moved_argv.index("--port") + 1] == "2525"


def test_a_real_smtp_server_in_the_environment_replaces_the_sink() -> None:
    cfg = plan(SMTP_HOST="mail.example.org", SMTP_PORT="587")
    assert "mail" not in [name for name, _, _ in cfg.processes()]
    env = cfg.service_env(service("notifications"))
    assert (env["SMTP_HOST"], env["SMTP_PORT"]) == ("mail.example.org", "587")
    # without SMTP_PORT the service keeps its own default; 1025 is then free for anything
    bare = plan(SMTP_HOST="mail.example.org", SONATA_AUTH_PORT="1025")
    assert "SMTP_PORT" not in bare.service_env(service("notifications"))


def _message(to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Sonata <no-reply@sonata.local>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(f"Hello {to}: https://sonata.example/verify-email?token=abc\n")
    msg.add_alternative("<p>Grüße</p>", subtype="html")
    return msg


def test_the_planned_sink_process_keeps_every_message_as_an_eml_file(tmp_path: Path) -> None:
    cfg = plan(SONATA_VAR_DIR=str(tmp_path), SONATA_MAIL_PORT=str(free_port()))
    _, argv, env = next(p for p in cfg.processes() if p[0] == "mail")
    proc = subprocess.Popen(
        argv, env={"PATH": "/usr/bin:/bin", **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                smtp = smtplib.SMTP(cfg.host, cfg.mail_port, timeout=5)
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[0].decode()
                assert time.monotonic() < deadline, "the sink did not listen within 20 s"
                time.sleep(0.1)
        with smtp:
            for n in range(3):
                smtp.send_message(_message(f"learner{n}@example.org", f"message {n}"))
        files = sorted(cfg.mail_dir.glob("*.eml"))
        assert len(files) == 3, [f.name for f in cfg.mail_dir.iterdir()]
        kept = [
            email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files
        ]
        # in the order they arrived, whole (both parts, the accents intact)
        assert [str(m["Subject"]) for m in kept] == ["message 0", "message 1", "message 2"]
        assert str(kept[1]["To"]) == "learner1@example.org"
        assert isinstance(kept[2], EmailMessage)
        html = kept[2].get_body(preferencelist=("html",))
        assert html is not None
        assert "Grüße" in html.get_content()
        assert not list(cfg.mail_dir.glob(".*")), "a partial file was left behind"
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=10)[0].decode()
    # honcho stops it with SIGTERM: a clean exit, no traceback
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert str(cfg.mail_dir) in out


def test_the_shell_reads_each_procfile_line_back_exactly() -> None:
    tricky = "amqp://user:p@ss w$rd'\"`x`@127.0.0.1:5672/%2F"
    cfg = plan(AMQP_URL=tricky, MONGODB_URL="mongodb://h:1/?a=1&b=2")
    lines = [ln for ln in cfg.procfile().splitlines() if not ln.startswith("#")]
    assert len(lines) == len(cfg.processes())
    for line, (name, argv, env) in zip(lines, cfg.processes(), strict=True):
        label, _, command = line.partition(": ")
        assert label == name
        # what /bin/sh hands to `env` is what the plan meant, quotes and dollars included
        shown = command.replace("exec env ", "exec env -0 ", 1)
        shown = shown.rsplit(" " + shlex.quote(argv[0]), 1)[0]
        if not env:
            continue
        out = subprocess.run(["/bin/sh", "-c", shown], capture_output=True, check=True).stdout
        seen = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
        assert {k: seen[k] for k in env} == env


def test_notifications_texts_the_local_twilio_double_unless_an_account_is_given() -> None:
    cfg = plan(SONATA_VAR_DIR="/srv/sonata-var", SONATA_SMS_PORT="8190")
    env = cfg.service_env(service("notifications"))
    assert env["TWILIO_API_URL"] == "http://127.0.0.1:8190"
    assert env["TWILIO_ACCOUNT_SID"].startswith("AC")
    argv = next(argv for name, argv, _ in cfg.processes() if name == "sms")
    assert argv[1:3] == ["-m", "sonata_local.smssink"]
    assert argv[argv.index("--dir") + 1] == "/srv/sonata-var/sms"
    # the double accepts exactly the account notifications uses
    assert argv[argv.index("--account-sid") + 1] == env["TWILIO_ACCOUNT_SID"]
    assert argv[argv.index("--auth-token") + 1] == env["TWILIO_AUTH_TOKEN"]
    assert all(
        "TWILIO_API_URL" not in cfg.service_env(s)
        for s in SERVICES
        if s is not service("notifications")
    )

    real = plan(TWILIO_ACCOUNT_SID="AC" + "1" * 32)
    assert "sms" not in [name for name, _, _ in real.processes()]
    # the service reads the account from the environment it inherits
    assert "TWILIO_API_URL" not in real.service_env(service("notifications"))


def _listening(host: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, f"nothing listened on {port} within 20 s"
            time.sleep(0.1)


def test_the_planned_twilio_double_keeps_each_text_the_official_client_sends(
    tmp_path: Path,
) -> None:
    cfg = plan(SONATA_VAR_DIR=str(tmp_path), SONATA_SMS_PORT=str(free_port()))
    _, argv, env = next(p for p in cfg.processes() if p[0] == "sms")
    service_env = cfg.service_env(service("notifications"))
    proc = subprocess.Popen(
        argv, env={"PATH": "/usr/bin:/bin", **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _listening(cfg.host, cfg.sms_port, proc)
        client = Client(
            service_env["TWILIO_ACCOUNT_SID"],
            service_env["TWILIO_AUTH_TOKEN"],
            http_client=_PlannedHost(service_env["TWILIO_API_URL"]),
        )
        created = client.messages.create(
            to="+436601234567",
            from_=service_env["TWILIO_FROM_NUMBER"],
            body="Your Sonata verification code is 482913.",
        )
        [kept] = list(cfg.sms_dir.glob("*.json"))
        text = json.loads(kept.read_text())
        assert (text["sid"], text["to"]) == (created.sid, "+436601234567")
        assert text["body"] == "Your Sonata verification code is 482913."
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=10)[0].decode()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert str(cfg.sms_dir) in out


class _PlannedHost(TwilioHttpClient):  # type: ignore[misc]
    """The official client's HTTP, sent to the planned double instead of api.twilio.com."""

    def __init__(self, api_url: str) -> None:
        super().__init__()
        self.api_url = api_url

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> object:
        return super().request(
            method, url.replace("https://api.twilio.com", self.api_url), *args, **kwargs
        )


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_web_push_gets_a_vapid_pair_made_once_and_kept_under_var(tmp_path: Path) -> None:
    path = tmp_path / "var" / "vapid.json"
    private, public = local_vapid_keys(path)
    assert local_vapid_keys(path) == (private, public)  # the next run keeps the subscriptions
    assert path.stat().st_mode & 0o777 == 0o600
    # a P-256 pair: the public key is the private scalar's point, as browsers need it
    key = ec.derive_private_key(int.from_bytes(_unb64(private), "big"), ec.SECP256R1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert _unb64(public) == point
    assert len(point) == 65

    cfg = dataclasses.replace(plan(), vapid_keys=(private, public))
    env = cfg.service_env(service("notifications"))
    assert (env["VAPID_PRIVATE_KEY"], env["VAPID_PUBLIC_KEY"]) == (private, public)
    assert "VAPID_PRIVATE_KEY" not in cfg.service_env(service("auth"))
    assert "VAPID_PRIVATE_KEY" not in plan().service_env(service("notifications"))

    made = config_from_environ({"SONATA_VAR_DIR": str(tmp_path / "var")})
    assert made.vapid_keys == (private, public)
    # a key pair in the environment is the service's own business
    given = {"SONATA_VAR_DIR": str(tmp_path / "other"), "VAPID_PRIVATE_KEY": "k"}
    assert config_from_environ(given).vapid_keys is None
    assert not (tmp_path / "other" / "vapid.json").exists()
