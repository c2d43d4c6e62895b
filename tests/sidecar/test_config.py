"""The config file: camelCase keys, clear errors naming the key, environment overrides."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmcache_sidecar import config
from llmcache_sidecar.config import ConfigError, Settings

FULL = """
listen: 127.0.0.1:9787
admin: 127.0.0.1:9788
ttl: 1h
namespace: team-a
isolation: namespace
backend:
  type: dual
  memory: {maxBytes: 1048576, maxEntries: 100}
  redis: {url: redis://127.0.0.1:6379/0, passwordFile: null, timeoutMs: 20}
providers:
  openai: {upstream: https://api.openai.com}
  vllm: {kind: openai, upstream: http://vllm.llm.svc:8000/}
keyParams: {exclude: [user, metadata, seed]}
coalesce: {enabled: false, maxWait: 30s}
replay: paced
"""


def test_the_documented_config_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(FULL)
    s = config.load(path, env={})
    assert s.ttl == 3600
    assert s.backend.type == "dual"
    assert s.backend.memory.max_entries == 100
    assert s.backend.redis.timeout_ms == 20
    assert s.providers["vllm"].upstream == "http://vllm.llm.svc:8000"
    assert s.providers["openai"].kind == "openai"
    assert s.key_params.exclude == ("user", "metadata", "seed")
    assert s.coalesce.max_wait == 30
    assert s.replay == "paced"


def test_no_file_gives_the_embedded_defaults() -> None:
    s = config.load(None, env={})
    assert (s.listen, s.admin, s.backend.type, s.isolation) == (
        "127.0.0.1:8787",
        "127.0.0.1:8788",
        "memory",
        "credential",
    )
    assert set(s.providers) == {"openai", "anthropic", "gemini"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backend": {"memory": {"maxByte": 1}}}, "backend.memory.maxByte: unknown key; did you mean maxBytes?"),
        ({"ttl": "forever"}, "ttl: expected seconds or a duration"),
        ({"ttl": -1}, "ttl: must not be negative"),
        ({"isolation": "none"}, "isolation: must be one of credential, namespace, got 'none'"),
        ({"backend": {"type": "memcached"}}, "backend.type: must be one of memory, redis, dual"),
        ({"backend": {"memory": {"maxEntries": "10"}}}, "backend.memory.maxEntries: expected an integer"),
        ({"backend": {"memory": {"maxEntries": 0}}}, "backend.memory.maxEntries: must be at least 1"),
        ({"coalesce": {"enabled": "yes"}}, "coalesce.enabled: expected true or false"),
        ({"keyParams": {"exclude": "user"}}, "keyParams.exclude: expected a list"),
        ({"providers": {"mine": {}}}, "providers.mine.kind: required for a provider that is not built in"),
        ({"providers": {"mine": {"kind": "openai"}}}, "providers.mine.upstream: required"),
        ({"providers": {"openai": {"upstream": "ftp://x"}}}, "providers.openai.upstream: expected an http(s) URL"),
        ({"listen": "8787"}, "listen: expected host:port"),
        ({"namespace": "a:b"}, "namespace: use letters"),
        ({"backend": []}, "backend: expected a mapping, got a list"),
    ],
)
def test_a_wrong_value_is_refused_with_its_key_path(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config.parse(Settings, data)
    assert message in str(error.value)


def test_environment_variables_override_single_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(FULL)
    env = {
        "LLMCACHE_TTL": "600",
        "LLMCACHE_BACKEND_TYPE": "redis",
        "LLMCACHE_BACKEND_REDIS_URL": "redis://redis:6379/1",
        "LLMCACHE_PROVIDERS_VLLM_UPSTREAM": "http://other:8000",
        "LLMCACHE_COALESCE_ENABLED": "true",
        "UNRELATED": "x",
    }
    s = config.load(path, env=env)
    assert s.ttl == 600
    assert s.backend.type == "redis"
    assert s.backend.redis.url == "redis://redis:6379/1"
    assert s.backend.redis.timeout_ms == 20  # the file's value where env says nothing
    assert s.providers["vllm"].upstream == "http://other:8000"
    assert s.coalesce.enabled is True


def test_an_unknown_environment_setting_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="LLMCACHE_TTLL: unknown environment setting; did you mean LLMCACHE_TTL"):
        config.load(None, env={"LLMCACHE_TTLL": "5"})


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("listen: [unclosed")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        config.load(path, env={})


@pytest.mark.parametrize(
    ("raw", "seconds"), [(90, 90), (1.5, 1.5), ("90s", 90), ("30m", 1800), ("1h30m", 5400), ("500ms", 0.5)]
)
def test_durations_read_as_seconds(raw: object, seconds: float) -> None:
    assert config.parse_duration(raw) == seconds


def test_the_command_refuses_a_bad_config_at_start_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("backend:\n  redis: {timeoutMS: 5}\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmcache_sidecar.cli", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "backend.redis.timeoutMS: unknown key; did you mean timeoutMs?" in result.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_unknown_log_level_is_refused_naming_the_levels(
    how: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to reach logging.setLevel and end the process with a traceback (exit status 1)."""
    from llmcache_sidecar import cli

    monkeypatch.delenv("LLMCACHE_CONFIG", raising=False)
    argv = ["--log-level", "verbose"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("LLMCACHE_LOG_LEVEL", "verbose")
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'verbose'" in capsys.readouterr().err


def test_variables_the_command_reads_itself_are_not_taken_for_settings() -> None:
    env = {"LLMCACHE_CONFIG": "/etc/llmcache/config.yaml", "LLMCACHE_LOG_LEVEL": "DEBUG", "LLMCACHE_OPERATOR_X": "1"}
    assert config.load(None, env=env) == config.load(None, env={})


def test_the_sidecar_image_sets_no_variable_the_sidecar_refuses() -> None:
    """The image's `ENV` reaches every sidecar: an `LLMCACHE_*` name the config does not know
    made every injected sidecar exit at start (LLMCACHE_WORDNET_DIR, found on a real node)."""
    dockerfile = (Path(__file__).parents[2] / "sidecar" / "Dockerfile").read_text()
    env = dict(re.findall(r"\b(LLMCACHE_[A-Z0-9_]+)=(\S+)", dockerfile))
    assert "LLMCACHE_WORDNET_DIR" in env
    assert config.load(None, env=env) == config.load(None, env={})


@pytest.mark.parametrize(
    ("extra_args", "message"),
    [
        ([], "cannot read config file"),
        (["--fallback-config", "listen: [1, 2]"], "--fallback-config"),
    ],
    ids=["no-fallback", "invalid-fallback"],
)
def test_a_missing_config_file_is_refused_at_start_unless_a_valid_fallback_is_given(
    tmp_path: Path, extra_args: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmcache_sidecar.cli", "--config", str(tmp_path / "missing.yaml"), *extra_args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_environment_override_names_its_variable() -> None:
    with pytest.raises(ConfigError, match=r"ttl: expected seconds or a duration .* \(set by LLMCACHE_TTL\)"):
        config.load(None, env={"LLMCACHE_TTL": "forever"})


@pytest.mark.parametrize(
    "content", ["sk-a\nsk-b\n", "sk-a\r\nsk-b", "sk-a\rsk-b", "sk-a\x00", "sk-\x1b[0m", "sk-a\tb", "sk-a\x85b"]
)
def test_a_secret_file_with_a_control_character_inside_is_refused_naming_the_file_not_the_value(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "api-key"
    path.write_bytes(content.encode())
    with pytest.raises(config.SecretFileError) as raised:
        config.read_secret(str(path), "semantic.judge.apiKeyFile")
    assert raised.value.path == "semantic.judge.apiKeyFile"
    assert str(path) in str(raised.value)
    assert "sk-" not in str(raised.value).replace(str(path), "")


@pytest.mark.parametrize("content", ["sk-a\n", "sk-a\r\n", "  sk-a  \n\n", "pässwörd-✓\n"])
def test_a_secret_file_is_read_without_its_surrounding_whitespace_and_line_ending(tmp_path: Path, content: str) -> None:
    path = tmp_path / "api-key"
    path.write_bytes(content.encode())
    assert config.read_secret(str(path), "backend.redis.passwordFile") == content.strip()


def test_a_subclass_field_is_listed_before_the_base_field_it_names() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Placed(config.CacheSettings):
        first: int = config.setting("first", "Listed first.", default=1, before="ttl")
        last: int = config.setting("last", "Listed last.", default=2)

    keys = [s.key for s in config.settings_of(Placed)]
    assert keys[0] == "first" and keys[-1] == "last" and keys[1] == "ttl"

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Misplaced(config.CacheSettings):
        lost: int = config.setting("lost", "Names no field.", default=1, before="nothing")

    with pytest.raises(TypeError, match="names no field"):
        config.settings_of(Misplaced)


def test_parsed_settings_hold_the_built_in_providers_filled_in_and_stay_frozen() -> None:
    settings = config.parse(Settings, {"providers": {"openai": {"timeout": 5}}})
    assert (settings.providers["openai"].upstream, settings.providers["openai"].timeout) == (
        "https://api.openai.com",
        5.0,
    )
    with pytest.raises(AttributeError):
        settings.providers = {}  # type: ignore[misc]
