import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, ServePorts, load_settings, secret


def test_defaults_are_the_embedded_ones() -> None:
    s = load_settings({})
    assert s.data_dir == "./var/data"
    assert s.model_dir == "./var/models"
    assert s.database_url == "sqlite:///./var/app.db"
    assert s.redis_url is None
    assert s.market_source.kind == "synthetic"
    assert s.massive_api_base == "https://api.massive.com"
    assert (s.serve_host, s.serve_port) == ("127.0.0.1", 8000)


def test_account_settings() -> None:
    s = load_settings({}).accounts
    assert [s.quota(t) for t in (None, "free", "premium", "pro")] == [5, 10, 100, 1000]
    assert (s.session_ttl_days, s.cookie_secure) == (30, False)
    s = load_settings({"QUOTA_PREMIUM": "250", "QUOTA_ANONYMOUS": "0", "SESSION_TTL_DAYS": "7",
                       "COOKIE_SECURE": "true"}).accounts
    assert (s.quota("premium"), s.quota(None), s.session_ttl_days, s.cookie_secure) == (250, 0, 7, True)


def test_values_from_environment() -> None:
    s = load_settings(
        {
            "DATABASE_URL": "postgresql://u@db:5432/app",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "MARKET_SOURCE": "csv:/tmp/candles",
            "POLYGON_API_KEY": "k1",
            "SERVE_PORT": "9000",
        }
    )
    assert s.database_url == "postgresql+psycopg://u@db:5432/app"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.market_source.kind == "csv" and str(s.market_source.csv_dir) == "/tmp/candles"
    assert secret(s.massive_api_key) == "k1"
    assert s.serve_port == 9000
    # the service's other listeners follow SERVE_PORT unless named: two instances never collide
    assert s.ports == ServePorts(metrics=10101, stats=9404, fallback=9500, replicas_from=30000)
    high = load_settings({"SERVE_PORT": "56501"}).ports  # a high SERVE_PORT still has its replicas' range
    assert (high.replicas_from, high.replicas_to) == (30100, 30199)
    assert load_settings({}).ports == ServePorts()  # 9101, 8404, 8500, 30000-30099
    named = load_settings({"SERVE_PORT": "9000", "SERVE_METRICS_PORT": "9200", "SERVE_STATS_PORT": "9300",
                           "SERVE_FALLBACK_PORT": "9400", "SERVE_REPLICA_PORT_MIN": "50000"})
    assert named.ports == ServePorts(metrics=9200, stats=9300, fallback=9400, replicas_from=50000)
    assert named.ports.replicas_to == 50099
    with pytest.raises(ConfigError, match="SERVE_METRICS_PORT"):  # 65000 + 1101 is no port: say which to set
        load_settings({"SERVE_PORT": "65000"})
    with pytest.raises(ConfigError, match="SERVE_REPLICA_PORT_MIN=65500 leaves no room for 100"):
        load_settings({"SERVE_REPLICA_PORT_MIN": "65500"})
    assert secret(load_settings({"MASSIVE_API_KEY": "a", "POLYGON_API_KEY": "b"}).massive_api_key) == "a"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_URL", "localhost:6379"),
        ("MARKET_SOURCE", "yahoo"),
        ("MARKET_SOURCE", "csv:"),
        ("SERVE_PORT", "eighty"),
        ("SERVE_PORT", "70000"),
        ("SERVE_METRICS_PORT", "0"),
        ("SERVE_STATS_PORT", "stats"),
        ("MASSIVE_RETRIES", "-1"),
        ("MASSIVE_BACKOFF_S", "soon"),
        ("QUOTA_FREE", "ten"),
        ("QUOTA_ANONYMOUS", "-1"),
        ("SESSION_TTL_DAYS", "0"),
        ("COOKIE_SECURE", "maybe"),
    ],
)
def test_malformed_values_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError, match=var):
        load_settings({var: value})


@pytest.mark.parametrize(
    ("var", "value"), [("DATABASE_URL", "mysql://x"), ("REDIS_URL", "nope"), ("MARKET_SOURCE", "yahoo")]
)
def test_entry_point_stops_with_one_line(var: str, value: str, tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", var: value}
    proc = subprocess.run(
        [sys.executable, "-m", "storage.migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and var in lines[0], proc.stderr


def test_cluster_yaml_validates_against_rays_schema() -> None:
    from pathlib import Path

    import yaml
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "cluster.yaml").read_text())
    validate_config(config)  # raises on any schema violation
    assert config["provider"]["type"] == "aws" and config["max_workers"] >= 1
    assert "6379" not in str(config["head_start_ray_commands"])  # Redis keeps its port


def test_cluster_nodes_start_ray_with_servings_process_settings() -> None:
    """`python -m serve_app` sets them for its local Ray; a cluster's nodes must start with the
    same (the proxy and the replicas read them at start-up, not from a deployment)."""
    from pathlib import Path

    import yaml

    from launcher.ray_env import LOCAL_ONLY_ENV, RAY_SERVE_ENV, apply_ray_serve_env, haproxy_env

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "cluster.yaml").read_text())
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in config[key] if "ray start" in c)
        for name, value in RAY_SERVE_ENV.items():
            assert f"{name}={value} " in start, (key, name)
        assert "RAY_SERVE_HAPROXY_BINARY_PATH=/home/ubuntu/cryptocast/launcher/haproxy/haproxy " in start
        assert "CRYPTOCAST_HAPROXY=$(" in start
    environ = {"RAY_worker_niceness": "5"}
    apply_ray_serve_env(environ)  # an operator's value wins; the rest are filled in
    assert environ == {**RAY_SERVE_ENV, **LOCAL_ONLY_ENV, **haproxy_env(), "RAY_worker_niceness": "5"}
    assert Path(environ["CRYPTOCAST_HAPROXY"]).is_file()
    without = {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    apply_ray_serve_env(without)
    assert "RAY_SERVE_HAPROXY_BINARY_PATH" not in without


def test_cluster_nodes_announce_their_own_address_and_keep_haproxys_listeners_on_it(tmp_path) -> None:
    """What several machines need (README, "Serving from several machines"), run as each node's
    shell runs it: Ray started on the node's private address (HAProxy on another node reaches
    this node's API replicas there), HAProxy's metrics and stats on that address alone, the
    replicas bound on every interface (serve_config's host) and the service's port open."""
    import os
    import subprocess
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "cluster.yaml").read_text())
    serve = yaml.safe_load((root / "serve_app" / "serve_config.yaml").read_text())
    assert serve["http_options"]["host"] == "0.0.0.0" and serve["proxy_location"] == "EveryNode"
    rules = config["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(serve["http_options"]["port"],) * 2]
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text("#!/bin/sh\necho /usr/sbin/haproxy\n")
    (bin_dir / "ray").write_text("#!/bin/sh\necho \"$CRYPTOCAST_HAPROXY_HOST|$CRYPTOCAST_HAPROXY|$*\"\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    node_ip = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout.split()[0]
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in config[key] if "ray start" in c)
        out = subprocess.run(["bash", "-c", start], capture_output=True, text=True, check=True,
                             env={**os.environ, "HOME": str(tmp_path), "RAY_HEAD_IP": "10.0.0.1"}).stdout
        host, binary, args = out.strip().split("|")
        assert (host, binary) == (node_ip, "/usr/sbin/haproxy"), (key, out)
        assert f"--node-ip-address={node_ip}" in args.split(), (key, args)


def test_haproxy_starts_with_the_clients_address_passed_on(tmp_path) -> None:
    """The wrapper Ray starts as HAProxy adds `option forwardfor` to the configuration Ray wrote,
    once, and runs the real binary with the same arguments."""
    import os
    import subprocess

    from launcher.ray_env import HAPROXY_WRAPPER

    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("global\n    maxconn 10\ndefaults\n    mode http\nfrontend f\n    bind :1\n")
    env = {**os.environ, "CRYPTOCAST_HAPROXY": "/bin/echo"}
    for _ in range(2):  # a reload runs it again on the same file
        out = subprocess.run([str(HAPROXY_WRAPPER), "-db", "-f", str(cfg), "-sf", "12"], env=env,
                             capture_output=True, text=True, check=True).stdout
        assert out.split() == ["-db", "-f", str(cfg), "-sf", "12"]
    assert cfg.read_text() == ("global\n    maxconn 10\ndefaults\n    option forwardfor\n    mode http\n"
                               "frontend f\n    bind :1\n")
    # SERVE_HOST: the Prometheus frontend and the stats page, bound to every interface by Ray's
    # template, listen there alone; the ingress' own bind line is left as Ray wrote it
    listeners = tmp_path / "listeners.cfg"
    listeners.write_text("frontend prometheus\n    bind :9101\nfrontend http_frontend\n    bind 127.0.0.1:8000\n"
                         "listen stats\n  bind *:8404\n")
    for _ in range(2):
        subprocess.run([str(HAPROXY_WRAPPER), "-f", str(listeners)], env={**env, "CRYPTOCAST_HAPROXY_HOST": "127.0.0.1"},
                       capture_output=True, text=True, check=True)
    assert listeners.read_text() == ("frontend prometheus\n    bind 127.0.0.1:9101\nfrontend http_frontend\n"
                                     "    bind 127.0.0.1:8000\nlisten stats\n  bind 127.0.0.1:8404\n")
    # a cluster node: the ingress on every interface (serve_config's 0.0.0.0 is `*`) stays there,
    # the two listeners move to the node's own address, on the ports the environment names
    node = tmp_path / "node.cfg"
    node.write_text("frontend prometheus\n    bind :9201\nfrontend http_frontend\n    bind *:8000\n"
                    "listen stats\n  bind *:8504\n")
    subprocess.run([str(HAPROXY_WRAPPER), "-f", str(node)], capture_output=True, text=True, check=True,
                   env={**env, "CRYPTOCAST_HAPROXY_HOST": "10.0.3.7", "RAY_SERVE_HAPROXY_METRICS_PORT": "9201",
                        "RAY_SERVE_HAPROXY_STATS_PORT": "8504"})
    assert node.read_text() == ("frontend prometheus\n    bind 10.0.3.7:9201\nfrontend http_frontend\n"
                                "    bind *:8000\nlisten stats\n  bind 10.0.3.7:8504\n")
    missing = subprocess.run([str(HAPROXY_WRAPPER), "-f", str(cfg)], env={"PATH": os.environ["PATH"]},
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "CRYPTOCAST_HAPROXY" in missing.stderr


def test_serve_config_is_a_valid_serve_deploy_file() -> None:
    from pathlib import Path

    import yaml
    from ray.serve.schema import ServeDeploySchema

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "serve_app" / "serve_config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(raw)
    app = schema.applications[0]
    assert app.import_path == "serve_app.deployments:app"
    names = {d.name for d in app.deployments}
    assert names == {"Api", "forecaster_1h", "forecaster_4h", "forecaster_1d", "forecaster_1w", "forecaster_1m",
                     "alert_scanner", "live_stream"}


def test_the_api_ingress_never_imports_torch() -> None:
    """The ingress and the registry reader load model kinds only when an artifact needs them."""
    import subprocess
    import sys

    code = ("import sys, serve_app.app, serve_app.wiring, serve_app.deployments, serve_app.active_models, "
            "training.artifact; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_the_readme_configuration_table_names_every_variable_the_settings_read() -> None:
    """README.md's table, first column, against `config.VARIABLES` (made from the settings'
    fields): no variable read without a row, no row for a variable nothing reads."""
    import re

    from config import TIERS, VARIABLES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    named: set[str] = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            for name in re.findall(r"`([A-Z][A-Z0-9_<>]*)`", row.split(" | ")[0]):
                named.update(name.replace("<TIER>", tier.upper()) for tier in TIERS) if "<TIER>" in name \
                    else named.add(name)
    outside = {"RAY_ADDRESS"}  # read by Ray itself, documented with the settings
    assert sorted(set(VARIABLES) - named) == []
    assert sorted(named - set(VARIABLES) - outside) == []
