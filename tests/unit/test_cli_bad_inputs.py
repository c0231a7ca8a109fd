"""Every bad config or environment input, through the real command line: exit code 2, one line
on stderr naming the key or variable and the fix, no traceback, no secret."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from tests.support.cli import modelmon

SECRET = "s3cr3t-Hunter2"
TOKEN = "tok-9f8e7d"
BOMB = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["models: *a9"]
)


def _config(tmp_path: Path, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "state": {"dir": str(tmp_path / "state")},
        "models": [
            {
                "name": "fraud",
                "features": {"amount": "numeric"},
                "reference": {"bootstrap_events": 100},
                "windows": [{"name": "5m", "length": "5m", "pane": "10s"}],
                "webhook": {"url": f"https://hooks.example/x?token={TOKEN}", "secret": SECRET},
            }
        ],
    }
    data.update(changes)
    return data


def _write(tmp_path: Path, data: object, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _one_line_error(*args: str, env: dict[str, str] | None = None, within: float = 20.0) -> str:
    started = time.monotonic()
    result = modelmon(*args, env=None if env is None else {**os.environ, **env})
    took = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr and TOKEN not in result.stderr
    assert len(lines[0]) <= 450
    assert took < within, f"took {took:.1f}s"
    return lines[0]


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)  # 9**10 = 3.5 billion nodes once expanded
    line = _one_line_error("validate-config", str(path), within=10.0)
    assert f"config file {path}: expands to more than" in line and "alias" in line


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("models: &m [*m]\n")
    assert "recursive alias" in _one_line_error("validate-config", str(path))


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = _write(tmp_path, _config(tmp_path))
    with path.open("a") as f:
        f.write("#" * (1024 * 1024) + "\n")
    assert "larger than 1048576 bytes" in _one_line_error("validate-config", str(path))


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("log_level: INFO # café\n".encode("latin-1"))
    line = _one_line_error("validate-config", str(path))
    assert "not UTF-8 text (byte 21 is 0xe9)" in line


def test_a_directory_as_the_config_is_one_line(tmp_path: Path) -> None:
    line = _one_line_error("run", "--config", str(tmp_path))
    assert f"config file {tmp_path}: is a directory" in line


def test_a_yaml_syntax_error_names_the_position_not_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(f"kafka:\n  sasl_plain_password: {SECRET}\n   bad: [\n")
    assert "not valid YAML at line" in _one_line_error("validate-config", str(path))


@pytest.mark.parametrize(
    ("variable", "value", "names"),
    [
        ("MODELMON_HTTP__PORT", "x", "MODELMON_HTTP__PORT (http.port)"),
        (
            "MODELMON_MODELS__FRAUD__POLICY__PSI_MAX",
            "lots",
            "MODELMON_MODELS__FRAUD__POLICY__PSI_MAX (models[0].policy.psi_max)",
        ),
        ("MODELMON_MODELS__0__WINDOWS", "[", "MODELMON_MODELS__0__WINDOWS: not a valid YAML"),
        ("MODELMON_MODELS__FRAUD__NAME__X", "1", "MODELMON_MODELS__FRAUD__NAME__X: 'name'"),
        ("MODELMON_KAFKA", "notjson", "MODELMON_KAFKA: not valid JSON for a section"),
    ],
)
def test_a_bad_environment_override_names_the_variable(
    tmp_path: Path, variable: str, value: str, names: str
) -> None:
    path = _write(tmp_path, _config(tmp_path))
    assert names in _one_line_error("validate-config", str(path), env={variable: value})


def test_a_secret_is_never_echoed(tmp_path: Path) -> None:
    models = _config(tmp_path)["models"]
    assert isinstance(models, list)
    # The same model twice fails a whole-config check whose input holds every secret.
    path = _write(tmp_path, _config(tmp_path, models=models * 2))
    assert "model names must be unique" in _one_line_error("validate-config", str(path))
    bad_url = {**models[0], "webhook": {"url": f"ftp://u:{SECRET}@h/?t={TOKEN}", "secret": "x"}}
    path = _write(tmp_path, _config(tmp_path, models=[bad_url]))
    line = _one_line_error("validate-config", str(path))
    assert "models[0].webhook.url" in line and "ftp://***@h/?***" in line


def test_many_problems_make_one_bounded_line(tmp_path: Path) -> None:
    junk = {f"key_{i}": "x" * 500 for i in range(50)}
    path = _write(tmp_path, _config(tmp_path, http=junk))
    assert _one_line_error("validate-config", str(path)).endswith("…")


@pytest.mark.parametrize("kind", ["under a file", "read-only"])
def test_an_unwritable_state_dir_stops_run_before_connecting(tmp_path: Path, kind: str) -> None:
    if kind == "under a file":
        (tmp_path / "file").write_text("")
        state = tmp_path / "file" / "state"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories")
        state = tmp_path / "ro"
        state.mkdir(mode=0o500)
    path = _write(tmp_path, _config(tmp_path, state={"dir": str(state)}))
    line = _one_line_error("run", "--config", str(path))
    assert f"state.dir {state}: not a writable directory" in line
