"""The TLS + basic auth variants of the deploy artefacts, checked like the plain ones.

Compose: docker-compose.tls.yml over docker-compose.yml, compose/web-config.yml, the demo
certificate script and prometheus/prometheus-tls.yml. Kubernetes: k8s/tls/ (ServiceMonitor,
Secrets, a Deployment patch). The demo certificates are made with the shipped script, then the
real HttpServer serves the shipped web config and is asked exactly as Prometheus and the health
check would ask it.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import bcrypt
import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.serve.http import HttpServer
from monitor.serve.web_config import load_web_config
from monitor.settings import HttpSettings
from tests.support.deploy_checks import COMPOSE, DEPLOY, K8S, RULES, load_yaml, load_yaml_all
from tests.support.helpers import require_prometheus_tool

COMPOSE_TLS = DEPLOY / "docker-compose.tls.yml"
CERT_SCRIPT = DEPLOY / "compose" / "make-demo-certs.sh"
PROMETHEUS_TLS = DEPLOY / "prometheus" / "prometheus-tls.yml"
K8S_TLS = K8S / "tls"


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """target -> source (in the repository) of a compose service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out[target] = DEPLOY / source
    return out


@pytest.fixture(scope="module")
def demo_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl tool is needed to run make-demo-certs.sh")
    out = tmp_path_factory.mktemp("demo") / "tls"
    subprocess.run(["sh", str(CERT_SCRIPT), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[list[HttpServer]]:
    servers: list[HttpServer] = []
    yield servers
    for server in servers:
        server.stop()


def serve(web_config: Path, servers: list[HttpServer]) -> HttpServer:
    server = HttpServer(
        CollectorRegistry(),
        lambda: None,
        lambda: (True, "ok"),
        lambda: (True, "ready"),
        HttpSettings(host="127.0.0.1", port=0),
        web=load_web_config(web_config),
    )
    server.start()
    servers.append(server)
    return server


def scrape(port: int, ca: Path, server_name: str, user: str, password: str) -> int:
    """GET /metrics as Prometheus would: the CA, the server name, basic auth."""
    context = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    conn._server_hostname = server_name  # type: ignore[attr-defined]  # SNI + name checked
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request("GET", "/metrics", headers={"Authorization": f"Basic {token}"})
        return conn.getresponse().status
    finally:
        conn.close()


# --- compose ----------------------------------------------------------------------------------


def test_compose_tls_override_validates_against_compose_spec() -> None:
    schema_file = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    validator = jsonschema.Draft202012Validator(json.loads(schema_file.read_text("utf-8")))
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(load_yaml(COMPOSE_TLS))]
    assert not errors, errors


def test_compose_tls_mounts_what_the_configs_name() -> None:
    base, tls = load_yaml(COMPOSE)["services"], load_yaml(COMPOSE_TLS)["services"]
    daemon = mounts(tls["modelmon"])
    web_path = tls["modelmon"]["environment"]["MODELMON_HTTP__WEB_CONFIG_FILE"]
    web = load_yaml(daemon[web_path])
    cert_dir = str(Path(web_path).parent / Path(web["tls_server_config"]["cert_file"]).parent)
    assert daemon[cert_dir].resolve() == (DEPLOY / "compose" / "tls").resolve()
    assert "/deploy/compose/tls/" in (DEPLOY.parent / ".gitignore").read_text(), "never commit"
    prom = mounts(tls["prometheus"])
    config_arg = next(a for a in base["prometheus"]["command"] if a.startswith("--config.file="))
    assert prom[config_arg.split("=", 1)[1]] == PROMETHEUS_TLS
    job = next(
        j for j in load_yaml(PROMETHEUS_TLS)["scrape_configs"] if j["job_name"] == "modelmon"
    )
    assert prom[job["tls_config"]["ca_file"]] == daemon[cert_dir] / "ca.crt"
    password = prom[job["basic_auth"]["password_file"]].read_text("utf-8").strip()
    hashed = web["basic_auth_users"][job["basic_auth"]["username"]].encode()
    assert bcrypt.checkpw(password.encode(), hashed), "Prometheus sends what modelmon checks"
    for source in [*daemon.values(), *prom.values()]:
        generated = (DEPLOY / "compose" / "tls").resolve() in source.resolve().parents
        assert source.exists() or generated or source.name == "tls", source


def test_prometheus_tls_config_is_the_plain_one_over_https() -> None:
    plain, tls = load_yaml(DEPLOY / "prometheus" / "prometheus.yml"), load_yaml(PROMETHEUS_TLS)
    expected = copy.deepcopy(plain)
    job = next(j for j in expected["scrape_configs"] if j["job_name"] == "modelmon")
    tls_job = next(j for j in tls["scrape_configs"] if j["job_name"] == "modelmon")
    job.update({k: tls_job[k] for k in ("scheme", "tls_config", "basic_auth")})
    assert tls == expected
    assert tls_job["scheme"] == "https"


def test_promtool_check_prometheus_tls_config(tmp_path: Path, demo_certs: Path) -> None:
    promtool = require_prometheus_tool("promtool")
    config = load_yaml(PROMETHEUS_TLS)
    config["rule_files"] = [str(RULES)]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "modelmon")
    job["tls_config"]["ca_file"] = str(demo_certs / "ca.crt")
    job["basic_auth"]["password_file"] = str(DEPLOY / "compose" / "scrape-password")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_tls_variant_serves_prometheus_and_the_healthcheck(
    tmp_path: Path, demo_certs: Path, serving: list[HttpServer]
) -> None:
    """The shipped web config with the script's certificates, asked as Prometheus asks."""
    etc = tmp_path / "etc-modelmon"  # laid out as compose mounts it at /etc/modelmon
    shutil.copytree(demo_certs, etc / "tls")
    shutil.copy(DEPLOY / "compose" / "web-config.yml", etc / "web-config.yml")
    server = serve(etc / "web-config.yml", serving)
    job = next(
        j for j in load_yaml(PROMETHEUS_TLS)["scrape_configs"] if j["job_name"] == "modelmon"
    )
    user = job["basic_auth"]["username"]
    password = (DEPLOY / "compose" / "scrape-password").read_text("utf-8").strip()
    name = job["tls_config"]["server_name"]
    assert scrape(server.port, etc / "tls" / "ca.crt", name, user, password) == 200
    assert scrape(server.port, etc / "tls" / "ca.crt", name, user, "wrong") == 401

    test = load_yaml(COMPOSE_TLS)["services"]["modelmon"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code = test[3].replace("/etc/modelmon/", f"{etc}/").replace(":9108/", f":{server.port}/")
    assert subprocess.run([sys.executable, "-c", code], timeout=30, check=False).returncode == 0


# --- Kubernetes -------------------------------------------------------------------------------


def _patched(base: Any, patch: Any) -> Any:
    """A strategic merge patch, as kubectl applies it for these fields: maps merge; lists of
    objects merge by name (volumeMounts by mountPath)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _patched(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(patch, list) and patch and isinstance(patch[0], dict):
        key = "mountPath" if "mountPath" in patch[0] else "name"
        merged = [dict(item) for item in base]
        for item in patch:
            match = next((i for i, b in enumerate(merged) if b.get(key) == item[key]), None)
            if match is None:
                merged.append(item)
            else:
                merged[match] = _patched(merged[match], item)
        return merged
    return patch


def _tls_objects() -> dict[str, dict[str, Any]]:
    objects = {}
    for name in ("servicemonitor.yaml", "secrets.yaml"):
        for obj in load_yaml_all(K8S_TLS / name):
            objects[f"{obj['kind']}/{obj['metadata']['name']}"] = obj
    return objects


def _deployment() -> dict[str, Any]:
    base = next(
        o
        for o in load_yaml_all(K8S / "deployment.yaml")
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "modelmon"
    )
    result: dict[str, Any] = _patched(base, load_yaml(K8S_TLS / "deployment-patch.yaml"))
    return result


def test_k8s_tls_objects_validate() -> None:
    for name, obj in {**_tls_objects(), "Deployment/modelmon": _deployment()}.items():
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        try:
            kubernetes_validate.validate(obj, "1.33", strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name}: {'.'.join(map(str, e.path))}: {e.message}")


def test_k8s_tls_service_monitor_is_the_plain_one_over_https() -> None:
    plain = next(load_yaml_all(K8S / "servicemonitor.yaml").__iter__())
    tls = _tls_objects()["ServiceMonitor/modelmon"]
    expected = copy.deepcopy(plain)
    endpoint = tls["spec"]["endpoints"][0]
    expected["spec"]["endpoints"][0].update(
        {k: endpoint[k] for k in ("scheme", "tlsConfig", "basicAuth")}
    )
    assert tls == expected
    assert endpoint["scheme"] == "https"


def test_k8s_tls_pieces_fit_together(tmp_path: Path, demo_certs: Path) -> None:
    objects = _tls_objects()
    monitor = objects["ServiceMonitor/modelmon"]["spec"]["endpoints"][0]
    pod = _deployment()["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "modelmon")
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_at = {
        m["mountPath"]: volumes[m["name"]]["secret"]["secretName"]
        for m in container["volumeMounts"]
        if "secret" in volumes[m["name"]]
    }
    assert all(p["httpGet"]["scheme"] == "HTTPS" for p in (
        container["livenessProbe"], container["readinessProbe"]))  # fmt: skip

    env = {e["name"]: e.get("value") for e in container["env"]}
    web_path = Path(env["MODELMON_HTTP__WEB_CONFIG_FILE"])
    web_secret = objects[f"Secret/{secret_at[str(web_path.parent)]}"]
    web_text = web_secret["stringData"][web_path.name]
    web = yaml.safe_load(web_text)
    cert_dir = Path(web["tls_server_config"]["cert_file"]).parent
    tls_secret = secret_at[str(cert_dir)]
    assert monitor["tlsConfig"]["ca"]["secret"]["name"] == tls_secret, "one certificate Secret"
    assert monitor["tlsConfig"]["ca"]["secret"]["key"] == "ca.crt"

    auth = objects[f"Secret/{monitor['basicAuth']['password']['name']}"]["stringData"]
    user = auth[monitor["basicAuth"]["username"]["key"]]
    password = auth[monitor["basicAuth"]["password"]["key"]]
    assert bcrypt.checkpw(password.encode(), web["basic_auth_users"][user].encode())

    # The web config loads as modelmon loads it, with a kubernetes.io/tls Secret's file names.
    mounted = tmp_path / "tls"
    mounted.mkdir()
    shutil.copy(demo_certs / "modelmon.crt", mounted / "tls.crt")
    shutil.copy(demo_certs / "modelmon.key", mounted / "tls.key")
    local = tmp_path / "web-config.yml"
    local.write_text(web_text.replace(f"{cert_dir}/", f"{mounted}/"), encoding="utf-8")
    loaded = load_web_config(local)
    assert loaded.tls is not None and set(loaded.users) == {user}
