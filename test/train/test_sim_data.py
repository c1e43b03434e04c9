"""Demonstrations from either simulated arm: the planar arm's 3 joints or the SO-101's 5 in
MuJoCo; the tiny PI0 trained on the MuJoCo arm's demos takes and returns 5 joints."""
import numpy as np
import pytest

from aura_ros.train.sim_data import action_chunks, collect_demos


def test_planar_demos_have_three_joints_and_hold_before_go():
    demo = collect_demos('memory', [3], progress=False)[0]
    assert demo.states.shape[1] == demo.actions.shape[1] == 3
    assert demo.images.shape[1:] == (64, 64, 3) and len(demo.images) == len(demo.actions)
    assert np.all(demo.actions[:10] == 0)           # the expert holds until go


def test_mujoco_demos_have_five_joints_and_succeed():
    pytest.importorskip('aura_ros.sim.mujoco_arm', reason='MuJoCo not installed')
    demos = collect_demos('visible', [1, 2], progress=False, engine='mujoco', noise=0.0)
    for demo in demos:
        assert demo.states.shape[1] == demo.actions.shape[1] == 5
        assert demo.success
    assert action_chunks(demos[0].actions, 8).shape == (len(demos[0].actions), 8, 5)


def test_tiny_backbone_trained_on_the_mujoco_arm_acts_in_five_joints(tmp_path):
    pytest.importorskip('aura_ros.sim.mujoco_arm', reason='MuJoCo not installed')
    from aura_ros.backbones import build_backbone
    from aura_ros.train.backbone_bc import train_backbone
    norm = train_backbone(tmp_path / 'pi0', episodes=2, steps=2, batch=4, progress=False,
                          engine='mujoco')
    assert len(norm['action_mean']) == len(norm['state_std']) == 5 and norm['engine'] == 'mujoco'
    backbone = build_backbone(dict(adapter='hf_pi0', model_path=str(tmp_path / 'pi0'),
                                   image_size=64, action_dim=5, chunk_size=8,
                                   steps_per_chunk=4, instruction='reach the marked pad',
                                   action_mean=norm['action_mean'],
                                   action_std=norm['action_std'],
                                   state_mean=norm['state_mean'], state_std=norm['state_std']))
    _, chunk = backbone.infer(np.zeros((64, 64, 3), np.uint8), np.zeros(5, np.float32),
                              noise_seed=0)
    assert chunk.shape == (8, 5) and np.all(np.isfinite(chunk))
