"""Training: the write objective reaches every learned gate when it should (not during the
warm-up, open or random). Whether a gate that sees only surprise learns to skip repeats while a
feature gate cannot (a learning check, 40 s of training) is bench/scripts/gate_mechanism.py's."""

import pytest
import torch

from aura_ros.core import GATED_KINDS, AuraConfig, build_memory
from aura_ros.core.training import Batch, TrainSchedule, memory_loss
from aura_ros.sim.synthetic import N_CLASSES, TINY, batch_sampler


def model_of(kind, **kw):
    torch.manual_seed(0)
    return build_memory(AuraConfig(feature_dim=TINY.obs_dim, action_dim=N_CLASSES, kind=kind,
                                   action_mode='full', **kw))


@pytest.mark.parametrize('warmup', ['open', 'random'])
@pytest.mark.parametrize('kind', GATED_KINDS)
def test_the_gate_rests_during_the_warm_up_and_learns_after_it(kind, warmup):
    model = model_of(kind)
    schedule = TrainSchedule(steps=100, warmup_gate=warmup)
    batch = batch_sampler(TINY)(0)
    for step, trained in ((0, False), (40, False), (60, True), (99, True)):
        model.zero_grad()
        loss, logs = memory_loss(model, batch, 'ce', step, schedule)
        loss.backward()
        grad = model.rule.bias.grad
        assert (grad is not None and grad.abs().sum() > 0) == trained, step
        assert model.to_kvq.weight.grad.abs().sum() > 0     # the memory always trains
        if not trained and warmup == 'open':
            assert logs['write_rate'] == 1.0                 # open: every step writes
        elif not trained:                                    # random: about half the steps
            assert 0.35 < logs['write_rate'] < 0.65
        else:
            assert {'action_loss', 'write_rate', 'ib', 'gate_prob'} <= set(logs)


def test_regression_targets_with_mask():
    torch.manual_seed(0)
    model = build_memory(AuraConfig(feature_dim=5, action_dim=2, kind='aura'))
    batch = Batch(features=torch.randn(3, 6, 5), targets=torch.randn(3, 6, 2),
                  base_actions=torch.zeros(3, 6, 2), mask=torch.ones(3, 6, dtype=torch.bool))
    loss, _ = memory_loss(model, batch, 'mse', 90, TrainSchedule(steps=100))
    loss.backward()
    assert torch.isfinite(loss)


def test_an_unknown_warm_up_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="warmup_gate must be one of .*'random'.*got 'rnd'"):
        TrainSchedule(warmup_gate='rnd')
