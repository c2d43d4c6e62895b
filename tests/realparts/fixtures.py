"""The session's real servers, one fixture name per thing, for every tier (a pytest plugin
that tests/conftest.py loads). Each starts on first use and stops at the end of the run;
tests sharing one keep apart by namespace or key prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.realparts import redis_servers, storage
from tests.realparts.processes import Servers
from tests.realparts.redis_servers import RedisServer
from tests.realparts.storage import BUCKET
from tests.realparts.tls import TLS, make_tls

REDIS_PASSWORD = "s3cret-for-tests"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server on a free loopback port, without a password."""
    with redis_servers.redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server that wants AUTH with `REDIS_PASSWORD`."""
    with redis_servers.redis(tmp_path_factory.mktemp("redis-auth"), password=REDIS_PASSWORD) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """Three Redis Cluster masters; any one's port reaches the cluster."""
    with redis_servers.redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as servers:
        yield servers


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Servers]]:
    """A Redis master and one Sentinel watching it as `mymaster`: (master, sentinel)."""
    with redis_servers.redis_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as pair:
        yield pair


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """moto's S3 server with the bucket `BUCKET`."""
    from botocore.session import get_session

    with storage.moto_s3(tmp_path_factory.mktemp("moto")) as servers:
        client = get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{servers.port}",
            aws_access_key_id="test", aws_secret_access_key="test",
        )  # fmt: skip
        # botocore builds its methods at run time; the stubs cannot see them.
        client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        client.close()
        yield servers


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """gcp-storage-emulator with the bucket `BUCKET`."""
    with storage.gcs_emulator(tmp_path_factory.mktemp("gcs"), BUCKET) as servers:
        yield servers


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """azurite's blob service with the container `BUCKET`."""
    from azure.storage.blob import ContainerClient

    with storage.azurite(tmp_path_factory.mktemp("azurite")) as servers:
        conn = storage.azurite_connection_string(servers.port)
        with ContainerClient.from_connection_string(conn, BUCKET) as container:
            container.create_container()
        yield servers


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    """A CA and a server certificate for 127.0.0.1 and localhost."""
    return make_tls(tmp_path_factory.mktemp("tls"))
