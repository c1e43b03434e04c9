"""python -m aura_ros.tools.ctl: the README's ros2 CLI calls for pip-only installs, against a
running policy_node process."""
import signal
import subprocess
import sys

import pytest
import rclpy

from aura_ros.tools.processes import executable
from conftest import spawn, write_params

pytestmark = pytest.mark.ros


def ctl(*args):
    proc = subprocess.run([sys.executable, '-m', 'aura_ros.tools.ctl', '--timeout', '60', *args],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


@pytest.mark.slow
def test_arm_param_lifecycle_and_clear_failures(tiny_models, tmp_path):
    params = write_params(tmp_path / 'p.yaml', dict(tiny_models['pi0_block'],
                                                    model_path=str(tiny_models['root'] / 'pi0')),
                          tiny_models['memory_pi0'], extra_policy={'start_armed': False})
    proc = spawn([executable('policy_node'), '--ros-args', '-r', '__ns:=/left',
                  '--params-file', str(params)])
    try:
        status, out = ctl('--ns', 'left', 'lifecycle', 'get')
        assert (status, out) == (0, 'active'), out
        assert ctl('--ns', 'left', 'arm') == (0, 'armed')
        assert ctl('--ns', 'left', 'param', 'set', 'memory.gate_threshold', '0.9') == (0, 'set')
        assert ctl('--ns', 'left', 'param', 'get', 'memory.gate_threshold') == (
            0, 'memory.gate_threshold: 0.9')
        status, out = ctl('--ns', 'left', 'param', 'set', 'memory.gate_threshold', '1.5')
        assert status == 1 and 'refused' in out and '0.99' in out
        status, out = ctl('--ns', 'left', 'report')
        assert status == 0 and '"armed": true' in out
        assert ctl('--ns', 'left', 'lifecycle', 'set', 'deactivate')[1] == \
            'active -> deactivate: done'
        assert ctl('--ns', 'left', 'lifecycle', 'get') == (0, 'inactive')
        assert ctl('--ns', 'left', 'lifecycle', 'set', 'shutdown') == (
            0, 'inactive -> shutdown: done')
        assert proc.wait(timeout=20) == 0                # the process ended by itself
        status, out = subprocess.run(
            [sys.executable, '-m', 'aura_ros.tools.ctl', '--timeout', '1', 'arm'],
            capture_output=True, text=True).returncode, ''
        assert status == 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)


class FakeLifecycle:
    """get_state / change_state of a node ``/fake`` served in a thread; ``drop`` names the
    answers to lose (as Fast DDS loses a reply whose reader it has not matched yet): the
    request is still carried out."""

    def __init__(self, context, label, drop=(), leave_on_shutdown=False, stuck=False):
        import threading

        from lifecycle_msgs.srv import ChangeState, GetState
        from rclpy.executors import SingleThreadedExecutor
        self.label, self.drop, self.calls = label, set(drop), []
        self.leave_on_shutdown, self.stuck = leave_on_shutdown, stuck
        self.node = rclpy.create_node('fake', context=context)
        self.get = self.node.create_service(GetState, '/fake/get_state', self._get)
        self.change = self.node.create_service(ChangeState, '/fake/change_state', self._change)
        for name, srv in (('get_state', self.get), ('change_state', self.change)):
            srv.send_response = self._sender(name, srv.send_response)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _sender(self, name, send):
        return lambda response, header: None if self._lose(name) else send(response, header)

    def _lose(self, name):
        if name in self.drop:
            self.drop.discard(name)      # each named answer is lost once
            return True
        return False

    def _spin(self):
        while self.running:
            self.executor.spin_once(timeout_sec=0.05)

    def _get(self, request, response):
        self.calls.append('get_state')
        response.current_state.label = self.label
        return response

    def _change(self, request, response):
        self.calls.append(('change_state', request.transition.id))
        if not self.stuck:
            self.label = {3: 'active', 4: 'inactive', 6: 'finalized'}[request.transition.id]
        if self.label == 'finalized' and self.leave_on_shutdown:
            self.node.destroy_service(self.change)     # the process ends: it leaves the graph
            self.node.destroy_service(self.get)
        response.success = True
        return response

    def close(self):
        self.running = False
        self.thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def fake(ros_context):
    made = []
    yield lambda *args, **kwargs: made.append(FakeLifecycle(ros_context, *args, **kwargs)) or \
        made[-1]
    for f in made:
        f.close()


def ctl_fake(*args, timeout=30):
    proc = subprocess.run([sys.executable, '-m', 'aura_ros.tools.ctl', '--node', 'fake',
                           '--timeout', str(timeout), *args],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def test_a_lost_answer_to_an_idempotent_request_is_asked_again(fake):
    node = fake('active', drop={'get_state'})
    assert ctl_fake('lifecycle', 'get') == (0, 'active')
    assert node.calls == ['get_state', 'get_state']          # asked again, answered


def test_a_lost_transition_answer_is_recovered_from_the_state_and_sent_once(fake):
    node = fake('active', drop={'change_state'})
    assert ctl_fake('lifecycle', 'set', 'deactivate') == (
        0, 'active -> deactivate: done (the node is inactive)')
    assert node.calls.count(('change_state', 4)) == 1        # never sent twice


def test_a_lost_shutdown_answer_is_recovered_when_the_node_leaves(fake):
    fake('inactive', drop={'change_state'}, leave_on_shutdown=True)
    assert ctl_fake('lifecycle', 'set', 'shutdown') == (
        0, 'inactive -> shutdown: done (the node has left the graph)')


def test_timeout_bounds_the_whole_call_and_an_unfinished_transition_fails(fake):
    import time
    fake('active', drop={'change_state'}, stuck=True)   # no answer, the state never changes
    start = time.monotonic()
    status, out = ctl_fake('lifecycle', 'set', 'deactivate', timeout=4)
    took = time.monotonic() - start
    assert status == 1 and out == '/fake/change_state: no answer within 4 s'
    assert took < 4 + 3.0, took           # one deadline (plus start-up), not one per stage


def test_a_lost_answer_from_the_goal_state_is_not_taken_for_done(fake):
    """deactivate on an inactive node is refused; if that answer is lost, the unchanged state
    must not read as 'done'."""
    fake('inactive', drop={'change_state'}, stuck=True)
    assert ctl_fake('lifecycle', 'set', 'deactivate', timeout=4) == (
        1, '/fake/change_state: no answer within 4 s')
