"""Distributed mode for real: RabbitMQ, PostgreSQL, each service its own `python -m crm serve` process.

scripts/test starts a private broker and database and exports their URLs; run on its own
(`python -m pytest tests/integration`), this starts them itself with scripts/infra.sh.
"""
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from crm_common.config import SERVICES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
URL_VARS = ("CRM_AMQP_URI",) + tuple(f"{s.upper()}_DATABASE_URL" for s in SERVICES)


def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_env_file(path):
    values = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                values[name] = value.strip().strip("'\"")
    return values


@pytest.fixture(scope="session")
def infra(tmp_path_factory):
    """URLs of a real RabbitMQ and PostgreSQL (from scripts/test, or started here)."""
    if all(os.environ.get(v, "").startswith(("amqp://", "postgresql")) for v in URL_VARS):
        yield {v: os.environ[v] for v in os.environ}
        return
    run_dir = str(tmp_path_factory.mktemp("infra"))
    subprocess.run([os.path.join(ROOT, "scripts", "infra.sh"), "install"], check=True)
    subprocess.run([os.path.join(ROOT, "scripts", "infra.sh"), "start", run_dir], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        yield {**os.environ, **_read_env_file(os.path.join(run_dir, "env.sh"))}
    finally:
        subprocess.run([os.path.join(ROOT, "scripts", "infra.sh"), "stop", run_dir], check=False)


class ServiceProcess:
    def __init__(self, name, env, log_dir):
        self.name = name
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, f"{name.upper()}_HTTP_ADDRESS": f"127.0.0.1:{self.port}",
                    "CRM_OUTBOX_POLL_SECONDS": "0.2", "PYTHONUNBUFFERED": "1",
                    # tokens here are signed with the development secret, which serve refuses otherwise
                    "CRM_ALLOW_DEV_SECRET": "1"}
        self.log_path = os.path.join(log_dir, f"{name}-{self.port}.log")
        self.process = None

    def start(self):
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "crm", "serve", self.name], cwd=ROOT,
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def wait_healthy(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if requests.get(self.base_url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not healthy after {timeout}s:\n{self.tail()}")

    def stop(self, timeout=30):
        """SIGTERM, as Kubernetes and docker send it; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process and self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self.log.close()

    def metric(self, name, *labels):
        """The sum of that metric's samples in this process's /metrics whose labels include all of `labels`
        (each written as in the exposition, e.g. 'outcome="applied"')."""
        total = 0.0
        for line in requests.get(self.base_url + "/metrics").text.splitlines():
            if line.startswith(name + "{") and all(label in line for label in labels):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def tail(self, lines=40):
        with open(self.log_path) as handle:
            return "".join(handle.readlines()[-lines:])


@pytest.fixture(scope="session")
def migrated(infra):
    for name in SERVICES:
        subprocess.run([sys.executable, "-m", "crm", "migrate", name], cwd=ROOT, env=infra, check=True,
                       stdout=subprocess.DEVNULL)
    # the tests' admin in the directory from the start (a service started unhealthy on purpose announces nothing)
    subprocess.run([sys.executable, "-m", "crm", "admin", "--user", "admin"], cwd=ROOT, env=infra, check=True,
                   stdout=subprocess.DEVNULL)
    return infra


@pytest.fixture(scope="session")
def start_service(migrated, tmp_path_factory):
    """start_service(name) -> a healthy ServiceProcess; stopped at the end of the session."""
    log_dir = str(tmp_path_factory.mktemp("service-logs"))
    started = []

    def start(name, wait_healthy=True, **extra_env):
        service = ServiceProcess(name, {**migrated, **extra_env}, log_dir).start()
        started.append(service)
        if not wait_healthy:
            return service
        service.wait_healthy()
        # the tests' admin, announced again now that this service listens (a directory check needs them known)
        subprocess.run([sys.executable, "-m", "crm", "admin", "--user", "admin"], cwd=ROOT, env=migrated,
                       check=True, stdout=subprocess.DEVNULL)
        return service

    yield start
    for service in reversed(started):
        service.stop()


@pytest.fixture(scope="session")
def system(start_service):
    """One process per service, like docker compose runs them."""
    return {name: start_service(name) for name in SERVICES}


def wait_for(check, timeout=20, interval=0.2, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(interval)


@pytest.fixture
def eventually():
    return wait_for
