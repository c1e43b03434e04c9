"""The CLI workflows the README teaches, with the real ``ros2`` command (ros2cli): ``ros2 param
set /policy_node memory.gate_threshold`` applied on the next frame, ``ros2 lifecycle set``
transitions, ``ros2 service call`` arm / disarm, and an episode recorded through
``/episode_recorder/start_episode`` and ``end_episode``."""
import os
import signal
import subprocess
import time

import pytest
from probe import HOW, Probe

pytest.importorskip('ros2cli', reason=HOW)

from aura_ros.tools.processes import executable  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def ros2(*args, timeout=60):
    """Run ``ros2 ARGS`` (no daemon: nothing left running; discovery given 2 s, a call whose
    discovery missed the node is tried again); returns (exit status, output)."""
    verb = args[0]
    extra = ['--no-daemon', '--spin-time', '2'] if verb in ('param', 'lifecycle') else []
    for _ in range(3):
        proc = subprocess.run(['ros2', *args[:2], *extra, *args[2:]], capture_output=True,
                              text=True, timeout=timeout, env=dict(os.environ))
        out = proc.stdout + proc.stderr
        if 'Node not found' not in out:
            break
    return proc.returncode, out


@pytest.fixture
def graph(ros_context, tmp_path):
    """policy_node (disarmed at start), perception_node, the simulated arm (endless episodes)
    and episode_recorder, as processes with the shipped parameter file."""
    import yaml

    from aura_ros.paths import package_share
    shipped = os.path.join(package_share('aura_ros'), 'config', 'default.yaml')
    data = yaml.safe_load(open(shipped))
    data['/**/policy_node']['ros__parameters']['start_armed'] = False   # as on a robot
    data['/**/policy_node']['ros__parameters']['memory']['checkpoint'] = os.path.join(
        package_share('aura_ros'), 'models', 'aura_sim', 'memory.safetensors')
    data['/**']['ros__parameters']['backbone']['model_path'] = os.path.join(
        package_share('aura_ros'), 'models', 'pi0_sim')
    params = tmp_path / 'arm.yaml'
    params.write_text(yaml.safe_dump(data))
    procs = {}

    def start(name, *args):
        procs[name] = subprocess.Popen([executable(name), '--ros-args', *args],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, env=dict(os.environ))
    start('policy_node', '--params-file', str(params))
    start('perception_node', '--params-file', str(params))
    start('sim_arm_node', '--params-file', str(params), '-p', 'command_timeout:=0.2')
    start('episode_recorder', '-p', f'output:={tmp_path / "episodes"}')
    probe = Probe(ros_context, 'cli_probe')
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, out = ros2('lifecycle', 'get', '/policy_node')
            if status == 0 and out.startswith('active'):
                break
            time.sleep(0.5)
        assert out.startswith('active'), out
        yield probe, tmp_path, procs
    finally:
        probe.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_arm_threshold_lifecycle_and_disarm_from_the_command_line(graph):
    probe = graph[0]
    time.sleep(2.0)
    assert probe.commands == [] and probe.events == []      # disarmed: nothing at all
    status, out = ros2('service', 'call', '/policy_node/arm', 'std_srvs/srv/Trigger')
    assert status == 0 and 'success=True' in out, out
    assert probe.wait(lambda: len(probe.events) >= 30, 60)
    # the gate threshold, set from the command line, applies to the next frames
    batches = {}
    for threshold in ('0.01', '0.99'):
        status, out = ros2('param', 'set', '/policy_node', 'memory.gate_threshold', threshold)
        assert status == 0 and 'Set parameter successful' in out, out
        n = len(probe.events)
        assert probe.wait(lambda n=n: len(probe.events) >= n + 45, 60)
        batches[float(threshold)] = probe.events[n + 5:]     # (a frame in flight may predate)
    for threshold, events in batches.items():
        assert all(e.wrote == (e.gate_probability > threshold) for e in events), threshold
    low, high = batches[0.01], batches[0.99]
    assert sum(e.wrote for e in low) > sum(e.wrote for e in high)   # the change took effect
    status, out = ros2('param', 'set', '/policy_node', 'memory.gate_threshold', '1.5')
    assert 'Setting parameter failed' in out and 'out of range' in out, out   # with reason
    status, out = ros2('param', 'get', '/policy_node', 'memory.gate_threshold')
    assert '0.99' in out, out
    # lifecycle: inactive publishes nothing; active again commands again
    status, out = ros2('lifecycle', 'set', '/policy_node', 'deactivate')
    assert status == 0 and 'Transitioning successful' in out, out
    time.sleep(0.5)
    n = len(probe.commands)
    time.sleep(1.5)
    assert len(probe.commands) == n
    status, out = ros2('lifecycle', 'set', '/policy_node', 'activate')
    assert status == 0 and 'Transitioning successful' in out, out
    assert probe.wait(lambda: len(probe.commands) > n + 10, 30)
    # disarm: one hold, then nothing
    status, out = ros2('service', 'call', '/policy_node/disarm', 'std_srvs/srv/Trigger')
    assert status == 0 and 'success=True' in out, out
    time.sleep(0.5)
    n = len(probe.commands)
    time.sleep(1.5)
    assert len(probe.commands) == n


def test_an_episode_recorded_through_the_recorder_services(graph):
    probe, tmp_path, procs = graph
    assert ros2('service', 'call', '/policy_node/arm', 'std_srvs/srv/Trigger')[0] == 0
    status, out = ros2('service', 'call', '/episode_recorder/start_episode',
                       'std_srvs/srv/Trigger')
    assert status == 0 and 'episode 0 started' in out, out
    assert probe.wait(lambda: len(probe.events) >= 20, 60)
    status, out = ros2('service', 'call', '/episode_recorder/end_episode',
                       'std_srvs/srv/SetBool', '{data: true}')
    assert status == 0 and 'episode 0 ended: success' in out, out
    status, out = ros2('service', 'call', '/episode_recorder/end_episode',
                       'std_srvs/srv/SetBool', '{data: false}')
    assert 'no episode is running' in out, out
    from rosbags.highlevel import AnyReader
    recorder = procs['episode_recorder']
    recorder.send_signal(signal.SIGINT)              # the bag is closed cleanly
    log = recorder.communicate(timeout=20)[0]
    assert recorder.returncode == 0 and '1 episodes, 1 successful' in log, log
    with AnyReader([tmp_path / 'episodes']) as reader:
        conn = next(c for c in reader.connections if c.topic == '/aura/episode_events')
        events = [reader.deserialize(raw, conn.msgtype)
                  for _, _, raw in reader.messages(connections=[conn])]
    assert [(e.event, e.success) for e in events] == [(0, False), (1, True)]
