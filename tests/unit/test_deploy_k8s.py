"""deploy/: the Dockerfile passes hadolint; the Kubernetes manifest validates against the schemas
of every Kubernetes version in support (strict: no unknown field), meets Pod Security
"restricted", passes checkov (offline, from its own venv: ``make tools``) but for the skips
deploy/checkov.yaml gives reasons for, and agrees with the image and with `gitreg serve`'s
options. Each checker is also shown a broken input, so that a pass means something."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
MANIFEST = DEPLOY / "kubernetes" / "gitreg-serve.yaml"
CHECKOV_CONFIG = DEPLOY / "checkov.yaml"
TOOLS = Path(os.environ.get("GITREG_TOOLS_VENV") or ROOT / ".venv-tools")
# Kubernetes minor versions in support: upstream's three newest and the older ones that
# managed services still run under extended support (kubernetes-validate ships their schemas).
SUPPORTED_K8S = ("1.32", "1.33", "1.34", "1.35", "1.36", "1.37")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe").load_all(path.read_text()) if d]


def _deployment() -> dict[str, Any]:
    return next(d for d in _docs(MANIFEST) if d["kind"] == "Deployment")


def _bin(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed in this venv: run make .venv/.installed"
    return found


# -- Pod Security Standards, "restricted" (v1.25+: baseline + restricted) --------------------------
PSS_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
    "secret",
}  # fmt: skip
BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What in a pod spec breaks the Pod Security "restricted" profile (which includes
    "baseline"), in the words of the Kubernetes docs' controls; [] when it meets it."""
    out: list[str] = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"host namespaces: {key}")
    for vol in pod.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if "hostPath" in kinds:
            out.append(f"hostPath volume {vol['name']}")
        if not kinds <= PSS_VOLUME_TYPES:
            out.append(f"volume {vol['name']} of type {sorted(kinds - PSS_VOLUME_TYPES)}")
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append(f"unsafe sysctl {sysctl.get('name')}")
    containers = [
        *(pod.get("initContainers") or []),
        *(pod.get("containers") or []),
        *(pod.get("ephemeralContainers") or []),
    ]
    if not containers:
        out.append("no containers")
    for ctx_owner, ctx in [("pod", psc)] + [(c["name"], c.get("securityContext") or {}) for c in containers]:
        if (ctx.get("seLinuxOptions") or {}).get("type") not in (
            None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t",
        ):  # fmt: skip
            out.append(f"{ctx_owner}: SELinux type")
        if (ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
            out.append(f"{ctx_owner}: AppArmor Unconfined")
        if ctx.get("runAsUser") == 0:
            out.append(f"{ctx_owner}: runAsUser 0")
    for c in containers:
        name, ctx = c["name"], c.get("securityContext") or {}
        if ctx.get("privileged"):
            out.append(f"{name}: privileged")
        if ctx.get("procMount", "Default") != "Default":
            out.append(f"{name}: procMount")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{name}: hostPort")
        if ctx.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation is not false")
        if not (
            ctx.get("runAsNonRoot") is True or (psc.get("runAsNonRoot") is True and "runAsNonRoot" not in ctx)
        ):
            out.append(f"{name}: runAsNonRoot is not true")
        seccomp = (ctx.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile {seccomp or 'unset'}")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities do not drop ALL")
        added = set(caps.get("add") or [])
        if added - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: capabilities add {sorted(added - {'NET_BIND_SERVICE'})}")
        if added - BASELINE_CAPS:
            out.append(f"{name}: capabilities beyond baseline")
    return out


def test_every_pod_meets_pod_security_restricted_and_its_namespace_enforces_it() -> None:
    docs = _docs(MANIFEST)
    pods = [d["spec"]["template"]["spec"] for d in docs if "template" in d.get("spec", {})]
    assert pods
    for pod in pods:
        assert restricted_violations(pod) == []
        assert pod.get("automountServiceAccountToken") is False
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        namespace["metadata"]["name"]
    }


def test_the_restricted_check_catches_each_breach() -> None:
    """The checker on the manifest's own pod, broken one control at a time."""
    good = _deployment()["spec"]["template"]["spec"]
    breaches = {
        "allowPrivilegeEscalation": lambda p: p["containers"][0]["securityContext"].pop(
            "allowPrivilegeEscalation"
        ),
        "runAsNonRoot": lambda p: (
            p["securityContext"].pop("runAsNonRoot"),
            p["containers"][0]["securityContext"].pop("runAsNonRoot"),
        ),
        "seccompProfile": lambda p: p["securityContext"].pop("seccompProfile"),
        "drop ALL": lambda p: p["containers"][0]["securityContext"].pop("capabilities"),
        "capabilities add": lambda p: p["containers"][0]["securityContext"]["capabilities"].update(
            add=["SYS_ADMIN"]
        ),
        "hostPath": lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "host namespaces": lambda p: p.update(hostNetwork=True),
        "privileged": lambda p: p["containers"][0]["securityContext"].update(privileged=True),
        "runAsUser 0": lambda p: p["securityContext"].update(runAsUser=0),
        "hostPort": lambda p: p["containers"][0]["ports"][0].update(hostPort=8000),
        "init container": lambda p: p.update(initContainers=[{"name": "init", "image": "x"}]),
    }
    for what, breach in breaches.items():
        pod = json.loads(json.dumps(good))
        breach(pod)
        assert restricted_violations(pod), f"{what} went unnoticed"


# -- schemas ----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", SUPPORTED_K8S)
def test_the_manifest_validates_strictly_against_the_schemas_of(version: str) -> None:
    import kubernetes_validate

    docs = _docs(MANIFEST)
    assert {d["kind"] for d in docs} >= {
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "Service",
        "NetworkPolicy",
    }
    for doc in docs:
        assert kubernetes_validate.validate(doc, f"{version}.0", strict=True) == version


def test_strict_schema_validation_refuses_an_unknown_field() -> None:
    import kubernetes_validate

    doc = _deployment()
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, f"{SUPPORTED_K8S[-1]}.0", strict=True)


# -- what the manifest says, against the image and gitreg serve -------------------------------
def test_probes_image_and_token_handling() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/ready"  # /health is 200 at once: it waited for nothing
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800  # a big first pull
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", c["image"])
    args = c["args"]
    repo = next(a.split("=", 1)[1] for a in args if a.startswith("--repo="))
    assert "@" not in repo and "$(" not in " ".join(args)  # no token in argv, whatever expands
    token_env = next(a.split("=", 1)[1] for a in args if a.startswith("--git-token-env="))
    assert token_env == "GIT_TOKEN" and any("secretRef" in e for e in c["envFrom"])
    ctx = c["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True


def test_every_option_in_the_manifest_is_one_gitreg_serve_has() -> None:
    from typer.main import get_command

    from gitreg.cli import app

    serve = get_command(app).commands["serve"]  # type: ignore[attr-defined]
    known = {opt for p in serve.params for opt in p.opts}
    args = _deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
    used = {a.split("=", 1)[0] for a in args}
    assert used and used <= known, used - known


def _dockerfile() -> tuple[str, dict[str, str], list[str], str]:
    """(USER, ENV, VOLUME paths, ENTRYPOINT) of deploy/Dockerfile."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    user = re.search(r"^USER\s+(\S+)", text, re.M)
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.+)$", text, re.M):
        env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    volumes = json.loads(re.search(r"^VOLUME\s+(\[.*\])", text, re.M).group(1))  # type: ignore[union-attr]
    entry = re.search(r"^ENTRYPOINT\s+(\[.*\])", text, re.M).group(1)  # type: ignore[union-attr]
    assert user is not None
    return user.group(1), env, volumes, entry


def test_the_image_runs_as_the_manifests_user_with_a_read_only_root() -> None:
    user, env, volumes, entry = _dockerfile()
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 10000 and gid.isdigit()
    pod = _deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid) and pod["securityContext"]["runAsGroup"] == int(
        gid
    )
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert set(volumes) == mounts
    # everything gitreg serve, git and DVC write lands on a mounted (writable) path
    for var in ("HOME", "TMPDIR", "XDG_CACHE_HOME"):
        assert any(env[var] == m or env[var].startswith(m + "/") for m in mounts), var
    cache = json.loads(entry)[json.loads(entry).index("--cache") + 1]
    assert cache in mounts
    kinds = {v["name"]: set(v) - {"name"} for v in pod["volumes"]}
    assert all(k == {"emptyDir"} for k in kinds.values())


# -- hadolint ---------------------------------------------------------------------------------
def _hadolint(path: Path, config: Path) -> tuple[int, list[dict[str, Any]]]:
    proc = subprocess.run(
        [_bin("hadolint"), "--config", str(config), "--no-color", "-f", "json", "-t", "style", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout or "[]")


def test_the_dockerfile_passes_hadolint(tmp_path: Path) -> None:
    config = tmp_path / "hadolint.yaml"  # ours alone: no user or project config changes the rules
    config.write_text("failure-threshold: style\n")
    assert _hadolint(DOCKERFILE, config) == (0, [])
    lines = DOCKERFILE.read_text().splitlines()
    ignores = [i for i, line in enumerate(lines) if re.match(r"#\s*hadolint ignore=", line)]
    for i in ignores:  # each inline ignore says why on the comment line above it
        assert lines[i - 1].startswith("#") and len(lines[i - 1]) > 30, lines[i]
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y git\nUSER gitreg\n")
    rc, found = _hadolint(bad, config)
    assert rc != 0 and {"DL3006", "DL3008", "DL3009", "DL3015"} <= {f["code"] for f in found}


# -- checkov ----------------------------------------------------------------------------------
def _checkov() -> str:
    exe = TOOLS / "bin" / "checkov"
    if not exe.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{exe} is missing: `make test` creates it (make tools)")
        pytest.skip(f"checkov's venv is not there: run `make tools` (creates {TOOLS})")
    return str(exe)


def test_checkov_passes_the_dockerfile_and_the_manifest_and_catches_a_bad_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: x}\n"
        "spec:\n  containers:\n    - {name: c, image: 'nginx:1', securityContext: {privileged: true}}\n"
    )
    proc = subprocess.run(
        [_checkov(), "--config-file", str(CHECKOV_CONFIG), "-o", "json",
         "-f", str(DOCKERFILE), "-f", str(MANIFEST), "-f", str(bad)],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=300,
    )  # fmt: skip
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_type = {r["check_type"]: r for r in reports}
    assert set(by_type) == {"kubernetes", "dockerfile"}, proc.stderr[-2000:]
    failed = [
        (c["check_id"], Path(c["file_path"]).name) for r in reports for c in r["results"]["failed_checks"]
    ]
    ours = [f for f in failed if f[1] != bad.name]
    assert ours == []
    assert {"CKV_K8S_16", "CKV_K8S_20"} <= {cid for cid, name in failed if name == bad.name}
    passed = {c["check_id"] for r in reports for c in r["results"]["passed_checks"]}
    # the findings of issue 12, each now a passing check
    assert {
        "CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_28", "CKV_K8S_31", "CKV_K8S_37", "CKV_K8S_38", "CKV_K8S_43",
        "CKV_K8S_40", "CKV2_K8S_6", "CKV_DOCKER_3", "CKV_DOCKER_2",
    } <= passed  # fmt: skip
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)


def test_every_checkov_skip_gives_its_reason() -> None:
    lines = [ln for ln in CHECKOV_CONFIG.read_text().splitlines() if re.match(r"\s+- CKV", ln)]
    config = YAML(typ="safe").load(CHECKOV_CONFIG.read_text())
    assert len(lines) == len(config["skip-check"]) > 0
    for line in lines:
        check, _, reason = line.partition("#")
        assert len(reason.strip()) > 40, check


# -- a read-only root, for real ----------------------------------------------------------------
# In a mount namespace of its own (unshare -m, as root): every file system the test's files are
# on is remounted read-only, then tmpfs goes where the manifest mounts emptyDirs (the image's
# /tmp: HOME, TMPDIR; the --cache folder). A write anywhere else fails with EROFS.
_READ_ONLY = r"""
rw=$1 cache=$2 probe=$3; shift 3
for m in / "$(findmnt -n -o TARGET -T "$probe")"; do mount -o remount,bind,ro "$m" || exit 96; done
if touch "$probe/.write-probe" 2>/dev/null; then echo "the root is not read-only"; exit 97; fi
mount -t tmpfs tmpfs "$rw" && mount -t tmpfs tmpfs "$cache" || exit 98
exec "$@"
"""


def _can_remount_read_only() -> bool:
    if shutil.which("unshare") is None or shutil.which("findmnt") is None:
        return False
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -o remount,bind,ro /"]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


@pytest.mark.slow
def test_gitreg_serve_serves_on_a_read_only_root(
    tmp_path: Path, registry: Any, bare_remote: Path, make_bundle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image's environment on a read-only root with writable /tmp and cache only: the
    agent clones, pulls from DVC (whose site cache would be /var/tmp/dvc but for gitreg serve's
    default in its cache) and loads, and /predict answers."""
    if not _can_remount_read_only():
        if os.environ.get("CI"):
            pytest.fail("CI runs as root: unshare -m and a read-only remount should work")
        pytest.skip("needs root (a mount namespace and a read-only remount)")
    from gitreg.testing.cli import gitreg_command
    from gitreg.testing.repos import promote_pushed, register_pushed
    from gitreg.testing.server import start_serve

    version = register_pushed(registry, make_bundle(1), "v2025-07-01--10h00")
    promote_pushed(registry, version)
    rw, cache = tmp_path / "rw-tmp", tmp_path / "cache"
    rw.mkdir()
    cache.mkdir()
    _, image_env, _, _ = _dockerfile()
    env = {k: v.replace("/tmp", str(rw), 1) if v.startswith("/tmp") else v for k, v in image_env.items()}
    monkeypatch.delenv("DVC_SITE_CACHE_DIR", raising=False)
    command = ["unshare", "-m", "--propagation", "private", "sh", "-c", _READ_ONLY, "sh"]
    server = start_serve(
        bare_remote, "--threads", "1",
        cache=cache, log=tmp_path / "serve.log", env=env, ready=False,
        command=[*command, str(rw), str(cache), str(tmp_path), *gitreg_command()],
    )  # fmt: skip
    try:
        server.wait_ready(120)
        assert server.model()["served"] == version
        answer = server.predict()
        assert answer.status_code == 200 and answer.json()["version"] == version, answer.text
    finally:
        server.kill()
    assert not list(cache.iterdir()) and not list(rw.iterdir())  # it all went to the tmpfs mounts
    assert "Read-only file system" not in (tmp_path / "serve.log").read_text()
