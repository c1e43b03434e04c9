"""Training data and fit for the memory on the simulated arm, with a tiny PI0: one-action
memories see the executed base action and the expert's action; chunk memories see a fresh
chunk's first H actions and the expert's plan over them, and the fitted memory is one the
runner executes as a chunk memory."""
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from aura_ros.backbones import build_backbone
from aura_ros.policy import PolicyRunner
from aura_ros.sim.arm import ArmEnv
from aura_ros.sim.realtime import RealtimeTask
from aura_ros.sim.rollout import sim_limits
from aura_ros.train.memory_fit import collect_features, fit_memory


def tiny_pi0(tiny_models):
    return build_backbone(dict(tiny_models['pi0_block'],
                               model_path=str(tiny_models['root'] / 'pi0')))


def test_one_action_and_chunk_data_and_a_fitted_chunk_memory(tiny_models):
    backbone = tiny_pi0(tiny_models)
    single = collect_features(backbone, [11], variants=('memory',), progress=False)[0]
    chunked = collect_features(backbone, [11], variants=('memory',), progress=False,
                               horizon=4)[0]
    T = len(single.features)
    assert single.base.shape == (T, 3) and single.expert.shape == (T, 3)
    assert chunked.base.shape[1:] == (12,) and chunked.expert.shape[1:] == (12,)
    plan = chunked.expert.reshape(-1, 4, 3)
    # same seed, same noisy-expert drive: the plan's first action is the one-action label
    assert len(chunked.features) == T and torch.allclose(plan[:, 0], single.expert)
    assert torch.all(plan[0] == 0) and plan.abs().max() > 0   # holds before go, then moves
    memory = fit_memory('aura', [chunked], [0.05, 0.05, 0.05], steps=3, batch=2,
                        progress=False)
    assert memory.config.action_dim == 12
    assert torch.allclose(memory.action_scale, torch.full((12,), 0.05))
    runner = PolicyRunner(backbone, memory, sim_limits())
    assert runner.memory_horizon == 4
    timed, info = runner.infer_chunk(np.zeros((64, 64, 3), np.uint8), np.array(
        [1.7, -2.2, 2.2]), obs_time=0.0, dt=1 / 30)
    assert timed.positions.shape == (8, 3) and np.all(np.isfinite(timed.positions))


def test_strides_step_the_memory_at_the_inference_rate_on_the_task_in_seconds(tiny_models):
    backbone = tiny_pi0(tiny_models)
    task = RealtimeTask(cue_s=0.2, delay_s=(0.2, 0.3), go_timeout_s=0.5)
    every = collect_features(backbone, [5], variants=('memory',), progress=False, task=task)[0]
    sparse = collect_features(backbone, [5], variants=('memory',), progress=False, task=task,
                              strides=(4,))[0]
    # the task in seconds: the expert holds until the go frame of the 30 fps task, then moves
    go = ArmEnv(replace(task, variant='memory').arm_config(64))
    go.reset(5)
    moving = (every.expert.abs().sum(1) > 0).nonzero()
    assert int(moving[0]) == go.go_step
    # the same noisy-expert drive every frame; the memory sees every 4th frame from some phase,
    # with that frame's label (a shifted label would pair other frames' features)
    phase = next(p for p in range(4) if torch.equal(sparse.expert, every.expert[p::4]))
    frames = every.features[phase::4]
    assert sparse.features.shape == frames.shape
    assert torch.allclose(sparse.features, frames, atol=1e-5)
    with pytest.raises(ValueError, match='strides'):
        collect_features(backbone, [5], variants=('memory',), progress=False, strides=(0,))
    with pytest.raises(ValueError, match='horizon'):
        collect_features(backbone, [5], variants=('memory',), progress=False, horizon=9)


def noisy_recording(n, seed, T=24, go=12, F=8, noise=0.3):
    """A small recording in feature space, as a user's would be after extraction: a cue shown
    on one frame (one of 4 channels, at a random onset) says which way to move from the next
    frame on; a go lamp lights from frame ``go``; every frame is feature noise, and the
    demonstrated actions carry the operator's noise. Returns (episodes, onsets)."""
    from aura_ros.train.memory_fit import FeatureEpisode
    g = torch.Generator().manual_seed(seed)
    ways = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]) * 0.05
    episodes, onsets = [], []
    for _ in range(n):
        cue = int(torch.randint(4, (1,), generator=g))
        onset = int(torch.randint(2, go // 2 + 1, (1,), generator=g))
        features = 0.5 * torch.randn(T, F, generator=g)
        features[onset, cue] += 3.0
        features[go:, 4] += 3.0
        expert = torch.zeros(T, 2)
        expert[onset + 1:] = ways[cue]
        expert += noise * 0.05 * torch.randn(T, 2, generator=g)
        episodes.append(FeatureEpisode(features, torch.zeros(T, 2), expert))
        onsets.append(onset)
    return episodes, torch.tensor(onsets)


@pytest.mark.slow
@pytest.mark.parametrize('cap', [0.0, 10.0], ids=['recipe', 'old_rate_cap'])
def test_a_gate_trained_on_a_small_noisy_recording_stays_selective_where_a_rate_cap_closed_it(
        cap):
    """The default recipe (memory_fit's feature noise, random warm-up and write price, no rate
    cap; 1,000 steps), a small memory, 40 noisy episodes: the gate writes the cue's onset and
    nothing else on 100 fresh episodes -- not every frame, not frame 0, and not closed. The
    control: the same with the old rate cap (``sparsity_weight`` 10) closes the gate for good,
    and the training says so (bench/notes.md, "The rate cap closes the gate")."""
    from aura_ros.train.memory_fit import padded
    train, _ = noisy_recording(40, seed=0)
    test, onsets = noisy_recording(100, seed=1000)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter('always')
        memory = fit_memory('aura', train, [0.05, 0.05], steps=1000, batch=32, progress=False,
                            d_key=8, d_value=8, head_hidden=32, feature_proj_dim=16,
                            gate_hidden=8, value_hidden=16, sparsity_weight=cap)
    closed_warning = any('the aura gate is closed at the end of training' in str(w.message)
                         for w in warned)
    features, base, _, _ = padded(test)
    with torch.no_grad():
        writes = memory.forward_sequence(features, base, gate_mode='hard').writes   # (100, T)
    rows = torch.arange(len(onsets))
    at_onset = writes[rows, onsets]
    elsewhere = writes.clone()
    elsewhere[rows, onsets] = 0
    if cap:
        assert writes.sum(1).mean() < 0.1 and closed_warning     # closed, and said so
        return
    assert at_onset.mean() >= 0.3                  # not closed: the cue is written
    assert elsewhere.sum(1).mean() <= 0.1          # selective: (almost) nothing else
    assert writes[:, 0].mean() <= 0.05             # no write for its own sake on frame 0
    assert not closed_warning
