"""The broker and daemon fixtures, for every test folder (started only when asked for)."""

pytest_plugins = ("tests.support.fixtures",)
