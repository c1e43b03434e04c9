"""Training: the gate learns to write on events and not on distractors (tiny, easy task)."""
import numpy as np
import torch

from aura_ros.core import AuraConfig, build_memory
from aura_ros.core.synthetic import (
    DISTRACTOR,
    EVENT,
    N_CLASSES,
    OBS_DIM,
    SyntheticTaskConfig,
    sample_episodes,
)
from aura_ros.core.training import Batch, TrainSchedule, memory_loss, train_memory

TASK = SyntheticTaskConfig(horizon=16, events=(1, 2), repeats=(0, 0), distractors=(1, 2),
                           content_noise=0.05, flag_noise=0.05)


def batches(seed=0, size=32):
    rng = np.random.default_rng(seed)

    def sample(step):
        eps = sample_episodes(TASK, size, rng)
        return Batch(features=eps.obs, targets=eps.labels)
    return sample


def test_aura_loss_has_gradients_on_the_gate_in_every_phase():
    torch.manual_seed(0)
    model = build_memory(AuraConfig(feature_dim=OBS_DIM, action_dim=N_CLASSES, kind='aura',
                                    action_mode='full'))
    schedule = TrainSchedule(steps=100)
    for step in (0, 40, 99):  # soft warm-up, ramp, straight-through
        model.zero_grad()
        loss, logs = memory_loss(model, batches()(0), 'ce', step, schedule)
        loss.backward()
        assert model.gate_out.weight.grad.abs().sum() > 0, step
        assert {'action_loss', 'write_rate', 'ib', 'gate_prob'} <= set(logs)


def test_aura_learns_a_selective_gate_on_a_tiny_task():
    torch.manual_seed(0)
    model = build_memory(AuraConfig(feature_dim=OBS_DIM, action_dim=N_CLASSES, kind='aura',
                                    action_mode='full', target_write_rate=0.15))
    train_memory(model, batches(), 'ce', TrainSchedule(steps=150, lr=5e-3), progress=False)
    eps = sample_episodes(TASK, 400, np.random.default_rng(9))
    with torch.no_grad():
        out = model.forward_sequence(eps.obs, gate_mode='hard')
    accuracy = float((out.actions[:, -1].argmax(-1) == eps.answer).float().mean())
    p_event = float(out.writes[eps.kinds == EVENT].mean())
    p_distractor = float(out.writes[eps.kinds == DISTRACTOR].mean())
    assert accuracy > 0.6, accuracy
    assert p_event > 0.7 and p_distractor < 0.3, (p_event, p_distractor)
    assert out.writes.mean() < 0.5


def test_regression_targets_with_mask():
    torch.manual_seed(0)
    model = build_memory(AuraConfig(feature_dim=5, action_dim=2, kind='aura'))
    batch = Batch(features=torch.randn(3, 6, 5), targets=torch.randn(3, 6, 2),
                  base_actions=torch.zeros(3, 6, 2), mask=torch.ones(3, 6, dtype=torch.bool))
    loss, _ = memory_loss(model, batch, 'mse', 0, TrainSchedule(steps=10))
    loss.backward()
    assert torch.isfinite(loss)
