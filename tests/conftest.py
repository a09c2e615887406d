import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402 - nameko needs green sockets before anything imports them

import socket  # noqa: E402

import pytest  # noqa: E402

import crm_common.contracts  # noqa: E402,F401 - registers every event contract
from crm_common.auth import issue_token  # noqa: E402
from crm_common.config import DEV_SECRET  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def token():
    """token(user, role, team) -> an API token signed with the default secret."""
    def make(user_id, role="rep", team=None):
        return issue_token(DEV_SECRET, user_id, role, team)
    return make


@pytest.fixture(scope="module")
def embedded_system(tmp_path_factory):
    """All four services in this process (memory bus, SQLite), like `python -m crm embedded`."""
    from crm import runner
    from crm_common import memory_transport

    memory_transport.install()
    memory_transport.reset()
    port = free_port()
    system = runner.embedded(str(tmp_path_factory.mktemp("embedded")), port)
    system.start()
    system.base_url = f"http://127.0.0.1:{port}"
    yield system
    system.stop()
