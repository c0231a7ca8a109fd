"""Every bad config or environment input, through the real command line: exit code 2, one line
on stderr naming the key or variable and the fix, no traceback, no secret."""

from __future__ import annotations

import os
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


def _one_line_error(
    *args: str, env: dict[str, str] | None = None, within: float = 20.0, code: int = 2
) -> str:
    # exits before any connection: a hang is a TimeoutExpired here, not a measured duration
    result = modelmon(*args, timeout=within, env=None if env is None else {**os.environ, **env})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr and TOKEN not in result.stderr
    assert len(lines[0]) <= 450
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


def _first_hour_files(tmp_path: Path) -> dict[str, Path]:
    """What a new user points the commands at: configs and training files, some of them bad."""
    base = _config(tmp_path)
    models = base["models"]
    assert isinstance(models, list)
    fraud = models[0]
    plain = {k: v for k, v in fraud.items() if k != "webhook"}
    unresolvable = {**fraud, "webhook": {"url": "https://no-such-host.invalid/x", "secret": "s"}}
    loopback = {**fraud, "webhook": {"url": "http://127.0.0.1:9/x", "secret": "s"}}
    unset = {**fraud, "webhook": {"url": "https://hooks.example/x", "secret_env": "NOT_SET_X"}}
    (tmp_path / "train.csv").write_text("amount,country\n1.5,DE\n\n2,FR\n3,DE\nabc,DE\n")
    (tmp_path / "train.jsonl").write_text('{"amount": 1}\n\n{"amount": [2]}\n')
    (tmp_path / "train.parquet").write_text("PAR1")
    return {
        "plain": _write(tmp_path, _config(tmp_path, models=[plain]), "plain.yaml"),
        "unresolvable": _write(tmp_path, _config(tmp_path, models=[unresolvable]), "u.yaml"),
        "loopback": _write(tmp_path, _config(tmp_path, models=[loopback]), "lo.yaml"),
        "unset": _write(tmp_path, _config(tmp_path, models=[unset]), "unset.yaml"),
        "twice": _write(tmp_path, _config(tmp_path, models=[plain, fraud]), "twice.yaml"),
        "no_ref": _write(
            tmp_path, _config(tmp_path, models=[{**plain, "reference": "none.json"}]), "nr.yaml"
        ),
    }


#: (command line with {placeholders}, what the one line must say, exit code)
FIRST_HOUR_MISTAKES = [
    (
        "reference build --model fraud --input {tmp}/missing.csv --output {tmp}/r.json",
        "modelmon reference build --input {tmp}/missing.csv: no such file; give the training "
        "data (.csv or .jsonl)",
        2,
    ),
    (
        "reference build --model fraud --input {tmp}/train.parquet --output {tmp}/r.json",
        "unsupported training file type '.parquet'; use .csv or .jsonl",
        2,
    ),
    (
        "reference build --config {plain} --model fraud --input {tmp}/train.csv "
        "--output {tmp}/r.json",
        "{tmp}/train.csv:6: column 'amount' is numeric but holds 'abc'; fix the value, or make "
        "the feature categorical",
        2,
    ),
    (
        "reference build --config {plain} --model fraud --input {tmp}/train.jsonl "
        "--output {tmp}/r.json",
        "{tmp}/train.jsonl:3: column 'amount' is numeric but holds [2]",
        2,
    ),
    (
        "reference build --config {plain} --model fraud --features amount "
        "--input {tmp}/train.csv --output {tmp}/r.json",
        "--features is for building without --config",
        2,
    ),
    (
        "reference build --model fraud --features amount,nope --input {tmp}/train.csv "
        "--output {tmp}/r.json",
        "no column named nope in the training data (it has: amount, country)",
        2,
    ),
    (
        "webhook test --config {unresolvable} --model fraud",
        "modelmon webhook test: https://no-such-host.invalid/x: the host does not resolve",
        1,
    ),
    (
        "webhook test --config {plain} --model fraud",
        "--model fraud: the model has no webhook in {plain}; add models[fraud].webhook",
        2,
    ),
    ("webhook test --config {plain} --model fruad", "no such model in {plain} (it has: fraud)", 2),
    (
        "validate-config {loopback}",
        "resolves to loopback address 127.0.0.1; set allow_private_targets: true in the webhook",
        2,
    ),
    ("validate-config {unset}", "models[fraud].webhook.secret_env: environment variable", 2),
    ("validate-config {twice}", "models: model names must be unique: 'fraud' appears twice", 2),
    ("validate-config --config {no_ref}", "models[fraud].reference: ", 2),
    ("validate-config", "modelmon validate-config: which file? give it as --config FILE", 2),
    ("validate-config {plain} --config {twice}", "two config files", 2),
    ("", "modelmon: give a command: run, demo, validate-config, check, webhook, reference", 2),
    (
        "reference",
        "modelmon reference: give a command: build, calibrate (see modelmon reference --help)",
        2,
    ),
    ("webhook", "modelmon webhook: give a command: test", 2),
    ("config", "modelmon config: give a command: schema, reference", 2),
    ("check --config x.yaml --verbose", "modelmon: unrecognized arguments: --verbose (see", 2),
    ("run", "modelmon run: the following arguments are required: --config/-c (see modelmon run", 2),
]


@pytest.mark.parametrize(("command", "says", "code"), FIRST_HOUR_MISTAKES)
def test_every_first_hour_mistake_is_one_line_naming_the_fix(
    tmp_path: Path, command: str, says: str, code: int
) -> None:
    names = {k: str(v) for k, v in _first_hour_files(tmp_path).items()}
    names["tmp"] = str(tmp_path)
    line = _one_line_error(*command.format(**names).split(), code=code)
    assert says.format(**names) in line
