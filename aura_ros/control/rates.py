"""Event rates over a sliding window (frames, commands, inferences). No ROS."""
import time
from collections import deque


class RateMeter:
    """Events per second over a sliding window (frame rate, command rate)."""

    def __init__(self, window=5.0):
        self.window = window
        self.times = deque()

    def tick(self, now=None):
        now = time.monotonic() if now is None else now
        self.times.append(now)
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()

    def rate(self, now=None):
        now = time.monotonic() if now is None else now
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-6)
