"""Malformed-input matrix against the running nodes (separate processes, real DDS).

Every case sends one kind of bad input and then checks: both nodes are still alive, the bad
input left one clear log line and moved a counter in /diagnostics, and every joint command ever
published (the whole module long) was finite and inside the joint limits. Configure-time cases
(missing/corrupt checkpoints, mismatched backbone folders) run the policy node in-process.
"""
import json
import math
import signal
import threading

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from aura_ros.tools.processes import executable
from conftest import spawn, write_params
from helpers import camera_image, joint_state, spin_until

pytestmark = pytest.mark.ros
LIMIT = 1.0


class Output:
    """Collects a process's output lines in the background."""

    def __init__(self, proc):
        self.proc, self.lines = proc, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def since(self, n):
        return self.lines[n:]


class Rig:
    def __init__(self, ros_context, params):
        args = ['--ros-args', '--params-file', str(params)]
        self.perception = spawn([executable('perception_node'), *args, '-p',
                                 'max_image_bytes:=200000'])
        self.policy = spawn([executable('policy_node'), *args])
        self.out = {'perception': Output(self.perception), 'policy': Output(self.policy)}
        self.node = rclpy.create_node('malformed_test', context=ros_context)
        self.commands, self.diag = [], {}
        self.node.create_subscription(JointTrajectory, '/aura/joint_commands',
                                      self.commands.append, 100)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.on_diag, 100)
        self.camera = self.node.create_publisher(Image, '/camera/image_raw',
                                                 qos_profile_sensor_data)
        self.frames = self.node.create_publisher(
            Image, '/aura/frames', QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.joints = self.node.create_publisher(JointState, '/joint_states', 10)
        self.instruction = self.node.create_publisher(String, '/aura/instruction', 10)
        self.params = self.node.create_client(SetParameters, '/policy_node/set_parameters')
        self.executor = SingleThreadedExecutor(context=ros_context)
        self.executor.add_node(self.node)
        self.rng = np.random.default_rng(0)

    def on_diag(self, msg):
        for status in msg.status:
            self.diag[status.name] = {kv.key: kv.value for kv in status.values}

    def spin(self, seconds):
        spin_until(self.executor, lambda: False, seconds)

    def good_step(self, n=3):
        for _ in range(n):
            self.joints.publish(joint_state(self.node, (0.1, -0.2, 0.3)))
            self.camera.publish(camera_image(self.node, self.rng.integers(
                0, 256, (48, 64, 3), np.uint8)))
            self.spin(0.1)

    def counter(self, node, key):
        status = self.diag.get(f'aura_ros: {node}', {})
        return int(status.get(key, 0))

    def logged(self, node, n, match, timeout=6.0):
        """A line after the n-th of ``node``'s output matches (the output is read by another
        thread, so the line may land a little after the counter in /diagnostics moved)."""
        return spin_until(self.executor,
                          lambda: any(match(line) for line in self.out[node].since(n)), timeout)

    def wait_counter(self, node, key, above, timeout=6.0):
        return spin_until(self.executor, lambda: self.counter(node, key) > above, timeout)

    def alive(self):
        return self.perception.poll() is None and self.policy.poll() is None

    def close(self):
        for p in (self.perception, self.policy):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in (self.perception, self.policy):
            try:
                p.wait(timeout=20)
            except Exception:  # noqa: BLE001
                p.kill()
        self.node.destroy_node()


@pytest.fixture(scope='module')
def rig(tiny_models, tmp_path_factory):
    context = rclpy.Context()
    rclpy.init(context=context)
    params = write_params(tmp_path_factory.mktemp('malformed') / 'p.yaml',
                          dict(tiny_models['pi0_block'],
                               model_path=str(tiny_models['root'] / 'pi0')),
                          tiny_models['memory_pi0'])
    rig = Rig(context, params)
    assert spin_until(rig.executor, lambda: rig.camera.get_subscription_count() > 0 and
                      rig.node.count_publishers('/aura/joint_commands') > 0, 60)
    rig.good_step(10)
    assert spin_until(rig.executor, lambda: len(rig.commands) > 0, 30), 'pipeline not running'
    yield rig
    rig.close()
    rclpy.try_shutdown(context=context)
    # over the whole matrix: no invalid command ever
    for cmd in rig.commands:
        p = np.array(cmd.points[0].positions)
        assert np.all(np.isfinite(p)) and np.all(np.abs(p) <= LIMIT)


def image_msg(rig, width=64, height=48, encoding='rgb8', step=None, data=None):
    msg = camera_image(rig.node, np.zeros((1, 1, 3), np.uint8))
    msg.width, msg.height, msg.encoding = width, height, encoding
    msg.step = width * 3 if step is None else step
    msg.data = bytes(height * msg.step) if data is None else data
    return msg


IMAGE_CASES = {
    'unknown_encoding': dict(encoding='32FC1', step=64 * 4, data=bytes(48 * 64 * 4)),
    'compressed_name_as_encoding': dict(encoding='jpeg'),
    'empty_encoding': dict(encoding=''),
    'zero_width': dict(width=0, step=0, data=b''),
    'zero_height': dict(height=0, data=b''),
    'step_smaller_than_row': dict(step=100),
    'truncated_data': dict(data=bytes(48 * 64 * 3 - 100)),
    'data_longer_than_declared': dict(data=bytes(48 * 64 * 3 + 7)),
    'enormous_declared_size': dict(width=100000, height=100000, step=300000, data=bytes(16)),
    'larger_than_max_image_bytes': dict(width=300, height=300, step=900, data=bytes(270_000)),
    'yuv422_odd_width': dict(width=63, encoding='yuv422', step=126, data=bytes(48 * 126)),
    'mono16_odd_length': dict(encoding='mono16', step=128, data=bytes(48 * 128 - 1)),
    'bgra8_with_rgb8_data': dict(encoding='bgra8', step=256, data=bytes(48 * 64 * 3)),
}


@pytest.mark.slow
@pytest.mark.parametrize('case', sorted(IMAGE_CASES))
def test_malformed_camera_image(rig, case):
    before = rig.counter('perception', 'malformed')
    n = len(rig.out['perception'].lines)
    rig.camera.publish(image_msg(rig, **IMAGE_CASES[case]))
    assert rig.wait_counter('perception', 'malformed', before), case
    assert rig.logged('perception', n, lambda line: 'dropped malformed frame' in line)
    rig.good_step()
    assert rig.alive()


FRAME_CASES = {
    'frame_wrong_size_bypassing_perception': dict(width=32, height=32, step=96,
                                                  data=bytes(32 * 96)),
    'frame_wrong_encoding_bypassing_perception': dict(width=64, height=64, encoding='bgr8'),
}


@pytest.mark.parametrize('case', sorted(FRAME_CASES))
def test_bad_frame_straight_to_the_policy(rig, case):
    before = rig.counter('policy', 'count_bad_frames')
    n = len(rig.out['policy'].lines)
    rig.joints.publish(joint_state(rig.node, (0.1, -0.2, 0.3)))
    rig.frames.publish(image_msg(rig, **FRAME_CASES[case]))
    assert rig.wait_counter('policy', 'count_bad_frames', before)
    assert rig.logged('policy', n, lambda line: 'ignored frame' in line)
    rig.good_step()
    assert rig.alive()


JOINT_CASES = {
    'nan_position': dict(positions=(math.nan, 0.0, 0.0)),
    'inf_position': dict(positions=(0.0, math.inf, 0.0)),
    'minus_inf_position': dict(positions=(0.0, 0.0, -math.inf)),
    'missing_joint': dict(positions=(0.0, 0.0), names=('joint_1', 'joint_2')),
    'unknown_joint_names': dict(positions=(0.0, 0.0, 0.0), names=('a', 'b', 'c')),
    'fewer_positions_than_names': dict(positions=(0.0, 0.0)),
    'empty_joint_state': dict(positions=(), names=()),
}


@pytest.mark.parametrize('case', sorted(JOINT_CASES))
def test_malformed_joint_state(rig, case):
    spec = JOINT_CASES[case]
    msg = JointState(name=list(spec.get('names', ('joint_1', 'joint_2', 'joint_3'))),
                     position=[float(x) for x in spec['positions']])
    before = rig.counter('policy', 'count_bad_joint_states')
    n = len(rig.out['policy'].lines)
    rig.joints.publish(msg)
    assert rig.wait_counter('policy', 'count_bad_joint_states', before)
    assert rig.logged('policy', n, lambda line: 'ignored joint state' in line)
    rig.good_step()
    assert rig.alive()


@pytest.mark.parametrize('length', [2001, 200_000])
def test_huge_instruction_ignored(rig, length):
    before = rig.counter('policy', 'count_bad_instructions')
    n = len(rig.out['policy'].lines)
    rig.instruction.publish(String(data='x' * length))
    assert rig.wait_counter('policy', 'count_bad_instructions', before)
    assert rig.logged('policy', n, lambda line: f'ignored instruction of {length}' in line)
    rig.good_step()
    assert rig.alive()


def test_empty_instruction_falls_back_to_the_default(rig):
    n = len(rig.out['policy'].lines)
    rig.instruction.publish(String(data=''))
    rig.spin(0.5)
    rig.good_step()
    assert rig.logged('policy', n, lambda line: "instruction: ''" in line)
    before = len(rig.commands)
    rig.good_step()
    assert spin_until(rig.executor, lambda: len(rig.commands) > before, 5) and rig.alive()


def set_param(rig, name, kind, value):
    field = {ParameterType.PARAMETER_DOUBLE: 'double_value',
             ParameterType.PARAMETER_STRING: 'string_value',
             ParameterType.PARAMETER_INTEGER: 'integer_value'}[kind]
    request = SetParameters.Request(parameters=[ParameterMsg(
        name=name, value=ParameterValue(type=kind, **{field: value}))])
    assert rig.params.wait_for_service(timeout_sec=10)
    future = rig.params.call_async(request)
    assert spin_until(rig.executor, future.done, 10)
    return future.result().results[0]


PARAM_CASES = {
    'max_delta_negative': ('command.max_delta', ParameterType.PARAMETER_DOUBLE, -0.5),
    'gate_threshold_above_one': ('memory.gate_threshold', ParameterType.PARAMETER_DOUBLE, 1.5),
    'frame_timeout_nan': ('frame_timeout', ParameterType.PARAMETER_DOUBLE, math.nan),
    'max_delta_wrong_type': ('command.max_delta', ParameterType.PARAMETER_STRING, 'fast'),
    'read_only_backbone': ('backbone.adapter', ParameterType.PARAMETER_STRING,
                           'vision_features'),
}


@pytest.mark.parametrize('case', sorted(PARAM_CASES))
def test_out_of_range_parameter_over_the_service(rig, case):
    name, kind, value = PARAM_CASES[case]
    before = rig.counter('policy', 'count_refused_parameters')
    n = len(rig.out['policy'].lines)
    result = set_param(rig, name, kind, value)
    assert not result.successful and result.reason
    assert rig.wait_counter('policy', 'count_refused_parameters', before)
    assert rig.logged('policy', n, lambda line: 'refused parameter change' in line and name in line)
    rig.good_step()
    assert rig.alive()


# ---- configure-time faults: the lifecycle node stays unconfigured, says why -------------------
def configure_with(ros_context, tiny_models, **overrides):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from aura_ros.nodes.policy_node import PolicyNode
    block = dict(tiny_models['pi0_block'], model_path=str(tiny_models['root'] / 'pi0'))
    values = {f'backbone.{k}': v for k, v in block.items()}
    values.update({'memory.checkpoint': str(tiny_models['memory_pi0']), 'autostart': False,
                   'command.lower_limits': [-1.0] * 3, 'command.upper_limits': [1.0] * 3})
    values.update(overrides)
    node = PolicyNode(context=ros_context,
                      parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    try:
        result = node.trigger_configure()
        return result == TransitionCallbackReturn.SUCCESS, node.diag.last_problem, dict(node.counts)
    finally:
        node.destroy_node()


def test_missing_memory_checkpoint(ros_context, tiny_models, tmp_path):
    ok, problem, counts = configure_with(ros_context, tiny_models, **{
        'memory.checkpoint': str(tmp_path / 'missing.safetensors')})
    assert not ok and 'not found' in problem and counts['configure_failures'] == 1


def test_corrupt_memory_checkpoint(ros_context, tiny_models, tmp_path):
    bad = tmp_path / 'bad.safetensors'
    bad.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"oops": not json}' + bytes(64))
    ok, problem, counts = configure_with(ros_context, tiny_models,
                                         **{'memory.checkpoint': str(bad)})
    assert not ok and problem and counts['configure_failures'] == 1


def test_pickle_memory_checkpoint_refused(ros_context, tiny_models, tmp_path):
    pickled = tmp_path / 'memory.pt'
    pickled.write_bytes(b'\x80\x04K\x01.')
    ok, problem, _ = configure_with(ros_context, tiny_models,
                                    **{'memory.checkpoint': str(pickled)})
    assert not ok and 'safetensors' in problem


def test_memory_for_another_backbone_refused(ros_context, tiny_models):
    ok, problem, _ = configure_with(ros_context, tiny_models, **{
        'memory.checkpoint': str(tiny_models['memory_vision'])})
    assert not ok and 'features' in problem


def test_backbone_folder_with_mismatched_shapes(ros_context, tiny_models, tmp_path):
    import shutil
    folder = tmp_path / 'pi0'
    shutil.copytree(tiny_models['root'] / 'pi0', folder)
    config = json.loads((folder / 'config.json').read_text())
    config['vlm_config']['text_config']['hidden_size'] = 96
    (folder / 'config.json').write_text(json.dumps(config))
    ok, problem, _ = configure_with(ros_context, tiny_models,
                                    **{'backbone.model_path': str(folder)})
    assert not ok and problem


def test_corrupt_durable_snapshot_moved_aside(ros_context, tiny_models, tmp_path):
    snapshot = tmp_path / 'mem.safetensors'
    snapshot.write_bytes(b'garbage' * 10)
    ok, problem, counts = configure_with(ros_context, tiny_models, **{
        'memory.durable': True, 'memory.snapshot_path': str(snapshot)})
    assert ok and counts['corrupt_snapshots'] == 1
    assert (tmp_path / 'mem.safetensors.corrupt').exists()


def test_durable_without_snapshot_path_refused(ros_context, tiny_models):
    ok, problem, _ = configure_with(ros_context, tiny_models, **{'memory.durable': True})
    assert not ok and 'snapshot_path' in problem

