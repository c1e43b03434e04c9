"""Both executions behind one interface: the command rule (control/limits.py) as an invariant
over randomized runs with faults, and the sync execution's arming, disarm hold and reset."""
import math
import time

import numpy as np
import pytest

from aura_ros.bench.reliability import limits_run
from aura_ros.control import limits as limits_module
from aura_ros.control.execution import ExecutionConfig, SyncExecution, make_execution
from aura_ros.control.limits import CommandLimits


@pytest.mark.parametrize('kind', ['sync', 'async'])
def test_every_command_keeps_the_rule_through_pauses_pushes_stale_states_and_rearming(kind):
    result = limits_run(kind, steps=400, seed=3, progress=False)
    assert result['commands'] >= 400 and result['violations'] == 0, result['examples']
    assert result['largest_from_reference'] <= result['step_limit'] + 1e-9
    # the run did fault the execution, and resumed after those faults
    assert result['holds_caused'] >= 8 and result['first_commands_after_a_hold'] >= 5
    assert result['faults']['pushes_while_paused'] >= 1


def test_the_run_catches_a_guard_that_resumes_from_its_old_command(monkeypatch):
    """The mutant of the reported bug: after a hold the limiter continues from the command
    it sent before, not from where the arm is."""
    def hold(self, positions):
        held = self.limits.hold_at(positions)
        if held is not None:
            self.previous = held
        return held
    monkeypatch.setattr(limits_module.CommandGuard, 'hold', hold)
    monkeypatch.setattr(limits_module.CommandGuard, 'release', lambda self: None)
    result = limits_run('sync', steps=400, seed=3, progress=False)
    assert result['violations'] > 0 and result['largest_from_reference'] > 0.5


class Runner:
    """A PolicyRunner stand-in: each step sleeps, then commands its own step count."""

    def __init__(self, delay=0.0):
        self.delay, self.n, self.episode_seed, self.holds = delay, 0, None, []

    def step(self, image, positions, instruction=''):
        time.sleep(self.delay)
        self.n += 1
        return type('Step', (), dict(command=np.full(2, float(self.n)), wrote=False,
                                     rejected=''))()

    def hold(self, positions):
        self.holds.append(positions)
        return None if positions is None else np.asarray(positions, float)

    def reset(self, episode_seed=None):
        self.episode_seed = episode_seed

    def forget_commands(self):
        pass


def wait_for(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


def test_sync_disarm_sends_one_hold_at_the_measured_positions_and_stops_stepping():
    sent, steps = [], []
    runner = Runner()
    q = [np.array([0.2, -0.1])]
    execution = SyncExecution(runner, sent.append, lambda: q[0],
                              on_step=lambda *a: steps.append(a), start_armed=True)
    try:
        execution.submit(None, time.monotonic())
        assert wait_for(lambda: len(steps) == 1)
        held = execution.disarm()
        np.testing.assert_array_equal(held, q[0])
        np.testing.assert_array_equal(sent[-1], q[0])
        assert len(sent) == 2
        for _ in range(5):                          # frames keep arriving while disarmed
            execution.submit(None, time.monotonic())
            time.sleep(0.02)
        assert len(sent) == 2 and len(steps) == 1 and runner.n == 1   # no step, no command
        assert execution.frames_stopped() is None   # disarmed: nothing to hold
        execution.arm()
        execution.submit(None, time.monotonic())
        assert wait_for(lambda: len(steps) == 2) and len(sent) == 3
    finally:
        assert execution.stop()


def test_sync_frames_stopped_holds_once_at_the_measured_positions_and_a_failing_step_holds():
    sent, errors = [], []
    q = [np.array([0.5, 0.5])]

    class Failing(Runner):
        def step(self, image, positions, instruction=''):
            raise RuntimeError('backbone gone')

    execution = SyncExecution(Failing(), sent.append, lambda: q[0], start_armed=True,
                              on_error=lambda context, exc: errors.append((context, exc)))
    try:
        np.testing.assert_array_equal(execution.frames_stopped(), q[0])
        for i in range(3):
            execution.submit(None, time.monotonic(), context=i)
            assert wait_for(lambda n=i + 1: len(errors) == n)
        # one hold when steps start failing, not one per failed frame; the errors typed
        assert len(sent) == 2 and isinstance(errors[0][1], RuntimeError)
        assert [c for c, _ in errors] == [0, 1, 2]
    finally:
        execution.stop()


def test_sync_reset_drops_the_frame_not_yet_taken():
    sent = []
    runner = Runner(delay=0.1)
    execution = make_execution(ExecutionConfig('sync'), runner, sent.append, lambda: np.zeros(2),
                               start_armed=True)
    try:
        execution.submit(None, time.monotonic())     # taken: runs for 0.1 s
        time.sleep(0.03)
        execution.submit(None, time.monotonic())     # waiting behind it
        execution.reset(episode_seed=4)                    # waits for the step in flight
        time.sleep(0.2)
        assert runner.episode_seed == 4 and runner.n == 1 and len(sent) == 1
    finally:
        execution.stop()


def test_execution_config_refuses_what_the_parameters_would_refuse_and_maps_them():
    with pytest.raises(ValueError, match="execution must be one of \\['sync', 'async'\\]"):
        ExecutionConfig('batch')
    for bad in (dict(control_rate=0.5), dict(transition='jump'), dict(blend_s=0.0),
                dict(ensemble_decay=-1.0), dict(max_age_s=math.nan), dict(control_priority=100),
                dict(action_period=0.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ExecutionConfig('async', **bad)
    from aura_ros.params import POLICY_PARAMS, with_defaults
    p = with_defaults({'control_rate': 50.0, 'chunk.max_age': 0.3}, POLICY_PARAMS)
    config = ExecutionConfig.from_params(p)
    assert (config.kind, config.control_rate, config.max_age_s) == ('sync', 50.0, 0.3)
    assert set(ExecutionConfig.PARAMETERS) <= {spec.name for spec in POLICY_PARAMS}
    assert config.replace(control_rate=20.0).control_rate == 20.0 and config.control_rate == 50.0
    assert set(config.runtime()) == set(ExecutionConfig.RUNTIME)


def test_async_execution_has_the_same_interface():
    from aura_ros.control.async_policy import AsyncPolicy
    for name in ('submit', 'arm', 'disarm', 'frames_stopped', 'reset', 'configure', 'stats',
                 'stop', 'armed', 'dropped', 'inference_failing'):
        assert hasattr(SyncExecution, name) and hasattr(AsyncPolicy, name), name
    limits = CommandLimits([-1, -1], [1, 1], 0.1)
    with pytest.raises(ValueError, match='max_delta'):
        limits.set_rates(max_delta=float('nan'))
    assert limits.max_delta == 0.1
