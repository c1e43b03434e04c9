"""What the policy node reports: counters, rates, latencies and the one status line of
/diagnostics (level, message, key-values). No ROS here: the node publishes what this builds.

Status, first match wins: not active (WARN, the lifecycle state); disarmed (WARN); frames
stopped and holding (ERROR); backbone unavailable and holding (ERROR); no joint states
(ERROR); no frame yet (WARN); a problem in the last PROBLEM_WINDOW seconds (WARN, the
problem); async control loop held recently (WARN, why); else OK "commanding".
"""
import time
from collections import deque

import numpy as np

from aura_ros.control.rates import RateMeter

OK, WARN, ERROR = b'\x00', b'\x01', b'\x02'   # diagnostic_msgs/DiagnosticStatus levels (bytes)
PROBLEM_WINDOW = 3.0               # seconds a problem keeps /diagnostics at WARN
COUNTERS = ('frames', 'skipped_frames', 'steps', 'commands', 'holds', 'refused_no_joint_states',
            'invalid_actions', 'bad_joint_states', 'bad_instructions', 'step_errors',
            'snapshots', 'snapshot_errors', 'corrupt_snapshots', 'stale_frames_used',
            'bad_frames', 'configure_failures', 'refused_parameters', 'disarmed_frames',
            'clock_jumps', 'backbone_unavailable')


class PolicyDiagnostics:
    def __init__(self):
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.latencies = deque(maxlen=500)    # frame stamp -> command published (ms)
        self.step_times = deque(maxlen=500)   # one PolicyRunner step (ms)
        self.frame_rate, self.command_rate = RateMeter(), RateMeter()
        self.last_problem, self.last_problem_time = '', -1e9

    def problem(self, message):
        """Remember a problem (WARN for PROBLEM_WINDOW seconds)."""
        self.last_problem, self.last_problem_time = message, time.monotonic()

    def step_done(self, step_ms, latency_ms):
        """Timing of one step (the node counts it where it publishes its GateEvent)."""
        self.step_times.append(step_ms)
        self.latencies.append(latency_ms)

    def mean_step_ms(self):
        return float(np.mean(self.step_times)) if self.step_times else 0.0

    def unconfigured(self, state):
        """(level, message, values) before a runner exists."""
        level = ERROR if self.counts['configure_failures'] else WARN
        return level, self.last_problem or state, {'state': state, **self._counters()}

    def status(self, state, armed, holding, has_positions, has_frames, async_hold=None,
               backbone_down=None):
        """(level, message) of a configured node; ``async_hold`` = (time, reason) of the
        async control loop's latest hold (None in sync execution); ``backbone_down`` = why the
        backbone does not answer (None when it does)."""
        now = time.monotonic()
        if state != 'active':
            return WARN, state
        if not armed:
            return WARN, 'disarmed: call ~/arm to command'
        if holding:
            return ERROR, 'no frames: holding position'
        if backbone_down:
            return ERROR, f'backbone unavailable: holding position ({backbone_down})'
        if not has_positions:
            return ERROR, 'no joint states: not commanding'
        if not has_frames:
            return WARN, 'waiting for frames'
        if now - self.last_problem_time < PROBLEM_WINDOW:
            return WARN, self.last_problem
        if async_hold is not None and now - async_hold[0] < PROBLEM_WINDOW:
            return WARN, f'holding: {async_hold[1]}'
        return OK, 'commanding'

    def values(self, report, async_stats=None):
        """/diagnostics key-values: the memory report, rates, latencies, counters and (async)
        the control loop's statistics as ``async_*``."""
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        values = dict(
            writes=report['total_writes'], steps=report['total_steps'],
            write_rate=f"{report['write_rate']:.4f}", state_bytes=report['state_bytes'],
            bytes_written=report['bytes_written'],
            storage_bytes_written=report['storage_bytes_written'],
            frame_rate_hz=f'{self.frame_rate.rate():.1f}',
            command_rate_hz=f'{self.command_rate.rate():.1f}',
            dropped_frames=self.counts['skipped_frames'],
            latency_ms_p50=f'{np.percentile(lat, 50):.1f}',
            latency_ms_p99=f'{np.percentile(lat, 99):.1f}',
            step_ms_mean=f'{self.mean_step_ms():.2f}', armed=report['armed'],
            execution=report['execution'])
        for k, v in (async_stats or {}).items():
            if k != 'armed':
                values[f'async_{k}'] = f'{v:.2f}' if isinstance(v, float) else v
        values.update(self._counters())
        return values

    def _counters(self):
        return {f'count_{k}': v for k, v in self.counts.items()}
