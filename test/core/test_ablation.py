"""Gate-input ablations (core/ablation.py): recording a learned gate's inputs per episode and
step, and replacing one of them by its mean or by another episode's value at the same step."""
import numpy as np
import pytest
import torch

from aura_ros.core import AuraConfig, ablation, build_memory


def gated(kind='aura'):
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=6, action_dim=2, kind=kind))
    memory.rule.bias.data.fill_(0.3)
    return memory.eval()


def run(memory, episodes, steps=5, seed=0):
    """Streaming episodes of random features; returns the write flags per episode."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(episodes):
        memory.reset(e)
        out.append([memory.step(torch.from_numpy(rng.normal(size=6).astype(np.float32)),
                                torch.zeros(2)).wrote for _ in range(steps + e)])
    return out


def test_recording_gives_each_episode_its_inputs_step_by_step():
    memory = gated()
    with ablation.recording(memory) as recorded:
        run(memory, 3)
    assert [ep['state'].shape for ep in recorded] == [(5, 3), (6, 3), (7, 3)]
    assert [ep['features'].shape[0] for ep in recorded] == [5, 6, 7]
    assert 'fast_inference' not in memory.__dict__        # the compiled step is back


def test_at_mean_makes_the_input_constant_and_shuffled_takes_another_episodes_step():
    memory = gated()
    with ablation.recording(memory) as recorded:
        run(memory, 4, seed=1)
    seen = []
    source = ablation.at_mean(recorded, 'state')
    original = memory.rule.signals
    with ablation.replaced(memory, 'state', lambda t, x: seen.append((t, x)) or source(t, x)):
        run(memory, 2, seed=2)
    assert [t for t, _ in seen] == list(range(5)) + list(range(6))    # steps per episode
    mean = np.concatenate([ep['state'] for ep in recorded]).mean(0)
    np.testing.assert_allclose(source(0, torch.zeros(1, 3))[0].numpy(), mean, rtol=1e-6)
    shuffled = ablation.shuffled(recorded, 'features', seed=0)
    for t in range(5):
        row = shuffled(t, torch.zeros(1, recorded[0]['features'].shape[1]))[0].numpy()
        assert any(np.array_equal(row, ep['features'][t]) for ep in recorded)
    assert memory.rule.signals == original                 # restored
    with pytest.raises(ValueError, match='does not see'):
        with ablation.replaced(gated('aura_surprise_only'), 'features', source):
            pass


def test_a_constant_state_input_makes_the_state_only_gate_decide_alike_at_every_step():
    """With its only input at the mean, the surprise-only gate makes the same decision on
    every step of every episode (it can no longer tell steps apart)."""
    memory = gated('aura_surprise_only')
    with ablation.recording(memory) as recorded:
        run(memory, 3)
    with ablation.replaced(memory, 'state', ablation.at_mean(recorded, 'state')):
        flags = [w for ep in run(memory, 3, seed=5) for w in ep]
    assert len(set(flags)) == 1


def test_a_sequence_of_b_rows_is_recorded_as_b_episodes_and_each_row_gets_its_own_donor():
    memory = gated()
    features = torch.randn(4, 6, 6, generator=torch.Generator().manual_seed(3))
    with ablation.recording(memory) as recorded:
        memory.forward_sequence(features, torch.zeros(4, 6, 2))
    assert [ep['state'].shape for ep in recorded] == [(6, 3)] * 4
    assert [ep['features'].shape[0] for ep in recorded] == [6] * 4
    assert not np.allclose(recorded[0]['state'], recorded[1]['state'])    # rows differ
    # Row j's recorded input is what the gate saw on row j (the same episode streamed alone).
    with ablation.recording(memory) as alone:
        memory.forward_sequence(features[2:3], torch.zeros(1, 6, 2))
    np.testing.assert_allclose(recorded[2]['state'], alone[0]['state'], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(recorded[2]['features'], alone[0]['features'], rtol=1e-5)
    source = ablation.shuffled(recorded, 'state', seed=0)
    for t in range(6):
        rows = source(t, torch.zeros(4, 3)).numpy()
        donors = [next(i for i, ep in enumerate(recorded) if np.array_equal(r, ep['state'][t]))
                  for r in rows]
        assert len(set(donors)) == 4                        # four rows, four donors
    with ablation.replaced(memory, 'state', ablation.shuffled(recorded, 'state', seed=1)):
        out = memory.forward_sequence(features, torch.zeros(4, 6, 2))
    assert out.writes.shape == (4, 6)


def test_a_gate_without_features_records_every_row_of_a_sequence_too():
    memory = gated('aura_surprise_only')
    features = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(4))
    with ablation.recording(memory) as recorded:
        memory.forward_sequence(features, torch.zeros(3, 5, 2))
    assert [ep['state'].shape for ep in recorded] == [(5, 3)] * 3
    assert not np.allclose(recorded[0]['state'], recorded[2]['state'])
