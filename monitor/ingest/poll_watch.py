"""Whether the consumer group still counts this member in, by when it last polled.

A member that goes ``kafka.max_poll_interval_ms`` without a poll (its consume loop stuck: a
dead-letter topic refusing writes, a slow takeover) is dropped by the group, and the client
tells the app only at its next poll; meanwhile another replica may own partition 0 and act.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class PollWatch:
    """When the consume loop last came back from a poll.

    >>> t = [0.0]
    >>> watch = PollWatch(lambda: t[0], max_interval=60.0)
    >>> t[0] = 59.0; watch.in_group()
    True
    >>> t[0] = 61.0; watch.in_group()
    False
    >>> watch.polled(); watch.in_group()
    True
    """

    def __init__(self, clock: Callable[[], float], max_interval: float) -> None:
        self._clock, self._max = clock, max_interval
        self._last = clock()
        self._said = False

    def polled(self) -> None:
        self._last, self._said = self._clock(), False

    def in_group(self) -> bool:
        """False once a poll is ``max_interval`` overdue (said once in the log)."""
        stalled = self._clock() - self._last
        if stalled < self._max:
            return True
        if not self._said:
            self._said = True
            log.warning(
                "group: no poll for %.0f s (kafka.max_poll_interval_ms): the group has dropped "
                "this replica, which stops acting until it has polled and rejoined",
                stalled,
            )
        return False
