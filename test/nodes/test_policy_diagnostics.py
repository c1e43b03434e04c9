"""The policy node's status line without a graph: the first matching condition wins, a
problem holds WARN for PROBLEM_WINDOW seconds, counters and async statistics are reported."""
import time

from aura_ros.nodes.policy_diagnostics import ERROR, OK, PROBLEM_WINDOW, WARN, PolicyDiagnostics

REPORT = dict(total_writes=3, total_steps=30, write_rate=0.1, state_bytes=4224,
              bytes_written=12672, storage_bytes_written=0, armed=True, execution='async')


def status(diag, **kw):
    args = dict(state='active', armed=True, holding=False, has_positions=True,
                has_frames=True, async_hold=None)
    args.update(kw)
    return diag.status(**args)


def test_status_conditions_in_order():
    diag = PolicyDiagnostics()
    assert status(diag) == (OK, 'commanding')
    assert status(diag, state='inactive', armed=False) == (WARN, 'inactive')
    assert status(diag, armed=False, holding=True) == (WARN, 'disarmed: call ~/arm to command')
    assert status(diag, holding=True, has_positions=False)[0] == ERROR
    assert status(diag, has_positions=False) == (ERROR, 'no joint states: not commanding')
    assert status(diag, backbone_down='UNAVAILABLE', has_positions=False) == (
        ERROR, 'backbone unavailable: holding position (UNAVAILABLE)')
    assert status(diag, backbone_down='UNAVAILABLE', armed=False)[0] == WARN   # disarmed first
    assert status(diag, has_frames=False) == (WARN, 'waiting for frames')
    now = time.monotonic()
    assert status(diag, async_hold=(now, 'chunk too old')) == (WARN, 'holding: chunk too old')
    assert status(diag, async_hold=(now - PROBLEM_WINDOW - 1, 'old')) == (OK, 'commanding')


def test_a_problem_warns_for_its_window_then_clears():
    diag = PolicyDiagnostics()
    diag.problem('clock jumped by -90.000 s')
    assert status(diag) == (WARN, 'clock jumped by -90.000 s')
    diag.last_problem_time -= PROBLEM_WINDOW + 0.1
    assert status(diag) == (OK, 'commanding')


def test_values_carry_counters_timing_and_async_statistics():
    diag = PolicyDiagnostics()
    diag.counts['clock_jumps'] += 2
    diag.step_done(4.0, 12.0)
    diag.step_done(6.0, 14.0)
    values = diag.values(REPORT, dict(armed=True, control_rate_hz=99.5, holds=3))
    assert values['count_clock_jumps'] == 2 and values['step_ms_mean'] == '5.00'
    assert values['latency_ms_p50'] == '13.0' and values['writes'] == 3
    assert values['async_control_rate_hz'] == '99.50' and values['async_holds'] == 3
    assert 'async_armed' not in values
    level, message, unconfigured = PolicyDiagnostics().unconfigured('unconfigured')
    assert (level, message) == (WARN, 'unconfigured') and 'count_frames' in unconfigured
