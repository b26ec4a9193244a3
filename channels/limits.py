"""Per-user rate limits of the channels: a sliding window of recent message times per user.

A user who stops writing costs nothing: the window of a user whose last message is older than
the window is dropped by the next sweep, so a million users who each wrote once hold no
memory an hour later.
"""

import time
from collections import deque
from collections.abc import Hashable


class SlidingWindow:
    def __init__(self) -> None:
        self._seen: dict[Hashable, deque[float]] = {}

    def admit(self, who: Hashable, limit: int, window_s: float) -> float | None:
        """None when `who` may send one more message now (and counts it), else the seconds
        until it may."""
        now = time.monotonic()
        times = self._seen.setdefault(who, deque())
        while times and times[0] <= now - window_s:
            times.popleft()
        if len(times) >= limit:
            return max(0.0, times[0] + window_s - now)
        times.append(now)
        return None

    def sweep(self, window_s: float) -> None:
        """Forgets the users whose every message is older than `window_s`."""
        cutoff = time.monotonic() - window_s
        for who in [w for w, t in self._seen.items() if not t or t[-1] <= cutoff]:
            del self._seen[who]

    def __len__(self) -> int:
        return len(self._seen)
