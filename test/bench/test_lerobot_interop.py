"""The LeRobot benchmark's parts that run without LeRobot: the parameter files it deploys and
the report section (the benchmark itself needs the LeRobot env: bench/lerobot/README.md)."""
from pathlib import Path

import pytest

from aura_ros.bench import lerobot_interop as li
from aura_ros.params import read_params_file

SO101 = Path(__file__).parents[2] / 'config' / 'sim_mujoco.yaml'


def test_the_served_act_file_is_remote_absolute_and_in_degrees_on_the_server(tmp_path):
    path = li.act_params(SO101, tmp_path / 'ckpt' / 'pretrained_model', 5611,
                         tmp_path / 'act.yaml')
    values, _ = read_params_file(path, 'policy_node')          # a valid ROS parameter file
    assert values['backbone.adapter'] == 'remote'
    assert values['backbone.options.joint_units'] == 'deg'
    assert values['backbone.options.port'] == 5611 and values['backbone.chunk_size'] == 16
    assert values['command.action_type'] == 'absolute'
    assert values['command.joint_names'][0] == 'shoulder_pan'   # the SO-101's, kept
    assert values['memory.checkpoint'] == ''


def test_deployed_files_load_the_memory_or_disable_it(tmp_path):
    from aura_ros.core import AuraConfig, build_memory
    memory = tmp_path / 'memory_aura.safetensors'
    build_memory(AuraConfig(feature_dim=8, action_dim=5, kind='aura')).save(memory)
    on, _ = read_params_file(li.deployed(SO101, memory, tmp_path / 'on.yaml'), 'policy_node')
    assert on['memory.checkpoint'] == str(memory.resolve()) and on['memory.enabled']
    off, _ = read_params_file(li.deployed(SO101, None, tmp_path / 'off.yaml'), 'policy_node')
    assert off['memory.enabled'] is False and off['memory.checkpoint'] == ''
    assert off['backbone.adapter'] == on['backbone.adapter'] == 'hf_pi0'


def _arm(success, writes):
    return {'success': success, 'success_ci95': [success - 0.05, success + 0.05],
            'writes_per_episode': writes}


def test_the_report_sets_the_import_beside_the_bags_and_act_alone_beside_act_with_aura():
    lr = {'task': 'v2', 'episodes': 100, 'eval_episodes': 200, 'node_first_seed': 7000,
          'import': {'arms': {'aura': _arm(0.6, 3.5), 'no_memory': _arm(0.15, 0.0)},
                     'through_nodes': dict(_arm(0.58, 3.4), episodes=50)},
          'act': {'through_nodes': {'act_alone': dict(_arm(0.2, 0.0), episodes=50),
                                    'act_aura': dict(_arm(0.5, 2.0), episodes=50)}}}
    curve = {'curve': {'100': {'arms': {'aura': _arm(0.595, 3.76)}}}}
    text = '\n'.join(li.section(lr, curve))
    assert '| aura | 0.600 [0.550, 0.650] @ 3.50 w/ep | 0.595 [0.545, 0.645] @ 3.76 w/ep |' in text
    assert '| no_memory | 0.150 [0.100, 0.200] @ 0.00 w/ep | - |' in text
    assert '| ACT alone | 0.200' in text and '| ACT + AURA | 0.500' in text
    assert 'through the nodes, 50 episodes' in text


def test_a_busy_port_is_one_clear_error():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen()
        with pytest.raises(RuntimeError, match='is in use: stop what listens there'):
            li.check_port(s.getsockname()[1])
