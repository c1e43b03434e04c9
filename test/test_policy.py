"""PolicyRunner: chunk execution, memory residual, and commands that are always safe."""
import numpy as np
import pytest
import torch

from aura_ros.backbones.base import Backbone, BackboneConfig, Encoding
from aura_ros.core import AuraConfig, build_memory
from aura_ros.policy import CommandLimits, PolicyRunner


class ScriptedBackbone(Backbone):
    """A backbone whose chunks are given: lets the tests pin the control logic exactly."""

    def __init__(self, chunks, feature_dim=6):
        super().__init__(BackboneConfig(adapter='remote', action_dim=3, chunk_size=4,
                                        steps_per_chunk=2))
        self.chunks, self.feature_dim, self.calls = list(chunks), feature_dim, 0
        self.noise_seeds = []

    def encode(self, image, state, instruction=''):
        return Encoding(features=torch.full((self.feature_dim,), float(image.mean())))

    def act(self, encoding, noise_seed=None):
        self.calls += 1
        self.noise_seeds.append(noise_seed)
        return np.asarray(self.chunks.pop(0), np.float32)


LIMITS = dict(lower=[-1, -1, -1], upper=[1, 1, 1], max_delta=0.1)
IMAGE = np.zeros((8, 8, 3), np.uint8)


def test_executes_steps_per_chunk_actions_then_predicts_a_new_chunk():
    chunks = [np.full((4, 3), 0.01 * (i + 1)) for i in range(3)]
    backbone = ScriptedBackbone(chunks)
    runner = PolicyRunner(backbone, None, CommandLimits(**LIMITS))
    bases = [runner.step(IMAGE, np.zeros(3)).base_action[0] for _ in range(5)]
    assert backbone.calls == 3
    np.testing.assert_allclose(bases, [0.01, 0.01, 0.02, 0.02, 0.03], atol=1e-7)


def test_chunk_noise_is_seeded_per_episode_and_step():
    """One episode seed gives every arm the same chunk noise: seeds repeat for the same
    episode, differ between steps and episodes, and stay unseeded without an episode seed."""
    def seeds(episode_seed):
        backbone = ScriptedBackbone([np.zeros((4, 3))] * 3)
        runner = PolicyRunner(backbone, None, CommandLimits(**LIMITS))
        runner.reset(episode_seed)
        for _ in range(5):
            runner.step(IMAGE, np.zeros(3))
        return backbone.noise_seeds

    first = seeds(7)
    assert len(first) == 3 and len(set(first)) == 3 and None not in first
    assert seeds(7) == first and seeds(8) != first
    assert seeds(None) == [None] * 3


def test_commands_respect_limits_and_max_delta():
    runner = PolicyRunner(ScriptedBackbone([np.full((4, 3), 5.0)] * 4), None,
                          CommandLimits(**LIMITS))
    commands = [runner.step(IMAGE, np.array([0.95, 0.0, -0.95])).command for _ in range(3)]
    for c in commands:
        assert np.all(c <= 1.0) and np.all(c >= -1.0)
    assert np.abs(commands[0] - np.array([0.95, 0.0, -0.95])).max() <= 0.1 + 1e-12
    assert np.abs(commands[1] - commands[0]).max() <= 0.1 + 1e-12


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_action_is_never_commanded(bad):
    chunk = np.zeros((4, 3))
    chunk[0, 1] = bad
    runner = PolicyRunner(ScriptedBackbone([chunk]), None, CommandLimits(**LIMITS))
    step = runner.step(IMAGE, np.zeros(3))
    assert step.command is None and 'non-finite' in step.rejected


def test_non_finite_joint_positions_are_never_commanded():
    runner = PolicyRunner(ScriptedBackbone([np.zeros((4, 3))]), None, CommandLimits(**LIMITS))
    step = runner.step(IMAGE, np.array([0.0, np.nan, 0.0]))
    assert step.command is None
    assert runner.hold(np.array([np.nan, 0, 0])) is None
    np.testing.assert_array_equal(runner.hold(np.array([2.0, 0, 0])), [1.0, 0, 0])


def test_memory_residual_is_added_and_gate_reported():
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=6, action_dim=3, kind='aura'))
    torch.nn.init.normal_(memory.head_out.weight, std=0.5)
    runner = PolicyRunner(ScriptedBackbone([np.zeros((4, 3))] * 5), memory,
                          CommandLimits(**LIMITS))
    step = runner.step(np.full((8, 8, 3), 9, np.uint8), np.zeros(3))
    assert not np.allclose(step.action, step.base_action)
    assert 0.0 <= step.gate_probability <= 1.0 and memory.total_steps == 1
    runner.memory_enabled = False
    step = runner.step(IMAGE, np.zeros(3))
    np.testing.assert_allclose(step.action, step.base_action)
    runner.reset()
    assert memory.total_steps == 0


def test_mismatched_memory_is_refused():
    memory = build_memory(AuraConfig(feature_dim=7, action_dim=3))
    with pytest.raises(ValueError, match='features'):
        PolicyRunner(ScriptedBackbone([]), memory, CommandLimits(**LIMITS))


@pytest.mark.parametrize('bad', [dict(lower=[0, 0, 0], upper=[0, 1, 1]),
                                 dict(max_delta=0.0), dict(max_delta=float('nan')),
                                 dict(lower=[-1, -1], upper=[1, 1, 1]),
                                 dict(lower=[-np.inf, -1, -1])])
def test_invalid_limits_refused(bad):
    with pytest.raises(ValueError):
        CommandLimits(**{**LIMITS, **bad})


def test_infer_chunk_one_memory_step_residual_on_every_action_timed_from_the_frame():
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=6, action_dim=3, kind='aura'))
    torch.nn.init.normal_(memory.head_out.weight, std=0.5)
    chunk = np.array([[0.01, 0.0, 0.0], [0.02, 0.0, 0.0], [0.0, 0.03, 0.0], [0.0, 0.0, 0.04]])
    runner = PolicyRunner(ScriptedBackbone([chunk] * 2), memory, CommandLimits(**LIMITS))
    q = np.array([0.1, 0.2, 0.3])
    timed, info = runner.infer_chunk(np.full((8, 8, 3), 9, np.uint8), q, obs_time=5.0, dt=0.1)
    assert memory.total_steps == 1 and info.command is None
    residual = info.action - info.base_action
    assert np.abs(residual).max() > 1e-3                  # the memory changes the chunk ...
    np.testing.assert_allclose(timed.positions, q + np.cumsum(chunk + residual, axis=0),
                               atol=1e-6)                 # ... by the same residual per action
    assert (timed.t0, timed.dt, timed.obs_time) == (5.1, 0.1, 5.0)
    runner.memory_enabled = False                         # memory steps, residual not added
    timed, _ = runner.infer_chunk(IMAGE, q, obs_time=6.0, dt=0.1)
    np.testing.assert_allclose(timed.positions, q + np.cumsum(chunk, axis=0), atol=1e-6)
    assert memory.total_steps == 2


def test_infer_chunk_refuses_non_finite_chunks_and_positions():
    runner = PolicyRunner(ScriptedBackbone([np.full((4, 3), np.nan)]), None,
                          CommandLimits(**LIMITS))
    with pytest.raises(ValueError, match='finite'):
        runner.infer_chunk(IMAGE, np.zeros(3), obs_time=0.0, dt=0.1)
    with pytest.raises(ValueError, match='joint positions'):
        runner.infer_chunk(IMAGE, np.array([0.0, np.inf, 0.0]), obs_time=0.0, dt=0.1)


def chunk_memory(horizon):
    torch.manual_seed(1)
    memory = build_memory(AuraConfig(feature_dim=6, action_dim=3 * horizon, kind='aura'))
    torch.nn.init.normal_(memory.head_out.weight, std=0.5)
    return memory


def test_chunk_memory_corrects_each_of_its_actions_in_async_and_its_first_in_sync():
    """A chunk memory (action = the chunk's first H actions, flattened) makes one step per
    observation and corrects those H actions one by one; later actions get its last
    residual. Sync uses the corrected first action and predicts a chunk every step."""
    chunk = np.array([[0.01, 0.0, 0.0], [0.02, 0.0, 0.0], [0.0, 0.03, 0.0], [0.0, 0.0, 0.04]])
    memory = chunk_memory(horizon=2)
    runner = PolicyRunner(ScriptedBackbone([chunk] * 4), memory, CommandLimits(**LIMITS))
    assert runner.memory_horizon == 2
    q = np.zeros(3)
    timed, info = runner.infer_chunk(np.full((8, 8, 3), 9, np.uint8), q, obs_time=0.0, dt=0.1)
    memory.reset()
    expected = memory.step(torch.full((6,), 9.0),
                           torch.from_numpy(chunk[:2].reshape(-1).astype(np.float32)))
    corrected = expected.action.numpy().astype(np.float64).reshape(2, 3)
    actions = chunk.copy()
    actions[:2] = corrected
    actions[2:] += corrected[1] - chunk[1]
    np.testing.assert_allclose(timed.positions, np.cumsum(actions, axis=0), atol=1e-5)
    assert not np.allclose(corrected[0] - chunk[0], corrected[1] - chunk[1])  # per action
    memory.reset()
    calls = runner.backbone.calls
    step = runner.step(np.full((8, 8, 3), 9, np.uint8), q)
    step2 = runner.step(np.full((8, 8, 3), 9, np.uint8), q)
    assert runner.backbone.calls == calls + 2          # a fresh chunk for every memory step
    np.testing.assert_allclose(step.action, corrected[0], atol=1e-5)
    assert step.memory_base.shape == (6,) and step2.base_action.shape == (3,)


@pytest.mark.parametrize('action_dim', [4, 15])   # not a multiple of 3; more than chunk_size
def test_memory_that_is_neither_one_action_nor_a_chunk_is_refused(action_dim):
    memory = build_memory(AuraConfig(feature_dim=6, action_dim=action_dim))
    with pytest.raises(ValueError, match='chunk_size'):
        PolicyRunner(ScriptedBackbone([]), memory, CommandLimits(**LIMITS))
