"""Deployment files in deploy/: they parse, check, and reference only things that exist.

- Prometheus: ``promtool check config`` / ``check rules`` / ``test rules`` on the shipped
  files, and the real Prometheus server on loopback scraping the real cascadewatch metric
  objects (prometheus_client's default registry) served by a tiny in-test HTTP server: a
  metric is read back through ``/api/v1/query``, a shipped alert rule fires, and every
  dashboard expression evaluates. Needs Debian's ``prometheus`` package (promtool and the
  server); skipped with the reason when it is absent.
- Grafana: the dashboard uses only metrics that the code registers, as do the alert rules.
- Compose, Kubernetes: the YAML parses (PyYAML), mounted files exist, ports match the
  container ports and the config, the configs load, the Secret holds every variable the config
  names, the Dockerfile's entry point is a console script and its COPY sources are in the build
  context, the cluster entrypoint script computes the addresses and the process id.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "cascadewatch.json"
K8S = DEPLOY / "k8s"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NO_PROMTOOL = "promtool not installed (Debian package 'prometheus': apt-get install -y prometheus)"
NO_PROMETHEUS = "prometheus server not installed (Debian package 'prometheus': apt-get install -y prometheus)"

PROMQL_NAME = re.compile(r"\b(cascadewatch_[a-z0-9_]+)")


# ----------------------------------------------------------------------------- helpers


def _yaml() -> Any:
    return pytest.importorskip(
        "yaml", reason="PyYAML is needed to parse the YAML files (add pyyaml to the test extras)"
    )


def _load_yaml_all(path: Path) -> list[dict[str, Any]]:
    yaml = _yaml()
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def registered_metric_names() -> set[str]:
    """Sample names (as Prometheus sees them) of every cascadewatch metric the code registers."""
    from prometheus_client import REGISTRY

    import cascadewatch.connectors.alerts.metrics
    import cascadewatch.connectors.live_metrics

    assert (
        cascadewatch.connectors.alerts.metrics.PROBABILITY and cascadewatch.connectors.live_metrics.MESSAGES
    )  # registered on import

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("cascadewatch_"):
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def rule_exprs() -> dict[str, str]:
    yaml = _yaml()
    rules = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}


def concrete(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, for Prometheus's query API."""
    for variable, value in (
        ("$__rate_interval", "1m"),
        ("$__interval", "15s"),
        ("$__range", "5m"),
        ("$asset", ".*"),
        ("$venue", ".*"),
        ("$band", "50"),
    ):
        expr = expr.replace(variable, value)
    return expr


def load_any_config(path: Path) -> None:
    """Load a TOML config the way the program does: ``cascadewatch.pipelines.config.load_config`` when
    ``Config`` embeds ``[live]``, else the live loader that validates both parts."""
    from cascadewatch.pipelines.config import Config, load_config
    from cascadewatch.pipelines.run.live import load_live_config

    if "live" in Config.__struct_fields__:
        load_config(path)
    load_live_config(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


# ------------------------------------------------------------------------------ promtool


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_check_config() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(PROMETHEUS_DIR / "rules.yml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_rule_unit_tests() -> None:
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(PROMETHEUS_DIR / "rules.test.yml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_fires_in_a_unit_test() -> None:
    yaml = _yaml()
    tests = yaml.safe_load((PROMETHEUS_DIR / "rules.test.yml").read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert set(rule_exprs()) - fired == set()


def test_rules_use_only_registered_metrics() -> None:
    registered = registered_metric_names()
    for alert, expr in rule_exprs().items():
        for name in PROMQL_NAME.findall(expr):
            assert name in registered, f"{alert}: {name} is not a metric the code registers"


def test_dashboard_uses_registered_or_listed_metrics() -> None:
    registered = registered_metric_names()
    used = {name for expr in dashboard_exprs() for name in PROMQL_NAME.findall(expr)}
    unknown = used - registered
    assert not unknown, f"dashboard uses metrics the code does not register: {sorted(unknown)}"


def test_dashboard_structure() -> None:
    yaml = _yaml()
    dashboard = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uids = {ds["uid"] for ds in datasources["datasources"]}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {var["name"] for var in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids
            for variable in re.findall(r"\$(\w+)", target["expr"] + panel["title"]):
                assert variable.startswith("__") or variable in variables, f"{panel['title']}: ${variable}"
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"]["uid"] in uids


# ------------------------------------------------------------ the real Prometheus server


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        body = generate_latest(REGISTRY)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _query(base: str, expr: str) -> dict[str, Any]:
    return http_json(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))


def _wait_for(what: str, check: Any, deadline: float, proc: subprocess.Popen[bytes], log: Path) -> Any:
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS)
@pytest.mark.timeout(60)
def test_real_prometheus_scrapes_cascadewatch_metrics(tmp_path: Path) -> None:
    """Prometheus, configured from the shipped prometheus.yml and rules.yml, scrapes the real
    metric objects; the values come back through the HTTP API and a shipped rule fires."""
    yaml = _yaml()
    from cascadewatch.connectors import live_metrics
    from cascadewatch.connectors.alerts import metrics as alert_metrics

    deadline = time.monotonic() + 30.0
    # Test-only label values, so counts from other tests in this process do not matter.
    venue = "deploy-test"
    live_metrics.RECONNECTS.labels(venue, "market").inc(3)
    live_metrics.CONNECTED.labels(venue, "market").set(1)
    live_metrics.LAG.labels(venue).observe(0.03)
    failed = alert_metrics.FAILED.labels("deploy-test")  # starts at 0: the rule needs an increase
    alert_metrics.observe_snapshot(
        {
            "asset": "DEPLOYTEST-USDT",
            "ts": 1_768_435_920_000,
            "price": 93735.0,
            "prob_down": 0.42,
            "prob_up": 0.01,
            "down": {"cascade": "liquidation"},
            "up": {"cascade": None},
        }
    )

    metrics_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MetricsHandler)
    threading.Thread(target=metrics_server.serve_forever, daemon=True).start()
    target = f"127.0.0.1:{metrics_server.server_address[1]}"

    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["cascadewatch"]["static_configs"] = [{"targets": [target]}]
    config["scrape_configs"] = [jobs["cascadewatch"]]
    shutil.copy(PROMETHEUS_DIR / "rules.yml", tmp_path / "rules.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "prometheus.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        _wait_for(
            "/-/ready", lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=1).status == 200, deadline, proc, log
        )

        def value_of(expr: str) -> float | None:
            result = _query(base, expr)["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        reconnects = f'cascadewatch_feed_reconnects_total{{venue="{venue}", connection="market"}}'
        assert _wait_for("the reconnects counter", lambda: value_of(reconnects), deadline, proc, log) == 3.0
        assert value_of('cascadewatch_asset_probability{asset="DEPLOYTEST-USDT", direction="down"}') == 0.42
        assert (
            value_of('cascadewatch_asset_state{asset="DEPLOYTEST-USDT", direction="down", state="liquidation"}') == 1.0
        )
        assert value_of(f'up{{job="cascadewatch", instance="{target}"}}') == 1.0

        # A delivery given up after Prometheus saw the counter at 0: CascadewatchAlertDeliveryFailed fires.
        failed_expr = 'cascadewatch_alerts_failed_total{destination="deploy-test"}'
        assert _wait_for("the failed counter at 0", lambda: value_of(failed_expr) == 0.0, deadline, proc, log)
        failed.inc()

        def firing() -> bool:
            alerts = http_json(f"{base}/api/v1/alerts")["data"]["alerts"]
            return any(
                a["labels"].get("alertname") == "CascadewatchAlertDeliveryFailed"
                and a["labels"].get("destination") == "deploy-test"
                and a["state"] == "firing"
                for a in alerts
            )

        _wait_for("CascadewatchAlertDeliveryFailed to fire", firing, deadline, proc, log)

        # Every shipped rule evaluates without error against real scrapes.
        def rules_evaluated() -> dict[str, Any] | None:
            groups = http_json(f"{base}/api/v1/rules")["data"]["groups"]
            rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
            never = [name for name, rule in rules.items() if rule.get("lastEvaluation", "0001").startswith("0001")]
            return None if never else rules

        loaded = _wait_for("every rule evaluated", rules_evaluated, deadline, proc, log)
        assert set(loaded) == set(rule_exprs())
        errors = {name: rule.get("lastError") for name, rule in loaded.items() if rule.get("health") == "err"}
        assert not errors

        # Every dashboard expression is valid PromQL for this Prometheus.
        for expr in dashboard_exprs():
            answer = _query(base, concrete(expr))
            assert answer["status"] == "success", (expr, answer)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        metrics_server.shutdown()
        metrics_server.server_close()


# ---------------------------------------------------------------------------- configs


def test_shipped_configs_load(tmp_path: Path) -> None:
    yaml = _yaml()
    load_any_config(DEPLOY / "config.example.toml")
    load_any_config(DEPLOY / "config.container.toml")
    # The Kubernetes ConfigMap's config.toml, as the pods see it.
    _, key, source = configmap_file(yaml.safe_load((K8S / "kustomization.yaml").read_text()))
    copy = tmp_path / key
    copy.write_text(source.read_text())
    load_any_config(copy)


def configmap_file(kustomization: dict[str, Any]) -> tuple[dict[str, Any], str, Path]:
    """The config ConfigMap's generator, its key (the file name in the pod) and its source file."""
    (generator,) = kustomization["configMapGenerator"]
    (entry,) = generator["files"]
    key, _, source = entry.partition("=")
    path = K8S / (source or key)
    assert path.exists(), f"configMapGenerator file {path} does not exist"
    return generator, Path(key).name, path


def _config_ports(path: Path) -> dict[str, int]:
    raw = tomllib.loads(path.read_text())
    return {"metrics": raw["live"]["metrics_port"], "riskfeed": raw["riskfeed"]["port"]}


# ----------------------------------------------------------------------------- compose


def test_compose_references_exist() -> None:
    yaml = _yaml()
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"cascadewatch", "prometheus", "grafana"}
    named_volumes = set(compose.get("volumes") or {})
    mounts: dict[str, dict[str, Path]] = {}
    for name, service in services.items():
        mounts[name] = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                path = (DEPLOY / source).resolve()
                assert path.exists(), f"{name}: mounted {source} does not exist"
                mounts[name][target] = path
            else:
                assert source in named_volumes, f"{name}: volume {source} is not declared"
        for dependency in service.get("depends_on", []):
            assert dependency in services

    app = services["cascadewatch"]
    context = (DEPLOY / app["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / app["build"]["dockerfile"]).exists()
    config_path = app["command"][1]
    assert app["command"][0] == "run"
    config_file = mounts["cascadewatch"][config_path]
    load_any_config(config_file)
    ports = _config_ports(config_file)
    published = {int(port.split(":")[-1]) for port in app["ports"]}
    assert published == set(ports.values())
    assert all(port.startswith("127.0.0.1:") for s in services.values() for port in s.get("ports", []))
    assert any(v.split(":")[1] == "/var/lib/cascadewatch" for v in app["volumes"])

    # Prometheus reads the mounted config, whose rule file sits beside it, and scrapes cascadewatch's port.
    prom = services["prometheus"]
    config_flag = next(arg for arg in prom["command"] if arg.startswith("--config.file="))
    prom_config_target = config_flag.split("=", 1)[1]
    assert mounts["prometheus"][prom_config_target] == PROMETHEUS_DIR / "prometheus.yml"
    prom_config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    for rule_file in prom_config["rule_files"]:
        assert str(Path(prom_config_target).parent / rule_file) in mounts["prometheus"]
    (job,) = [j for j in prom_config["scrape_configs"] if j["job_name"] == "cascadewatch"]
    assert job["static_configs"][0]["targets"] == [f"cascadewatch:{ports['metrics']}"]

    # Grafana: provisioning mounted, the dashboard provider's path is where the dashboards are mounted.
    grafana = mounts["grafana"]
    assert grafana["/etc/grafana/provisioning/datasources"] == DEPLOY / "grafana" / "provisioning" / "datasources"
    assert grafana["/etc/grafana/provisioning/dashboards"] == DEPLOY / "grafana" / "provisioning" / "dashboards"
    providers = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "cascadewatch.yaml").read_text())
    (provider,) = providers["providers"]
    assert grafana[provider["options"]["path"]] == DASHBOARD.parent
    datasources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose not installed (optional compose schema check: Debian package docker-compose)",
)
def test_compose_file_validates() -> None:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("CASCADEWATCH_", "GRAFANA_", "PYTHON"))
    }  # its own Python, compose's defaults
    result = subprocess.run(
        ["docker-compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -------------------------------------------------------------------------- Kubernetes


def k8s_resources() -> dict[tuple[str, str], dict[str, Any]]:
    yaml = _yaml()
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    for name in kustomization["resources"]:
        path = K8S / name
        assert path.exists(), f"kustomization lists {name}, which does not exist"
        for doc in _load_yaml_all(path):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{name}: not a Kubernetes object"
            resources[(doc["kind"], doc["metadata"]["name"])] = doc
    return resources


def test_k8s_manifests_are_consistent() -> None:
    yaml = _yaml()
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    resources = k8s_resources()
    sts = resources[("StatefulSet", "cascadewatch")]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    (container,) = pod["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item for item in container["env"]}

    # One process per pod, addresses from the headless Service.
    assert env["CASCADEWATCH_PROCESSES"]["value"] == str(spec["replicas"])
    headless = resources[("Service", spec["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses") is True
    assert env["CASCADEWATCH_PEER_SERVICE"]["value"] == spec["serviceName"]
    assert int(env["CASCADEWATCH_CLUSTER_PORT"]["value"]) == ports["cluster"]
    assert container["command"] == ["cascadewatch-cluster"]
    assert spec["podManagementPolicy"] == "Parallel"

    # Every Service port targets a container port, by name and number.
    pod_names = {f"{sts['metadata']['name']}-{i}" for i in range(spec["replicas"])}
    for (kind, name), doc in resources.items():
        if kind != "Service":
            continue
        for key, value in doc["spec"]["selector"].items():
            if key == "statefulset.kubernetes.io/pod-name":
                assert value in pod_names, f"Service {name} selects pod {value}, which the StatefulSet does not have"
            else:
                assert pod_labels.get(key) == value, f"Service {name}: selector {key}={value} matches no pod"
        for port in doc["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: targetPort {port['targetPort']} is no containerPort"
            assert port["port"] == ports[port["targetPort"]], f"Service {name}: port {port['port']}"
    riskfeed = resources[("Service", "cascadewatch-riskfeed")]
    assert riskfeed["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"{sts['metadata']['name']}-0"

    # Probes use the metrics port; config ports match the container ports.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics"
    generator, key, config_file = configmap_file(kustomization)
    config_ports = _config_ports(config_file)
    assert config_ports == {"metrics": ports["metrics"], "riskfeed": ports["riskfeed"]}
    assert int(env["CASCADEWATCH_METRICS_PORT"]["value"]) == ports["metrics"]

    # Volumes: ConfigMap from the generator, state from the claim template, both mounted where the entrypoint looks.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert volumes[mounts["/etc/cascadewatch"]]["configMap"]["name"] == generator["name"]
    assert Path(env["CASCADEWATCH_CONFIG"]["value"]).parent == Path("/etc/cascadewatch")
    assert Path(env["CASCADEWATCH_CONFIG"]["value"]).name == key
    claims = {claim["metadata"]["name"] for claim in spec["volumeClaimTemplates"]}
    assert mounts["/var/lib/cascadewatch"] in claims
    assert env["CASCADEWATCH_RECOVERY_DIR"]["value"].startswith("/var/lib/cascadewatch/")
    raw = tomllib.loads(config_file.read_text())
    live = raw["live"]
    for path in (raw["alerts"]["outbox"], live["alerts_out"], live["snapshots_out"], live["dead_letters_out"]):
        assert path.startswith("/var/lib/cascadewatch/"), f"{path} is not on the state volume"

    # The Secret holds every variable the config names, and the pod gets it.
    secret = resources[("Secret", "cascadewatch-secrets")]
    named = {
        dest[key] for dest in raw["alerts"].get("destinations", []) for key in ("url_env", "secret_env") if key in dest
    }
    if raw["riskfeed"].get("token_env"):
        named.add(raw["riskfeed"]["token_env"])
    assert named <= set(secret["stringData"])
    assert {"secretRef": {"name": "cascadewatch-secrets"}} in container["envFrom"]

    # Resources, non-root, PDB.
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    pdb = resources[("PodDisruptionBudget", "cascadewatch")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    # Image: the one kustomize sets, tagged with the package version.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (image,) = kustomization["images"]
    assert container["image"].split(":")[0] == image["name"]
    assert image["newTag"] == version == container["image"].split(":")[1]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (optional: kustomize build check)")
def test_kustomize_builds() -> None:
    result = subprocess.run(["kubectl", "kustomize", str(K8S)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "kind: StatefulSet" in result.stdout


# -------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent directory matches."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            included = negate
    return included


def test_dockerfile_references_exist() -> None:
    instructions = dockerfile_instructions()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (entrypoint,) = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    assert entrypoint[0] in pyproject["project"]["scripts"]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    copied_targets: dict[str, str] = {}
    for word, rest in instructions:
        if word != "COPY" or "--from=" in rest:
            continue
        args = [arg for arg in rest.split() if not arg.startswith("--")]
        *sources, target = args
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            files = [f for f in tracked if f == source or f.startswith(source.rstrip("/") + "/")] or [source]
            for file in files:
                if "/__pycache__/" not in file:
                    assert _dockerignore_allows(file), f"COPY {source}: {file} is excluded by .dockerignore"
            copied_targets[target] = source
    # The default command runs the baked-in config; its ports are the exposed ones.
    (cmd,) = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    assert cmd[0] == "run"
    config_source = copied_targets[cmd[1]]
    load_any_config(ROOT / config_source)
    exposed = {int(port) for word, rest in instructions if word == "EXPOSE" for port in rest.split()}
    assert set(_config_ports(ROOT / config_source).values()) | {9999} == exposed
    (volumes,) = [json.loads(rest) for word, rest in instructions if word == "VOLUME"]
    assert set(volumes) == {"/etc/cascadewatch", "/var/lib/cascadewatch"}
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert any(word == "HEALTHCHECK" and "/metrics" in rest for word, rest in instructions)
    env = " ".join(rest for word, rest in instructions if word == "ENV")
    assert f"CASCADEWATCH_METRICS_PORT={_config_ports(ROOT / config_source)['metrics']}" in env
    assert "/usr/local/bin/cascadewatch-cluster" in copied_targets


# ------------------------------------------------------------------ cluster entrypoint


def _run_entrypoint(tmp_path: Path, hostname: str, processes: str, *args: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "cascadewatch").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (fake / "cascadewatch").chmod(0o755)
    env = {
        "PATH": f"{fake}:{os.environ['PATH']}",
        "HOSTNAME": hostname,
        "CASCADEWATCH_PROCESSES": processes,
        "CASCADEWATCH_PEER_DOMAIN": "trading.svc",
        "CASCADEWATCH_DNS_WAIT_S": "0",
        "CASCADEWATCH_RECOVERY_DIR": str(tmp_path / "recovery"),
    }
    return subprocess.run(
        ["sh", str(DEPLOY / "cluster-entrypoint.sh"), *args],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cluster_entrypoint_addresses_and_process_id(tmp_path: Path) -> None:
    result = _run_entrypoint(tmp_path, "cascadewatch-2", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    peers = ",".join(f"cascadewatch-{i}.cascadewatch-headless.trading.svc:9999" for i in range(3))
    assert result.stdout.split("\n")[:-1] == [
        "run",
        "/etc/cascadewatch/config.toml",
        "--addresses",
        peers,
        "--process-id",
        "2",
        "--recovery-dir",
        str(tmp_path / "recovery"),
        "--quiet",
    ]
    assert (tmp_path / "recovery").is_dir()

    single = _run_entrypoint(tmp_path, "cascadewatch-0", "1")
    assert single.returncode == 0, single.stderr
    assert "--addresses" not in single.stdout and "--recovery-dir" in single.stdout

    for hostname, processes in (
        ("cascadewatch-3", "3"),
        ("cascadewatch", "3"),
        ("cascadewatch-0", ""),
        ("cascadewatch-0", "x"),
    ):
        bad = _run_entrypoint(tmp_path, hostname, processes)
        assert bad.returncode == 64 and bad.stdout == "", (hostname, processes, bad.stderr)
        assert bad.stderr.startswith("cascadewatch-cluster: ")


def test_deploy_commands_match_the_cli() -> None:
    """The flags the deployment passes to ``cascadewatch run`` are the CLI's."""
    yaml = _yaml()
    from cascadewatch.pipelines.cli.main import build_parser

    parser = build_parser()
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    instructions = dockerfile_instructions()
    (cmd,) = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    for argv in (
        compose["services"]["cascadewatch"]["command"],
        cmd,
        [
            "run",
            "/etc/cascadewatch/config.toml",
            "--addresses",
            "a:9999,b:9999",
            "--process-id",
            "1",
            "--recovery-dir",
            "/var/lib/cascadewatch/recovery",
        ],
    ):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            missing = [flag for flag in ("--addresses", "--process-id", "--recovery-dir") if flag in argv]
            pytest.fail(
                f"`cascadewatch run` does not take {' '.join(missing)}; the deployment passes: {' '.join(argv)}"
            )
        assert args.command == "run"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
