"""Every shipped parameter file parses, passes the parameter table's checks, and is accepted
by the nodes' parameter declarations (the same files launch/aura.launch.py takes)."""
from pathlib import Path

import pytest
import rclpy
from rclpy.parameter import Parameter

from aura_ros.backbones import BackboneConfig
from aura_ros.params import (
    PERCEPTION_PARAMS,
    POLICY_PARAMS,
    backbone_block,
    read_params_file,
    with_defaults,
)
from conftest import REPO

CONFIGS = sorted((REPO / 'config').glob('*.yaml'))
NODE_FILES = [p for p in CONFIGS if p.name != 'status_publisher.yaml']


@pytest.mark.parametrize('path', NODE_FILES, ids=lambda p: p.name)
def test_parameter_file_is_valid(path: Path):
    params, _ = read_params_file(path, 'policy_node')
    full = with_defaults(params, POLICY_PARAMS)
    BackboneConfig.from_dict(backbone_block(params))
    names = {s.name for s in POLICY_PARAMS}
    unknown = sorted(k for k in params if k not in names)
    assert not unknown, f'{path.name}: parameters no node declares: {unknown}'
    assert len(full['command.joint_names']) == len(full['command.lower_limits'])
    assert len(full['command.joint_names']) == full['backbone.action_dim']
    perception, _ = read_params_file(path, 'perception_node')
    with_defaults({k: v for k, v in perception.items()
                   if k in {s.name for s in PERCEPTION_PARAMS}}, PERCEPTION_PARAMS)


@pytest.mark.ros
@pytest.mark.parametrize('path', NODE_FILES, ids=lambda p: p.name)
def test_policy_node_accepts_the_file(path, ros_context):
    from aura_ros.nodes.policy_node import PolicyNode
    params, _ = read_params_file(path, 'policy_node')
    overrides = [Parameter(k, value=v) for k, v in params.items()
                 if not (isinstance(v, list) and not v)]
    node = PolicyNode(context=ros_context, parameter_overrides=overrides
                      + [Parameter('autostart', value=False)])
    try:
        assert node.p['backbone.adapter'] == params['backbone.adapter']
    finally:
        node.destroy_node()
    assert rclpy.ok(context=ros_context)
