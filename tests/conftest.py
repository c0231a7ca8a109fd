"""The broker, daemon and end-to-end (Prometheus) fixtures, and the shared data fixtures of
tests/support, for every test folder (started only when asked for)."""

pytest_plugins = (
    "tests.support.fixtures",
    "tests.support.e2e",
    "tests.support.pipeline_rig",
    "tests.support.receivers",
)
