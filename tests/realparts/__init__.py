"""The real servers tests start, one toolkit for every tier (and for `make bench`).

`free_port`/`free_ports` pick loopback ports; `redis` (standalone, optionally with a
password), `redis_cluster`, `redis_sentinel`, `moto_s3`, `gcs_emulator` and `azurite`
start real servers as context managers that wait until they answer and stop them on
exit; `make_tls` issues a CA and a loopback certificate. `fixtures` holds the session
fixtures built on them (`redis_server`, `redis_with_password`, `s3_server`, ...).
"""

from tests.realparts.ports import free_port, free_ports
from tests.realparts.processes import Servers, until_healthy
from tests.realparts.redis_servers import RedisServer, redis, redis_cluster, redis_sentinel
from tests.realparts.storage import BUCKET, azurite, azurite_connection_string, gcs_emulator, moto_s3
from tests.realparts.tls import TLS, make_tls

__all__ = [
    "BUCKET",
    "TLS",
    "RedisServer",
    "Servers",
    "azurite",
    "azurite_connection_string",
    "free_port",
    "free_ports",
    "gcs_emulator",
    "make_tls",
    "moto_s3",
    "redis",
    "redis_cluster",
    "redis_sentinel",
    "until_healthy",
]
