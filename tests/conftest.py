"""The broker, daemon and end-to-end (Prometheus) fixtures, for every test folder (started only
when asked for)."""

pytest_plugins = ("tests.support.fixtures", "tests.support.e2e")
