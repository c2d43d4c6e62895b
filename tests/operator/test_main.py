"""The operator's entry point under the image's user: UID 65532, which has no passwd entry.

kopf's default identity asks `getpass.getuser()`, which raises for such a UID: the operator
crash-looped on a plain `helm install` (issue 14). Real here: a child process that really
runs as UID 65532 (forked, so it needs no readable interpreter path), and getpass.
"""

from __future__ import annotations

import json
import os
import pwd

import pytest

from llmcache_operator.__main__ import IDENTITY_ENV, identity

IMAGE_UID = 65532


def identity_as(uid: int, env: dict[str, str]) -> str:
    """`identity(env)` computed in a child process running as `uid` with only `env`."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.environ.clear()
            os.environ.update(env)
            os.write(write, json.dumps({"identity": identity(os.environ)}).encode())
        except BaseException as exc:
            os.write(write, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert "error" not in answer, answer["error"]
    return str(answer["identity"])


@pytest.fixture
def passwdless_uid() -> int:
    if os.geteuid() != 0:
        pytest.skip("switching to UID 65532 needs root")
    with pytest.raises(KeyError):
        pwd.getpwuid(IMAGE_UID)  # the premise: like the image, this machine has no entry for it
    return IMAGE_UID


def test_a_uid_without_a_passwd_entry_still_gets_an_identity(passwdless_uid: int) -> None:
    found = identity_as(passwdless_uid, {"PATH": "/usr/bin:/bin"})
    assert found.startswith(f"uid{passwdless_uid}@")


def test_the_pod_name_is_the_identity_when_kopfs_variable_is_set(passwdless_uid: int) -> None:
    assert identity_as(passwdless_uid, {IDENTITY_ENV: "llmcache-operator-7d9c-x2"}) == "llmcache-operator-7d9c-x2"
