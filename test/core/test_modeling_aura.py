"""The AURA memory layer: constant state, binary gate, closed gate = no write, one transition
for training and streaming, the compiled step equal to it, write rules that see only what they
are allowed to."""
import functools

import pytest
import torch

from aura_ros.core import GATED_KINDS, AuraConfig, build_memory, load_memory
from aura_ros.core.memory import episode_generator

FAST_PATH_KINDS = GATED_KINDS + ('always_write', 'random_budget', 'periodic_budget')


def make(kind='aura', **kw):
    torch.manual_seed(0)
    return build_memory(AuraConfig(feature_dim=12, action_dim=3, kind=kind, **kw)).eval()


def lively(kind, **kw):
    """A memory with non-trivial normalisation, head and gate: both gate outcomes occur."""
    memory = make(kind, write_rate=0.2, **kw)
    with torch.no_grad():
        torch.nn.init.normal_(memory.head_out.weight, std=0.3)
        memory.feature_mean.normal_()
        memory.feature_std.uniform_(0.5, 2.0)
        memory.action_scale.fill_(0.07)
        if memory.config.value_hidden:
            torch.nn.init.normal_(memory.value_out.weight, std=0.3)
        if memory.config.nonlinear_keys:
            torch.nn.init.normal_(memory.phi_to_kvq.weight, std=0.3)
        if kind in GATED_KINDS:   # a random gate, centred so that about half the steps write
            for name, p in memory.rule.named_parameters():
                if name.startswith(('feat', 'state_in')):
                    p.normal_(std=0.5)
            x = torch.randn(8, 50, 12)
            for _ in range(4):
                probs = memory.forward_sequence(x, gate_mode='hard').write_prob
                memory.rule.bias.sub_(torch.logit(probs.median().clamp(1e-4, 1 - 1e-4)))
    return memory


def test_default_state_is_4224_bytes_and_constant_over_steps():
    memory = make()
    memory.reset()
    sizes = set()
    for _ in range(300):
        memory.step(torch.randn(12), torch.zeros(3))
        sizes.add(memory.state_bytes())
    assert sizes == {4224}
    assert memory.config.fast_weight_state_bytes() == 4224
    assert [tuple(t.shape) for t in memory.state_tensors()] == [(1, 32, 32), (1, 32)]


@pytest.mark.parametrize('kind', GATED_KINDS)
def test_closed_gate_leaves_the_state_bit_for_bit_unchanged(kind):
    memory = make(kind)
    memory.reset()
    memory.rule.bias.data.fill_(-50.0)  # gate shut
    memory.W = torch.randn_like(memory.W)
    before = [t.clone() for t in memory.state_tensors()]
    for step in (memory.step, memory.reference_step):
        for _ in range(20):
            out = step(torch.randn(12), torch.zeros(3))
            assert not out.wrote and out.gate_probability < 0.5
        assert all(torch.equal(a, b) for a, b in zip(before, memory.state_tensors()))
    assert memory.total_writes == 0 and memory.bytes_written == 0


def test_open_gate_writes_the_delta_rule():
    memory = make()
    memory.reset()
    memory.rule.bias.data.fill_(50.0)  # gate open
    x = torch.randn(12)
    out = memory.step(x, torch.zeros(3))
    assert out.wrote and out.gate_probability > 0.5
    with torch.no_grad():
        enc = memory.encode(x[None])
    eta_w, eta_b = enc['eta'][0]
    err = enc['v'][0]  # state was zero: the whole value is surprise
    expected_W = eta_w * enc['k'][0][:, None] * err[None, :]
    torch.testing.assert_close(memory.W[0], expected_W)
    torch.testing.assert_close(memory.b[0], eta_b * err)
    assert memory.total_writes == 1 and memory.bytes_written == 4224
    assert out.surprise == pytest.approx(float(err.pow(2).mean()), rel=1e-5)


def test_repeated_observation_is_less_surprising_after_a_write():
    memory = make()
    memory.reset()
    memory.rule.bias.data.fill_(50.0)
    x = torch.randn(12)
    first = memory.step(x, torch.zeros(3)).surprise
    second = memory.step(x, torch.zeros(3)).surprise
    assert second < 0.5 * first


def test_residual_mode_starts_as_the_frozen_policy():
    memory = make(action_mode='residual')
    memory.reset()
    base = torch.tensor([0.1, -0.2, 0.3])
    out = memory.step(torch.randn(12), base)
    torch.testing.assert_close(out.action, base)


@pytest.mark.parametrize('kind', GATED_KINDS + ('random_budget', 'skip_budget'))
def test_streaming_and_sequence_run_one_transition(kind):
    """Training (batched sequences) and the robot (batch-1 streaming) call the same transition:
    the same decisions, actions and state, with open and closed gates."""
    memory = lively(kind, action_mode='full')
    x = torch.randn(1, 40, 12)
    with torch.no_grad():   # the episode seed gives the same schedule in both paths
        seq = memory.forward_sequence(x, gate_mode='hard', generator=episode_generator(5))
    memory.reset(seed=5)
    steps = [memory.reference_step(x[0, t]) for t in range(40)]
    wrote = [s.wrote for s in steps]
    assert wrote == [bool(w) for w in seq.writes[0]]
    assert 0 < sum(wrote) < 40, 'both outcomes must occur'
    torch.testing.assert_close(torch.stack([s.action for s in steps]), seq.actions[0])
    torch.testing.assert_close(memory.W, seq.final_state[0])
    torch.testing.assert_close(memory.b, seq.final_state[1])


@pytest.mark.parametrize('kind', GATED_KINDS)
@pytest.mark.parametrize('with_base', [False, True])
def test_counterfactual_actions_are_those_of_the_run_with_that_one_write(kind, with_base):
    """The write objective's counterfactual (future_actions): with a closed gate, 'without
    write t' is the run taken and 'with write t' is the run in which t is the only write
    (exact: one write has no other to interact with; before t, the run taken). The truth is
    the streaming step made to write at t (force_writes)."""
    memory = lively(kind, action_mode='residual')
    memory.rule.bias.data.fill_(-50.0)
    T = 14
    x, base = torch.randn(1, T, 12), 0.1 * torch.randn(1, T, 3)
    seq = memory.forward_sequence(x, base if with_base else None, gate_mode='straight_through')
    assert not seq.writes.any()
    steps = torch.tensor([0, 5, 13])
    with_write, without = seq.future_actions(steps)                     # (1, K, T, 3)
    for k, t in enumerate(steps.tolist()):
        torch.testing.assert_close(without[0, k], seq.actions[0].detach())
        memory.reset()
        memory.force_writes(functools.partial(next, iter(i == t for i in range(T))))
        truth = torch.stack([memory.step(x[0, i], base[0, i] if with_base else None).action
                             for i in range(T)])
        memory.force_writes(None)
        torch.testing.assert_close(with_write[0, k], truth, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('kind', ['always_write', 'aura'])
def test_forced_writes_train_what_the_forced_streaming_step_runs(kind):
    """A fixed schedule (e.g. the recorded cue onsets) in training (forward_sequence's
    forced_writes) and on the robot (force_writes): the same writes, actions and state."""
    memory = lively(kind, action_mode='full')
    x, when = torch.randn(1, 20, 12), torch.zeros(1, 20)
    when[0, [2, 9]] = 1
    with torch.no_grad():
        seq = memory.forward_sequence(x, gate_mode='hard', forced_writes=when)
    assert seq.writes[0].tolist() == when[0].tolist()
    memory.reset()
    clock = iter(range(20))
    memory.force_writes(lambda: next(clock) in (2, 9))
    steps = [memory.step(x[0, t]) for t in range(20)]
    assert [s.wrote for s in steps] == [bool(w) for w in when[0]]
    torch.testing.assert_close(torch.stack([s.action for s in steps]), seq.actions[0])
    torch.testing.assert_close(memory.W, seq.final_state[0])


@pytest.mark.parametrize('kind', GATED_KINDS)
def test_closed_gate_streaming_equals_the_sequence_bit_for_bit(kind):
    memory = lively(kind, action_mode='full')
    memory.rule.bias.data.fill_(-50.0)
    W0, b0 = torch.randn(1, 32, 32), torch.randn(1, 32)
    x = torch.randn(1, 30, 12)
    with torch.no_grad():
        seq = memory.forward_sequence(x, gate_mode='hard', state=(W0.clone(), b0.clone()))
    memory.reset()
    memory.set_live_state({'W': W0, 'b': b0})
    for step in (memory.step, memory.reference_step):
        assert not any(step(x[0, t]).wrote for t in range(30))
    assert not seq.writes.any()
    for state in ((memory.W, memory.b), seq.final_state):
        assert torch.equal(state[0], W0) and torch.equal(state[1], b0)


@pytest.mark.parametrize('kind,extra', [(k, {}) for k in FAST_PATH_KINDS] + [
    ('aura', dict(read_heads=3, value_hidden=16)), ('aura_surprise_only', dict(read_heads=2)),
    ('always_write', dict(value_hidden=8)), ('aura', dict(nonlinear_keys=False)),
    ('aura_surprise_only', dict(action_change='distribution')), ('aura', dict(head_hidden=7))])
def test_compiled_step_equals_the_torch_step_and_follows_a_threshold_change(kind, extra):
    memory = lively(kind, **extra)
    xs, base = torch.randn(300, 12), 0.05 * torch.randn(300, 3)

    def run(step):
        memory.config.gate_threshold = 0.5
        memory.reset(seed=3)
        outs = []
        for i in range(300):
            if i == 150:   # a threshold change at run time applies on the very next step
                memory.config.gate_threshold = 0.9
            outs.append(step(xs[i], base[i]))
        return outs, [t.clone() for t in memory.state_tensors()]

    ref, ref_state = run(memory.reference_step)
    fast, fast_state = run(memory.step)
    assert [f.wrote for f in fast] == [r.wrote for r in ref]
    if kind in GATED_KINDS:
        before = sum(r.wrote for r in ref[:150])
        after = sum(r.wrote for r in ref[150:])
        assert 0 < before < 150 and after < before, (before, after)
        assert all(r.wrote == (r.gate_probability > 0.9) for r in ref[150:])
    for f, r in zip(fast, ref):
        torch.testing.assert_close(f.action, r.action, rtol=1e-4, atol=1e-5)
        assert f.surprise == pytest.approx(r.surprise, rel=1e-4, abs=1e-6)
        assert f.gate_probability == pytest.approx(r.gate_probability, rel=1e-4, abs=1e-6)
    for a, b in zip(fast_state, ref_state):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('kind', ['random_budget', 'periodic_budget'])
def test_schedules_are_fresh_per_episode_and_repeat_for_the_same_seed(kind):
    memory = make(kind, write_rate=0.1)

    def schedule(seed=None):
        memory.reset(seed)
        return [memory.step(torch.randn(12)).wrote for _ in range(60)]

    first, second = schedule(), schedule()
    assert first != second                          # a fresh schedule every reset
    assert schedule(seed=11) == schedule(seed=11)   # the same episode seed, the same schedule
    assert len({tuple(schedule(seed=s)) for s in range(6)}) > 1
    gens = [torch.Generator().manual_seed(s) for s in (1, 1, 2)]
    seqs = [memory.forward_sequence(torch.randn(4, 60, 12), generator=g).writes for g in gens]
    assert torch.equal(seqs[0], seqs[1]) and not torch.equal(seqs[0], seqs[2])
    assert not torch.equal(seqs[0][0], seqs[0][1])  # each episode of a batch its own


def test_surprise_only_gate_cannot_see_the_features():
    memory = lively('aura_surprise_only')
    rule = memory.rule
    assert not rule.sees_features and not hasattr(rule, 'feat_in')
    signals = torch.randn(5, 3)
    a = rule.logit(signals, torch.randn(5, 32))
    b = rule.logit(signals, torch.randn(5, 32))
    assert torch.equal(a, b)
    # ... and the features it gets in the step reach it only through the state signals
    assert 'gate_ctx' not in memory.encode(torch.randn(2, 12))


def test_feature_gate_cannot_see_the_state():
    memory = lively('feature_gate')
    rule = memory.rule
    assert not rule.sees_state and not rule.reads_actions
    ctx = torch.randn(5, 32)
    assert torch.equal(rule.logit(torch.randn(5, 3), ctx), rule.logit(torch.randn(5, 3), ctx))
    # the same observation gets the same write probability whatever the memory holds
    x = torch.randn(12)
    probs = []
    for state in (torch.zeros(1, 32, 32), 5 * torch.randn(1, 32, 32)):
        memory.reset()
        memory.W.copy_(state)
        probs.append(memory.reference_step(x).gate_probability)
    assert probs[0] == probs[1]


def test_aura_features_only_modulate_within_their_bound():
    memory = lively('aura', gate_feature_bound=1.0)
    rule = memory.rule
    signals = torch.randn(64, 3)
    base = rule.logit(signals, torch.zeros(64, 32)) - rule.feature_bound * torch.tanh(
        rule.feat_out(torch.nn.functional.gelu(torch.zeros(64, 32)))).squeeze(-1)
    for _ in range(5):
        shifted = rule.logit(signals, 100 * torch.randn(64, 32))
        assert torch.all((shifted - base).abs() <= 1.0 + 1e-5)


@pytest.mark.parametrize('kind', GATED_KINDS)
@pytest.mark.parametrize('mode', ['soft', 'straight_through'])
def test_gradients_reach_the_gate(kind, mode):
    memory = make(kind, action_mode='full').train()
    out = memory.forward_sequence(torch.randn(4, 10, 12), gate_mode=mode)
    (out.actions.pow(2).sum() + out.write_prob.sum()).backward()
    rule = memory.rule
    first = rule.state_in.weight if rule.sees_state else rule.feat_in.weight
    for p in (rule.bias, first, memory.to_kvq.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_save_load_round_trip(tmp_path):
    memory = make()
    path = tmp_path / 'memory.safetensors'
    memory.save(path)
    loaded = load_memory(path)
    assert loaded.config == memory.config
    x = torch.randn(1, 8, 12)
    torch.testing.assert_close(loaded.forward_sequence(x).actions,
                               memory.forward_sequence(x).actions)


def test_load_refuses_mismatched_or_non_safetensors_checkpoints(tmp_path):
    memory = make()
    path = tmp_path / 'memory.safetensors'
    memory.save(path)
    with pytest.raises(ValueError, match='does not match'):
        build_memory(AuraConfig(feature_dim=13, action_dim=3)).load_weights(path)
    with pytest.raises(ValueError, match='does not match'):   # another gate, other weights
        build_memory(AuraConfig(feature_dim=12, action_dim=3,
                                kind='feature_gate')).load_weights(path)
    with pytest.raises(ValueError, match='safetensors'):
        load_memory(tmp_path / 'memory.pt')
    with pytest.raises(FileNotFoundError):
        load_memory(tmp_path / 'missing.safetensors')
    (tmp_path / 'junk.safetensors').write_bytes(b'\x00' * 64)
    with pytest.raises(Exception, match='(?i)header|safetensor|deserializ|invalid'):
        load_memory(tmp_path / 'junk.safetensors')


@pytest.mark.parametrize('bad', [dict(d_key=0), dict(kind='lstm'), dict(gate_threshold=1.5),
                                 dict(action_mode='both'), dict(feature_dim=-3),
                                 dict(sparsity_weight=-1.0), dict(budget_weight=-1.0),
                                 dict(gate_feature_bound=-1.0),
                                 dict(action_change='argmax')])
def test_config_validates_itself(bad):
    with pytest.raises(ValueError):
        AuraConfig(**{'feature_dim': 4, 'action_dim': 2, **bad})


def test_categorical_action_change_is_the_total_variation_of_the_two_distributions():
    def change(how, a, b):
        rule = build_memory(AuraConfig(feature_dim=4, action_dim=3, kind='aura',
                                       action_change=how)).rule
        return float(rule.change(torch.tensor([a]), torch.tensor([b]))[0])
    # another class chosen: the distributions move almost entirely
    assert change('distribution', [9., 0, 0], [0., 9, 0]) == pytest.approx(1.0, abs=1e-3)
    # logits shifted alike: the same distribution, no change of the action at all
    assert change('distribution', [2., 1, 0], [7., 6, 5]) == pytest.approx(0.0, abs=1e-6)
    assert change('norm', [2., 1, 0], [7., 6, 5]) == pytest.approx(5 * 3 ** 0.5)
    # a more confident choice of the same class moves the distribution only a little
    assert change('distribution', [2., 0, 0], [4., 0, 0]) < 0.25
