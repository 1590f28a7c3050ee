"""``make test-containers``: the rendered chart's workloads as podman containers, then the smoke.

How the cluster's parts are played (the rest is said in docs/deploy.md):
- Pods: one container each, named after the pod, ``--hostname`` the pod name; image, command,
  args, env and securityContext exactly as rendered (see manifests.py). ``--read-only`` without
  podman's extra tmpfs mounts, so only the manifest's emptyDirs (tmpfs) are writable; PVCs and
  StatefulSet claims are named volumes (``:U`` stands in for fsGroup).
- Service endpoints: every Service has a network of its own. A pod joins the network of every
  Service that does not select it (as a client), and the network of a Service that selects it,
  under the Service's name, only while its readiness probe passes — aardvark-dns then answers the
  Service name with the ready pods only, as endpoints do. Its own connections never ride on the
  network that is joined and left, so readiness changes never cut them.
- kubelet: probes (startup, readiness, liveness: httpGet from the host to the pod's address, exec
  through ``podman exec``, tcpSocket) on their periods and thresholds; an exited or unhealthy
  container is restarted (restartPolicy Always), and is out of its Services until ready again.
  A pod keeps its addresses (IP and MAC on every network) through restarts and readiness
  changes, as a pod keeps its network namespace while kubelet restarts its container: clients'
  pooled connections then fail fast (a reset from the new container) or resume, instead of
  hanging on an address nobody holds (with new addresses, every stale connection in a Redis
  pool cost its client a timeout, and requests after a Redis restart took over 30 s).
- Ingress: an NGINX container (make base-images' image, uid 10001, read-only) with the Ingress's
  affinity annotations and the ready gateway pods as upstreams, re-read on every change like the
  ingress-nginx controller; the only published port, on 127.0.0.1.
Everything the run creates carries the label ``ragfleet.test-containers`` and is removed at the
end, on failure and on Ctrl-C too; a previous run's leftovers are removed first.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import signal
import socket
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from ragfleet.containers.base import BaseImages
from ragfleet.containers.engine import Engine, EngineError
from ragfleet.containers.manifests import (
    VALUES,
    ContainerSpec,
    IngressSpec,
    Plan,
    PodSpec,
    Probe,
    ServiceSpec,
    Translator,
    Unsupported,
    render,
)

log = logging.getLogger(__name__)

LABEL = "ragfleet.test-containers"
PREFIX = "rfct"
NAMESPACE = "ragfleet"
RELEASE = "ragfleet"
READY_TIMEOUT_S = 420


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PodState:
    spec: PodSpec
    container: str
    ip: str = ""
    addresses: dict[str, tuple[str, str]] = field(default_factory=dict)  # network -> (IP, MAC), kept
    started: bool = False
    ready: bool = False
    restarts: int = 0
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # probe -> (ok run, fail run)
    due: dict[str, float] = field(default_factory=dict)
    running_probes: set[str] = field(default_factory=set)
    started_at: float = 0.0
    held: bool = False  # paused or killed by the smoke on purpose: no restarts meanwhile
    restart_after: float = 0.0  # crash-loop back-off: no restart before this monotonic time

    @property
    def main(self) -> ContainerSpec:
        return self.spec.containers[0]


class Cluster:
    """The pods, their Service networks and the NGINX in front, kept up by a supervisor thread."""

    def __init__(self, engine: Engine, plan: Plan, workdir: Path, run_id: str) -> None:
        self.engine, self.plan, self.workdir, self.run_id = engine, plan, workdir, run_id
        self.pods = {p.name: PodState(p, f"{PREFIX}-{p.name}") for p in plan.pods}
        self.pods_net = f"{PREFIX}-pods"
        self.edge_net = f"{PREFIX}-edge"
        self.svc_nets = {s.name: f"{PREFIX}-svc-{s.name}" for s in plan.services}
        self.lock = threading.RLock()
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=8)
        self.nginx = f"{PREFIX}-ingress-nginx"
        self.nginx_port = free_port()
        self.nginx_backends: tuple[str, ...] | None = None
        self.events: list[str] = []

    # ---- podman ----
    def podman(self, *args: str, check: bool = True, timeout: float | None = 120) -> str:
        return self.engine.run(*args, check=check, timeout=timeout).stdout

    def leftovers(self) -> dict[str, list[str]]:
        """What carries the run's label: containers, pods, networks, volumes (containers first,
        the order they must go in)."""
        found = {}
        for kind in ("container", "pod", "network", "volume"):
            listing = ["ps", "-a"] if kind == "container" else [kind, "ls"]
            ids = self.podman(*listing, "-q", "--filter", f"label={LABEL}", check=False).split()
            if ids:
                found[kind] = ids
        return found

    def cleanup(self) -> None:
        for kind, ids in self.leftovers().items():
            if kind == "container":
                self.podman("rm", "-f", "-t", "0", *ids, check=False)
            else:
                self.podman(kind, "rm", "-f", *ids, check=False)

    def label(self) -> list[str]:
        return ["--label", f"{LABEL}={self.run_id}"]

    def create_networks(self) -> None:
        for net in [self.pods_net, *self.svc_nets.values()]:
            # --internal: nothing in the run reaches past this machine's own container networks.
            self.podman("network", "create", "--internal", *self.label(), net)
        self.podman("network", "create", *self.label(), self.edge_net)

    # ---- pods ----
    def image(self, ref: str) -> str:
        local = f"localhost/{ref}"
        if (
            "." not in ref.split("/")[0]
            and not ref.startswith("localhost/")
            and self.engine.image_exists(local)
        ):
            return local
        if not self.engine.image_exists(ref):
            raise EngineError(f"image {ref} is not built: run `make base-images images` first")
        return ref

    def run_args(self, state: PodState) -> list[str]:
        pod, c = state.spec, state.main
        if c.run_as_non_root and c.user in (None, 0):
            raise Unsupported(f"{pod.name}: runAsNonRoot without a non-zero runAsUser")
        aliases = [pod.name] + ([f"{pod.name}.{pod.subdomain}"] if pod.subdomain else [])
        options = {self.pods_net: [f"alias={a}" for a in aliases]}
        options |= {net: [] for svc, net in self.svc_nets.items() if not self._service(svc).selects(pod)}
        networks = []
        for net, opts in options.items():
            if net in state.addresses:
                ip, mac = state.addresses[net]
                opts = [*opts, f"ip={ip}", *([f"mac={mac}"] if mac else [])]
            networks.append(f"{net}:{','.join(opts)}" if opts else net)
        args = [
            "run",
            "-d",
            "--name",
            state.container,
            "--hostname",
            pod.name,
            *self.label(),
            "--pull",
            "never",
        ]
        for network in networks:
            args += ["--network", network]
        args += ["--stop-timeout", str(pod.grace_s)]
        if c.user is not None:
            args += ["--user", f"{c.user}:{c.group}" if c.group is not None else str(c.user)]
        if c.read_only_root:
            args += ["--read-only", "--read-only-tmpfs=false"]
        if c.no_new_privileges:
            args += ["--security-opt", "no-new-privileges"]
        for cap in c.cap_drop:
            args += ["--cap-drop", cap]
        for cap in c.cap_add:
            args += ["--cap-add", cap]
        if c.memory_limit:
            args += ["--memory", c.memory_limit]
        if c.cpu_limit:
            args += ["--cpus", c.cpu_limit]
        for mount in c.mounts:
            volume = pod.volumes.get(mount.volume)
            if volume is None:
                raise Unsupported(f"{pod.name}: mount of unknown volume {mount.volume}")
            if volume.kind == "tmpfs":
                if mount.sub_path:
                    raise Unsupported(f"{pod.name}: subPath on an emptyDir")
                size = f",size={volume.size.replace('i', '').lower()}" if volume.size else ""
                args += ["--tmpfs", f"{mount.path}:rw,mode=1777{size}"]
            elif volume.kind == "named":
                name = f"{PREFIX}-{volume.claim}"
                if not self.podman("volume", "ls", "-q", "--filter", f"name=^{name}$", check=False).strip():
                    self.podman("volume", "create", *self.label(), name)
                args += ["-v", f"{name}:{mount.path}:U" + (",ro" if mount.read_only else "")]
            else:  # ConfigMap/Secret files: written to the run's directory, mounted read-only
                src = self.workdir / "volumes" / pod.name / volume.name
                src.mkdir(parents=True, exist_ok=True)
                for key, data in volume.files.items():
                    (src / key).write_bytes(data)
                    (src / key).chmod(0o444)
                target = src / mount.sub_path if mount.sub_path else src
                args += ["-v", f"{target}:{mount.path}:ro"]
        for key, value in c.env.items():
            args += ["--env", f"{key}={value}"]
        if c.command:
            args += ["--entrypoint", json.dumps(c.command)]
        args.append(self.image(c.image))
        args += c.args or []
        return args

    def _service(self, name: str) -> ServiceSpec:
        return next(s for s in self.plan.services if s.name == name)

    def start_pod(self, state: PodState) -> None:
        for init in state.spec.init_containers:
            raise Unsupported(f"{state.spec.name}: init container {init.name} is not supported yet")
        self.podman(*self.run_args(state))
        self._after_start(state)

    def _after_start(self, state: PodState) -> None:
        inspect = json.loads(self.podman("inspect", state.container))[0]
        self._remember_addresses(state, inspect)
        state.ip = state.addresses[self.pods_net][0]
        state.started, state.ready, state.counts = False, False, {}
        now = time.monotonic()
        state.started_at = now
        state.due = {k: now + p.initial_delay_s for k, p in state.main.probes.items()}

    def running(self, state: PodState) -> bool:
        out = self.podman("inspect", "--format", "{{.State.Running}}", state.container, check=False)
        return out.strip() == "true"

    def restart(self, state: PodState, why: str, *, force: bool = False) -> None:
        """A new container from the same arguments, as kubelet makes one: ``podman restart`` would
        keep the old one, whose tmpfs mounts (the pod's emptyDirs) it does not bring back.
        ``force``: a restart the smoke asks for, never put off by the crash-loop back-off."""
        now = time.monotonic()
        if now < state.restart_after and not force:
            return
        self.set_ready(state, False)
        state.restarts += 1
        # kubelet's CrashLoopBackOff, scaled down for a smoke run: 1 s, 2 s, 4 s … at most 30 s.
        state.restart_after = now + min(2.0 ** (state.restarts - 1), 30.0)
        self.note(f"{state.spec.name}: restarted ({why}), restart #{state.restarts}")
        self.podman("rm", "-f", "-t", "2", state.container, check=False)
        self.podman(*self.run_args(state))
        self._after_start(state)

    # ---- probes and endpoints ----
    def probe_once(self, state: PodState, probe: Probe) -> bool:
        try:
            if probe.http_path is not None:
                url = f"http://{state.ip}:{probe.port}{probe.http_path}"
                return 200 <= httpx.get(url, timeout=probe.timeout_s).status_code < 400
            if probe.tcp:
                with socket.create_connection((state.ip, probe.port or 0), timeout=probe.timeout_s):
                    return True
            assert probe.exec_command is not None
            result = self.engine.run(
                "exec", state.container, *probe.exec_command, check=False, timeout=probe.timeout_s + 5
            )
            return result.returncode == 0
        except Exception:  # any failure to answer is a failed probe, as for kubelet
            return False

    def _probe_done(self, state: PodState, kind: str, ok: bool) -> None:
        with self.lock:
            state.running_probes.discard(kind)
            probe = state.main.probes[kind]
            good, bad = state.counts.get(kind, (0, 0))
            good, bad = (good + 1, 0) if ok else (0, bad + 1)
            state.counts[kind] = (good, bad)
            if kind == "startup":
                if ok:
                    state.started = True
                elif bad >= probe.failure_threshold:
                    self.restart(state, "startup probe failed")
            elif kind == "readiness":
                if ok and good >= probe.success_threshold:
                    self.set_ready(state, True)
                elif not ok and bad >= probe.failure_threshold:
                    self.set_ready(state, False)
            elif kind == "liveness" and not ok and bad >= probe.failure_threshold:
                self.restart(state, "liveness probe failed")

    def _probe_finished(self, state: PodState, kind: str, future: Future[bool]) -> None:
        if future.cancelled():  # the run is ending (the pool cancels what has not started)
            return
        self._probe_done(state, kind, future.result())

    def set_ready(self, state: PodState, ready: bool) -> None:
        with self.lock:
            if state.ready == ready:
                return
            state.ready = ready
            self.note(f"{state.spec.name}: {'ready' if ready else 'not ready'}")
            for service in self.plan.services:
                if not service.selects(state.spec):
                    continue
                net = self.svc_nets[service.name]
                if ready:
                    aliases = [
                        service.name,
                        f"{service.name}.{NAMESPACE}",
                        f"{service.name}.{NAMESPACE}.svc.cluster.local",
                    ]
                    alias_args = [a for alias in aliases for a in ("--alias", alias)]
                    self.connect(state, net, alias_args)
                else:
                    self.podman("network", "disconnect", "-f", net, state.container, check=False)
            self.update_nginx()

    @staticmethod
    def _remember_addresses(state: PodState, inspect: dict[str, Any]) -> None:
        for net, settings in (inspect.get("NetworkSettings", {}).get("Networks") or {}).items():
            if settings.get("IPAddress"):
                state.addresses[net] = (settings["IPAddress"], settings.get("MacAddress", ""))

    def connect(self, state: PodState, net: str, alias_args: list[str]) -> None:
        """Join a Service network at the address the pod had there before, if it had one."""
        if net in state.addresses:
            ip, mac = state.addresses[net]
            mac_args = ["--mac-address", mac] if mac else []
            pinned = self.engine.run(
                "network", "connect", "--ip", ip, *mac_args, *alias_args, net, state.container, check=False
            )
            if pinned.returncode == 0:
                return
            # Taken by another container meanwhile: a new address, as a rescheduled pod would get.
            log.warning("%s: %s no longer free on %s: %s", state.spec.name, ip, net, pinned.stderr.strip())
        self.podman("network", "connect", *alias_args, net, state.container, check=False)
        self._remember_addresses(
            state, json.loads(self.podman("inspect", state.container, check=False) or "[{}]")[0]
        )

    def tick(self) -> None:
        now = time.monotonic()
        for state in self.pods.values():
            if state.held:
                continue
            if not self.running(state):
                with self.lock:
                    # Again under the lock: the smoke may have just restarted it itself.
                    if not state.held and not self.running(state):
                        self.restart(state, "container exited")
                continue
            for kind, probe in state.main.probes.items():
                if kind in state.running_probes or now < state.due.get(kind, 0):
                    continue
                if kind != "startup" and "startup" in state.main.probes and not state.started:
                    continue
                if kind == "startup" and state.started:
                    continue
                state.due[kind] = now + probe.period_s
                state.running_probes.add(kind)
                future = self.pool.submit(self.probe_once, state, probe)
                future.add_done_callback(functools.partial(self._probe_finished, state, kind))
            if not state.main.probes.get("readiness") and (
                state.started or "startup" not in state.main.probes
            ):
                self.set_ready(state, True)

    def supervise(self) -> None:
        while not self.stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("supervisor")
            self.stop.wait(0.5)

    def note(self, message: str) -> None:
        self.events.append(message)
        log.info("%s", message)

    # ---- ingress ----
    def ingress(self) -> IngressSpec:
        if len(self.plan.ingresses) != 1:
            raise Unsupported(
                f"{len(self.plan.ingresses)} Ingress paths rendered; the harness fronts exactly one"
            )
        return self.plan.ingresses[0]

    def update_nginx(self) -> None:
        ingress = self.ingress()
        service = self._service(ingress.service)
        backends = tuple(
            sorted(
                f"{s.ip}:{s.main.ports.get(str(ingress.port), ingress.port)}"
                for s in self.pods.values()
                if s.ready and service.selects(s.spec)
            )
        )
        if backends == self.nginx_backends:
            return
        self.nginx_backends = backends
        conf_dir = self.workdir / "nginx"
        conf_dir.mkdir(exist_ok=True)
        staged = conf_dir / "nginx.conf.new"
        staged.write_text(nginx_conf(ingress, backends))
        staged.replace(conf_dir / "nginx.conf")
        if self.podman("ps", "-q", "--filter", f"name=^{self.nginx}$", check=False).strip():
            self.podman("kill", "--signal", "HUP", self.nginx, check=False)
        self.note(f"ingress backends: {', '.join(backends) or 'none'}")

    def start_nginx(self, bases: BaseImages) -> None:
        self.update_nginx()
        self.podman(
            "run", "-d", "--name", self.nginx, *self.label(), "--pull", "never",
            "--network", self.pods_net, "--network", self.edge_net,
            "-p", f"127.0.0.1:{self.nginx_port}:8080",
            "--read-only", "--read-only-tmpfs=false", "--user", "10001:10001", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--tmpfs", "/var/run/nginx:rw,mode=1777,size=64m",
            "-v", f"{self.workdir / 'nginx'}:/etc/ragfleet-nginx:ro",
            "--entrypoint", json.dumps(["sh", "-ec", "mkdir -p /var/run/nginx/tmp && exec nginx -e stderr -c /etc/ragfleet-nginx/nginx.conf -g 'daemon off;'"]),
            bases.nginx,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(s.ready for s in self.pods.values()):
                return
            time.sleep(1)
        pending = [s.spec.name for s in self.pods.values() if not s.ready]
        for name in pending:
            log.error(
                "%s logs:\n%s",
                name,
                self.logs(self.pods[name].container, 30),
            )
        raise AssertionError(f"not ready after {timeout_s:.0f} s: {', '.join(pending)}")

    def wait_pod_ready(self, name: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.pods[name].ready:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not ready again after {timeout_s:.0f} s")
            time.sleep(0.5)

    def logs(self, container: str, tail: int) -> str:
        # A container's stderr comes out on podman's stderr: both streams, interleaved by podman.
        result = self.engine.run("logs", "--tail", str(tail), container, check=False, timeout=30)
        return (result.stdout or "") + (result.stderr or "")

    def dump_logs(self, tail: int = 40) -> None:
        """Every container's last lines, for a failed run (CI keeps nothing else of it); access
        lines of successful requests left out, or the smoke's job polling would fill them."""
        for state in self.pods.values():
            lines = [
                line
                for line in self.logs(state.container, 20 * tail).splitlines()
                if not ('"logger":"ragfleet.access"' in line and '"status":2' in line)
            ]
            log.error(
                "---- %s (restarts: %d), last %d lines but successful requests:\n%s",
                state.spec.name, state.restarts, tail, "\n".join(lines[-tail:]),
            )  # fmt: skip
        log.error("---- ingress-nginx:\n%s", self.logs(self.nginx, tail))

    def security_report(self) -> list[str]:
        """podman inspect of every container of the run: read-only root, uid 10001, caps, no-new-privs."""
        rows, failures = [], []
        names = [s.container for s in self.pods.values()] + [self.nginx]
        for name in names:
            info = json.loads(self.podman("inspect", name))[0]
            host = info["HostConfig"]
            # The user as podman inspect has it, and as the running process sees it.
            user = str(info.get("Config", {}).get("User") or "")
            uid = self.podman("exec", name, "id", "-u").strip()
            read_only = bool(host.get("ReadonlyRootfs"))
            nnp = "no-new-privileges" in " ".join(host.get("SecurityOpt") or [])
            caps = info.get("EffectiveCaps") or []
            rows.append(
                f"{name:<36} user={user:<12} uid={uid:<6} read-only={read_only!s:<5} "
                f"no-new-privileges={nnp!s:<5} caps={len(caps)}"
            )
            if user.split(":")[0] != "10001" or uid != "10001" or not read_only or not nnp or caps:
                failures.append(name)
        for row in rows:
            log.info("security: %s", row)
        if failures:
            raise AssertionError(f"not read-only/uid 10001/no caps/no-new-privileges: {', '.join(failures)}")
        return rows


def nginx_conf(ingress: IngressSpec, backends: tuple[str, ...]) -> str:
    """The ingress-nginx annotations as NGINX config: `make run`'s template, the one place that
    says how cookie affinity is done with open-source NGINX."""
    from ragfleet.devstack.nginx import NGINX_CONF

    a = {k.removeprefix("nginx.ingress.kubernetes.io/"): v for k, v in ingress.annotations.items()}
    if a.get("affinity") != "cookie":
        raise Unsupported(
            f"Ingress {ingress.name}: affinity {a.get('affinity')!r}; only cookie affinity is played"
        )
    servers = (
        "\n".join(f"        server {b} max_fails=1 fail_timeout=5s;" for b in backends)
        or "        server 127.0.0.1:9 down;"
    )
    conf = NGINX_CONF.format(
        run="/var/run/nginx",
        host="0.0.0.0",
        port=8080,
        servers=servers,
        cookie=a.get("session-cookie-name", "INGRESSCOOKIE"),
        max_age=a.get("session-cookie-max-age", "172800"),
        max_body=a.get("proxy-body-size", "1m"),
    )
    conf = conf.replace("error_log /var/run/nginx/error.log warn;", "error_log stderr warn;")
    conf = conf.replace("Path=/;", f"Path={a.get('session-cookie-path', '/')};")
    for key in ("read", "send"):
        conf = conf.replace(
            f"proxy_{key}_timeout 3600s;", f"proxy_{key}_timeout {a.get(f'proxy-{key}-timeout', '60')}s;"
        )
    return conf


def run(engine: Engine, *, registry: str, tag: str, keep: bool = False) -> int:
    """The whole harness; the exit code is the verdict."""
    from ragfleet.containers import smoke
    from ragfleet.k8scheck.toolchain import ensure_helm

    logging.getLogger("httpx").setLevel(logging.WARNING)  # probes every few seconds
    if engine.name != "podman":
        raise EngineError("make test-containers runs on podman (CONTAINER_ENGINE=podman)")
    helm, _ = ensure_helm()
    objects = render(
        helm,
        release=RELEASE,
        namespace=NAMESPACE,
        values=[VALUES],
        sets={"image.registry": registry, "image.tag": tag},
    )
    plan = Translator(objects, NAMESPACE).plan()
    log.info(
        "rendered: %d pods, %d Services, %d Ingress paths",
        len(plan.pods),
        len(plan.services),
        len(plan.ingresses),
    )
    kinds: dict[str, int] = {}
    for line in plan.skipped:
        kinds[line.split("/", 1)[0]] = kinds.get(line.split("/", 1)[0], 0) + 1
        if "hook" in line:
            log.info("not run: %s", line)
    log.info("not run (a cluster enforces them): %s", ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    workdir = Path(tempfile.mkdtemp(prefix="ragfleet-test-containers-"))
    cluster = Cluster(engine, plan, workdir, run_id=str(int(time.time())))
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in previous:
        signal.signal(sig, interrupted)
    supervisor = threading.Thread(target=cluster.supervise, daemon=True)
    started = time.monotonic()
    code = 1
    try:
        cluster.cleanup()
        cluster.create_networks()
        for state in cluster.pods.values():
            cluster.start_pod(state)
        supervisor.start()
        cluster.start_nginx(BaseImages())
        cluster.wait_ready()
        log.info("every pod ready after %.0f s", time.monotonic() - started)
        cluster.security_report()
        results = smoke.run_all(cluster)
        failed = [name for name, ok, _ in results if not ok]
        for name, ok, detail in results:
            print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
        log.info("test-containers took %.0f s", time.monotonic() - started)
        # The plain closing line CI reads.
        print(f"test-containers: {len(results) - len(failed)} passed, {len(failed)} failed", flush=True)
        if failed:
            cluster.dump_logs()
        code = 1 if failed else 0
    except (AssertionError, EngineError, Unsupported, httpx.HTTPError) as exc:
        log.error("test-containers FAILED: %s", exc)
        print("test-containers: 0 passed, 1 failed", flush=True)
        with contextlib.suppress(Exception):
            cluster.dump_logs()
    except KeyboardInterrupt:
        log.error("test-containers interrupted")
        code = 130
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        cluster.stop.set()
        with contextlib.suppress(RuntimeError):
            supervisor.join(timeout=5)
        cluster.pool.shutdown(wait=False, cancel_futures=True)
        if keep:
            log.info("--keep: containers left running; NGINX on %s; files in %s", cluster.url, workdir)
        else:
            cluster.cleanup()
            left = cluster.leftovers()
            if left:
                log.error("cleanup left %s", ", ".join(f"{len(ids)} {kind}(s)" for kind, ids in left.items()))
                code = code or 1
            else:
                log.info("cleanup: no container, pod, network or volume of the run left")
            # The rendered Secrets were written there for the containers' mounts.
            shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
