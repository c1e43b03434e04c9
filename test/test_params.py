"""Parameter-file typos are refused, not silently ignored: the rule (params.py) on file
sections, and the nodes started as real processes with a --params-file."""
import signal
import subprocess
import time

import pytest
import yaml

from aura_ros.params import (
    NODE_PARAMS,
    file_sections,
    params_files_and_overrides,
    read_params_file,
    unknown_parameters,
)
from aura_ros.tools.processes import executable
from conftest import REPO, spawn


def declared(node):
    return {s.name for s in NODE_PARAMS[node]}


def sections_of(tmp_path, data):
    path = tmp_path / 'p.yaml'
    path.write_text(yaml.safe_dump(data))
    return file_sections(path)


@pytest.mark.parametrize('path', sorted((REPO / 'config').glob('*.yaml')), ids=lambda p: p.name)
def test_every_shipped_file_has_no_unknown_key_for_any_node(path):
    for node in NODE_PARAMS:
        for fq in (f'/{node}', f'/left/{node}'):
            assert unknown_parameters(file_sections(path), fq, declared(node)) == [], (node, fq)


def test_a_typo_under_the_nodes_own_section_is_refused_with_the_closest_name(tmp_path):
    for section in ('policy_node', '/policy_node', '/**/policy_node'):
        sections = sections_of(tmp_path, {section: {'ros__parameters': {
            'memory': {'checkpiont': 'm.safetensors'}}}})
        problems = unknown_parameters(sections, '/policy_node', declared('policy_node'))
        assert len(problems) == 1 and "'memory.checkpiont'" in problems[0]
        assert 'did you mean memory.checkpoint?' in problems[0]
    # a key another node declares is still a typo in this node's own section
    sections = sections_of(tmp_path, {'/**/perception_node': {'ros__parameters': {
        'memory': {'checkpoint': 'm.safetensors'}}}})
    assert unknown_parameters(sections, '/perception_node', declared('perception_node'))


def test_a_wildcard_key_is_refused_only_when_no_node_of_the_package_declares_it(tmp_path):
    sections = sections_of(tmp_path, {'/**': {'ros__parameters': {
        'backbone': {'adapter': 'hf_pi0', 'image_sise': 64}}}})
    problems = unknown_parameters(sections, '/perception_node', declared('perception_node'))
    assert len(problems) == 1 and "'backbone.image_sise'" in problems[0]   # adapter: policy's


def test_sections_for_other_nodes_and_namespaces_do_not_apply(tmp_path):
    sections = sections_of(tmp_path, {'/left/policy_node': {'ros__parameters': {'x': 1}},
                                      '/**/sim_arm_node': {'ros__parameters': {'y': 2}},
                                      '/right': {'policy_node': {'ros__parameters': {
                                          'z': 3}}}})
    assert unknown_parameters(sections, '/policy_node', declared('policy_node')) == []
    left = unknown_parameters(sections, '/left/policy_node', declared('policy_node'))
    right = unknown_parameters(sections, '/right/policy_node', declared('policy_node'))
    assert len(left) == 1 and "'x'" in left[0] and len(right) == 1 and "'z'" in right[0]


def test_offline_readers_refuse_typos_too_unless_opted_out(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text(yaml.safe_dump({'/**/policy_node': {'ros__parameters': {
        'memory': {'checkpiont': 'm.safetensors'}}}}))
    with pytest.raises(ValueError, match='did you mean memory.checkpoint'):
        read_params_file(path, 'policy_node')
    path.write_text(yaml.safe_dump({'/**/policy_node': {'ros__parameters': {
        'strict_parameters': False, 'memory': {'checkpiont': 'm.safetensors'}}}}))
    assert read_params_file(path, 'policy_node')[0]['memory.checkpiont'] == 'm.safetensors'


def test_ros_arguments_are_read_inside_ros_args_only():
    files, names = params_files_and_overrides(
        ['prog', '--params-file', 'outside.yaml', '--ros-args', '--params-file', 'a.yaml',
         '-p', 'memory.gate_threshold:=0.4', '--param', 'x:=1', '--', '-p', 'y:=2'])
    assert files == ['a.yaml'] and names == ['memory.gate_threshold', 'x']


def run_node(name, path, seconds=4.0):
    """(exit status or None if still running after ``seconds``, output)."""
    proc = spawn([executable(name), '--ros-args', '--params-file', str(path)])
    try:
        output, _ = proc.communicate(timeout=seconds)
        return proc.returncode, output
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
        return None, output


@pytest.mark.slow
@pytest.mark.ros
def test_nodes_refuse_a_typo_at_start_and_accept_it_when_opted_out(tmp_path):
    typo = tmp_path / 'typo.yaml'
    typo.write_text(yaml.safe_dump({'/**/policy_node': {'ros__parameters': {
        'memory': {'checkpiont': 'm.safetensors'}}}}))
    t0 = time.monotonic()
    status, output = run_node('policy_node', typo, seconds=60)
    assert status == 2 and time.monotonic() - t0 < 60
    lines = [line for line in output.splitlines() if 'unknown parameter' in line]
    assert len(lines) == 1 and 'did you mean memory.checkpoint?' in lines[0], output
    wildcard = tmp_path / 'wildcard.yaml'
    wildcard.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'backbone': {'image_size': 64, 'adapter': 'hf_pi0'}, 'max_fram_age': 1.0}}}))
    status, output = run_node('perception_node', wildcard, seconds=60)
    assert status == 2 and "'max_fram_age'" in output and 'max_frame_age' in output
    opted = tmp_path / 'opted.yaml'
    opted.write_text(yaml.safe_dump({'/**': {'ros__parameters': {
        'backbone': {'image_size': 64, 'adapter': 'hf_pi0'}, 'other_package_key': 1}},
        '/**/perception_node': {'ros__parameters': {'strict_parameters': False}}}))
    status, output = run_node('perception_node', opted)
    assert status in (None, 0) and '[WARN]' in output and "'other_package_key'" in output
