"""Shared test setup: DDS on loopback and a ROS domain of this run's own."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Keep DDS on loopback and give this run its own domain so parallel runs do not hear each
# other; under pytest -n (xdist) each worker gets a domain of its own. Child processes started
# by the tests inherit both.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
_WORKER = os.environ.get('PYTEST_XDIST_WORKER', '')          # gw0, gw1, ... or ''
_BASE = int(os.environ.get('ROS_DOMAIN_ID')
            or 1 + (os.getppid() if _WORKER else os.getpid()) % 90)
os.environ['ROS_DOMAIN_ID'] = str((_BASE + int(_WORKER[2:])) % 101 if _WORKER else _BASE)
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ['RCUTILS_LOGGING_BUFFERED_STREAM'] = '0'   # node logs line by line


@pytest.fixture(scope='session', autouse=True)
def _one_torch_thread_per_worker():
    """Under pytest -n 2 two workers share the 2 cores: one torch thread each, not two
    (oversubscribed, every CPU-bound test ran slower). Nodes started by tests set their own."""
    if _WORKER:
        import torch
        torch.set_num_threads(1)
    yield


@pytest.fixture
def ros_context():
    """An rclpy context of the test's own, shut down afterwards."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def spawn(cmd, **kwargs):
    """Start a node executable as a separate process with the test's environment."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ), **kwargs)


def write_params(path, backbone, memory_checkpoint, extra_policy=None):
    """A ROS 2 parameter file: backbone block for every node, memory/command for the policy."""
    import yaml
    policy = {'memory': {'checkpoint': str(memory_checkpoint)},
              'command': {'joint_names': ['joint_1', 'joint_2', 'joint_3'],
                          'lower_limits': [-1.0, -1.0, -1.0], 'upper_limits': [1.0, 1.0, 1.0],
                          'max_delta': 0.05},
              'status_rate': 5.0, 'start_armed': True}
    for key, value in (extra_policy or {}).items():
        policy[key] = value
    data = {'/**': {'ros__parameters': {'backbone': backbone}},
            'policy_node': {'ros__parameters': policy}}
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope='session')
def tiny_models(tmp_path_factory):
    """Tiny random backbones (hf_pi0 at 64 px, vision_features at 32 px), memories matching
    their feature widths, and one parameter file per backbone."""
    import torch

    from aura_ros.backbones.tiny import build_tiny_pi0, build_tiny_vision
    from aura_ros.core import AuraConfig, build_memory
    root = tmp_path_factory.mktemp('models')
    build_tiny_pi0(root / 'pi0')
    build_tiny_vision(root / 'vision', image_size=32, chunk_size=4)
    paths = {}
    for name, feature_dim in (('pi0', 128), ('vision', 48)):
        torch.manual_seed(0)
        memory = build_memory(AuraConfig(feature_dim=feature_dim, action_dim=3, kind='aura'))
        # An untrained gate, tilted open: on random frames its state signals barely move, so
        # p(write) sits just above 0.5 (about 0.57 measured with the tiny PI0) -- open at the
        # default threshold, shut at 0.99 (the node tests change the threshold to see both).
        memory.rule.bias.data.fill_(1.0)
        memory.save(root / f'memory_{name}.safetensors')
        paths[f'memory_{name}'] = root / f'memory_{name}.safetensors'
    pi0_block = dict(adapter='hf_pi0', model_path='pi0', image_size=64, action_dim=3,
                     chunk_size=8, steps_per_chunk=4, instruction='reach the marked pad',
                     action_std=[0.05, 0.05, 0.05], action_mean=[0.0, 0.0, 0.0])
    vision_block = dict(adapter='vision_features', model_path='vision', image_size=32,
                        action_dim=3, chunk_size=4, steps_per_chunk=2, feature_source='mean',
                        action_std=[0.05, 0.05, 0.05], action_mean=[0.0, 0.0, 0.0])
    paths['params_pi0'] = write_params(root / 'pi0.yaml', pi0_block, paths['memory_pi0'])
    paths['params_vision'] = write_params(root / 'vision.yaml', vision_block,
                                          paths['memory_vision'])
    paths['root'] = root
    paths['pi0_block'], paths['vision_block'] = pi0_block, vision_block
    return paths
