"""The cluster manifests under deploy/ stay in step with the code (docs/scale.md, "Deploying").

Nothing here applies them (no Kubernetes in the unit lane): every YAML file must parse, and the
fields that tie the pieces together must agree with each other and with the project: the Ray
cluster's groups and Service, the one image everywhere, the variable names poolsieve and
botocore read, and the instance settings of pipelines/dagster.yaml restated for Helm.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import botocore
import pytest
import yaml

from tests.repo import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
#: where poolsieve reads its POOLSIEVE_* variables
CODE_ROOTS = [REPO_ROOT / "poolsieve", REPO_ROOT / "pipelines", REPO_ROOT / "assets"]
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


def _documents() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in _yaml_files() for doc in yaml.safe_load_all(path.read_text())]


def _one(kind: str) -> dict:
    found = [doc for _, doc in _documents() if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} under deploy/, found {len(found)}"
    return found[0]


def _helm_values() -> dict:
    return yaml.safe_load((DEPLOY / "dagster" / "values.yaml").read_text())


def _raycluster_pods(cluster: dict) -> dict[str, dict]:
    """Pod spec per group: ``head`` and each worker group's name."""
    spec = cluster["spec"]
    pods = {"head": spec["headGroupSpec"]["template"]["spec"]}
    pods |= {g["groupName"]: g["template"]["spec"] for g in spec["workerGroupSpecs"]}
    return pods


def _env_names(node) -> set[str]:
    """Every environment variable a manifest sets: ConfigMap keys, ``env`` entries, ``NAME=value``
    strings (the run launcher's envVars)."""
    names: set[str] = set()
    if isinstance(node, dict):
        if node.get("kind") == "ConfigMap":
            names |= set(node.get("data", {}))
        if isinstance(node.get("name"), str) and ("value" in node or "valueFrom" in node):
            names.add(node["name"])
        for value in node.values():
            names |= _env_names(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str) and re.match(r"^[A-Z_][A-Z0-9_]*=", item):
                names.add(item.split("=", 1)[0])
            else:
                names |= _env_names(item)
    return names


def _code_text() -> str:
    return "\n".join(p.read_text() for root in CODE_ROOTS for p in sorted(root.rglob("*.py")))


def _pin(requirement: str) -> str:
    """The version pyproject.toml pins for ``requirement`` (a name, extras ignored)."""
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    listed = deps["dependencies"] + [
        d for extra in deps["optional-dependencies"].values() for d in extra
    ]
    for dep in listed:
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)$", dep)
        if match and match.group(1).lower() == requirement:
            return match.group(3)
    raise AssertionError(f"pyproject.toml pins no {requirement}")


def test_deploy_holds_the_documented_manifests():
    names = {str(p.relative_to(DEPLOY)) for p in _yaml_files()}
    assert {"kuberay/raycluster.yaml", "dagster/values.yaml", "poolsieve-env.yaml"} <= names


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_manifest_parses_to_mappings(path):
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs, f"{path.relative_to(REPO_ROOT)} is empty"
    for n, doc in enumerate(docs):
        assert isinstance(doc, dict), f"{path.relative_to(REPO_ROOT)} document {n} is not a mapping"
        if "kind" in doc:
            assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), (
                f"{path.relative_to(REPO_ROOT)} document {n} ({doc['kind']}) lacks apiVersion or name"
            )


def test_raycluster_has_a_head_a_cpu_group_and_a_gpu_group():
    cluster = _one("RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    pods = _raycluster_pods(cluster)
    assert set(pods) == {"head", "cpu", "gpu"}, sorted(pods)
    resources = {g: pod["containers"][0]["resources"] for g, pod in pods.items()}
    gpus = {k: resources["gpu"][k].get("nvidia.com/gpu") for k in ("requests", "limits")}
    assert gpus["limits"] and int(gpus["limits"]) > 0 and gpus["requests"] == gpus["limits"], gpus
    for group in ("head", "cpu"):
        assert "nvidia.com/gpu" not in resources[group]["limits"], group
    for group in cluster["spec"]["workerGroupSpecs"]:
        counts = group["minReplicas"], group["replicas"], group["maxReplicas"]
        assert counts[0] <= counts[1] <= counts[2], (
            f"{group['groupName']}: min/replicas/max {counts}"
        )


def test_raycluster_start_params_are_strings_and_its_ports_are_open():
    cluster = _one("RayCluster")
    head = cluster["spec"]["headGroupSpec"]
    groups = [head] + cluster["spec"]["workerGroupSpecs"]
    for group in groups:  # KubeRay takes rayStartParams as a map of strings
        bad = {k: v for k, v in group["rayStartParams"].items() if not isinstance(v, str)}
        assert not bad, f"rayStartParams not quoted: {bad}"
    ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert {6379, 8265, 10001} <= ports, sorted(ports)


def test_one_image_everywhere_and_the_ray_version_pyproject_pins():
    cluster = _one("RayCluster")
    images = {c["image"] for pod in _raycluster_pods(cluster).values() for c in pod["containers"]}
    deployment = _helm_values()["dagster-user-deployments"]["deployments"][0]["image"]
    images.add(f"{deployment['repository']}:{deployment['tag']}")
    assert len(images) == 1, f"several images: {sorted(images)}"
    ray = _pin("ray")
    assert cluster["spec"]["rayVersion"] == ray
    base = re.search(
        r"^ARG RAY_IMAGE=rayproject/ray:(\S+)$", (DEPLOY / "Dockerfile").read_text(), re.M
    )
    assert base, "deploy/Dockerfile names no rayproject/ray base image"
    assert base.group(1).startswith(f"{ray}-py311"), base.group(1)


def test_dockerfile_installs_the_dagster_libraries_release_pyproject_pins():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"dagster-k8s=={_pin('dagster-postgres')}" in dockerfile
    assert "'.[postgres]'" in dockerfile


def test_every_pod_gets_the_lake_settings_and_the_instance_password():
    config_map = _one("ConfigMap")["metadata"]["name"]
    secret = _helm_values()["global"]["postgresqlSecretName"]
    for group, pod in _raycluster_pods(_one("RayCluster")).items():
        container = pod["containers"][0]
        sources = container["envFrom"]
        assert {"name": config_map} in [s.get("configMapRef") for s in sources], group
        assert {"name": "poolsieve-s3"} in [s.get("secretRef") for s in sources], group
        password = {e["name"]: e for e in container["env"]}["DAGSTER_PG_PASSWORD"]
        assert password["valueFrom"]["secretKeyRef"] == {
            "name": secret,
            "key": "postgresql-password",
        }


def test_config_map_values_are_strings_and_the_lake_is_on_s3():
    data = _one("ConfigMap")["data"]
    bad = {k: v for k, v in data.items() if not isinstance(v, str)}
    assert not bad, f"ConfigMap values must be strings: {bad}"
    assert data["POOLSIEVE_LAKE"].startswith("s3://")


def test_dagster_points_at_the_ray_head_service():
    cluster = _one("RayCluster")
    expected = f"ray://{cluster['metadata']['name']}-head-svc:10001"
    values = _helm_values()
    deployment = values["dagster-user-deployments"]["deployments"][0]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["POOLSIEVE_RAY_ADDRESS"] == expected
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert f"POOLSIEVE_RAY_ADDRESS={expected}" in launcher["envVars"]
    config_map = {"name": _one("ConfigMap")["metadata"]["name"]}
    for target in (deployment, launcher):
        assert config_map in target["envConfigMaps"]
        assert {"name": "poolsieve-s3"} in target["envSecrets"]


def test_the_code_location_is_the_one_workspace_yaml_loads():
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    args = _helm_values()["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArgs"]
    assert args == ["--module-name", module]


def test_helm_values_restate_pipelines_dagster_yaml():
    shipped = yaml.safe_load((REPO_ROOT / "pipelines" / "dagster.yaml").read_text())
    daemon = _helm_values()["dagsterDaemon"]
    limits = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert limits == shipped["run_queue"]["tag_concurrency_limits"]
    monitoring = daemon["runMonitoring"]
    assert monitoring["enabled"] == shipped["run_monitoring"]["enabled"]
    assert monitoring["startTimeoutSeconds"] == shipped["run_monitoring"]["start_timeout_seconds"]
    assert monitoring["pollIntervalSeconds"] == shipped["run_monitoring"]["poll_interval_seconds"]
    assert _helm_values()["telemetry"]["enabled"] == shipped["telemetry"]["enabled"]


def test_every_variable_set_is_one_that_is_read():
    """A renamed variable would otherwise be set here and silently ignored there."""
    names = set().union(*(_env_names(doc) for _, doc in _documents()))
    assert all(ENV_NAME.match(n) for n in names), sorted(names)
    code = _code_text()
    unread = sorted(n for n in names if n.startswith("POOLSIEVE_") and f'"{n}"' not in code)
    assert not unread, f"set under deploy/ but read nowhere in poolsieve: {unread}"
    botocore_text = "\n".join(p.read_text() for p in Path(botocore.__file__).parent.glob("*.py"))
    unknown = sorted(n for n in names if n.startswith("AWS_") and f"'{n}'" not in botocore_text)
    assert not unknown, f"AWS variables botocore does not read: {unknown}"
    assert {"POOLSIEVE_LAKE", "POOLSIEVE_RAY_ADDRESS", "DAGSTER_PG_PASSWORD"} <= names
