"""Training: the write objective reaches every learned gate when it should (not during the
warm-up, open or random). Whether a gate that sees only surprise learns to skip repeats while a
feature gate cannot (a learning check, 40 s of training) is bench/scripts/gate_mechanism.py's."""

import pytest
import torch

from aura_ros.core import GATED_KINDS, AuraConfig, build_memory
from aura_ros.core.training import Batch, TrainSchedule, gate_status, memory_loss, train_memory
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


@pytest.mark.parametrize('bias, status', [(-30.0, 'closed'), (30.0, 'always_open')])
def test_a_collapsed_gate_is_detected_at_the_end_of_training_and_warned_about(bias, status):
    """A gate held shut (or open) over the last stretch is called so; the warning names it."""
    model = model_of('aura')
    model.rule.bias.data.fill_(bias)
    for p in model.rule.parameters():
        p.requires_grad_(False)                      # it cannot move away from the bias
    with pytest.warns(UserWarning, match=f'the aura gate is {status} at the end of training'):
        logs = train_memory(model, batch_sampler(TINY), 'ce', TrainSchedule(steps=60),
                            progress=False)
    assert logs['gate_status'] == status
    expected = 0.0 if status == 'closed' else TINY.horizon
    assert logs['final_writes_per_episode'] == pytest.approx(expected)


def test_a_gate_that_writes_some_steps_is_selective_and_ungated_arms_get_no_status():
    assert gate_status(0.1, 0.5) == 'selective'
    assert gate_status(0.09, 0.01) == 'closed' and gate_status(3.0, 0.51) == 'always_open'
    logs = train_memory(model_of('gru_dense'), batch_sampler(TINY), 'ce',
                        TrainSchedule(steps=3), progress=False)
    assert 'gate_status' not in logs


def test_writes_per_episode_count_only_the_real_steps_of_padded_episodes():
    model = build_memory(AuraConfig(feature_dim=5, action_dim=2, kind='always_write'))
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, :4], mask[1, :2] = True, True
    batch = Batch(features=torch.randn(2, 6, 5), targets=torch.randn(2, 6, 2),
                  base_actions=torch.zeros(2, 6, 2), mask=mask)
    _, logs = memory_loss(model, batch, 'mse', 0, TrainSchedule(steps=10))
    assert logs['writes_per_episode'] == 3.0 and logs['write_rate'] == 1.0
