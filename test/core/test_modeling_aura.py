"""The AURA memory layer: constant state, binary gate, closed gate = no write, gradients."""
import pytest
import torch

from aura_ros.core import AuraConfig, build_memory, load_memory


def make(kind='aura', **kw):
    torch.manual_seed(0)
    return build_memory(AuraConfig(feature_dim=12, action_dim=3, kind=kind, **kw)).eval()


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


def test_closed_gate_leaves_the_state_bit_for_bit_unchanged():
    memory = make()
    memory.reset()
    memory.gate_out.bias.data.fill_(-50.0)  # gate shut
    memory.W = torch.randn_like(memory.W)
    before = [t.clone() for t in memory.state_tensors()]
    for _ in range(20):
        out = memory.step(torch.randn(12), torch.zeros(3))
        assert not out.wrote and out.gate_probability < 0.5
    assert all(torch.equal(a, b) for a, b in zip(before, memory.state_tensors()))
    assert memory.total_writes == 0 and memory.bytes_written == 0


def test_open_gate_writes_the_delta_rule():
    memory = make()
    memory.reset()
    memory.gate_out.bias.data.fill_(50.0)  # gate open
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
    memory.gate_out.bias.data.fill_(50.0)
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


def test_streaming_and_sequence_paths_agree():
    memory = make(action_mode='full')
    x = torch.randn(1, 25, 12)
    seq = memory.forward_sequence(x, gate_mode='hard')
    memory.reset()
    steps = [memory.step(x[0, t]) for t in range(25)]
    torch.testing.assert_close(torch.stack([s.action for s in steps]), seq.actions[0],
                               rtol=1e-4, atol=1e-5)
    assert [s.wrote for s in steps] == [bool(w) for w in seq.writes[0]]


@pytest.mark.parametrize('mode', ['soft', 'straight_through'])
def test_gradients_reach_the_gate(mode):
    memory = make(action_mode='full').train()
    out = memory.forward_sequence(torch.randn(4, 10, 12), gate_mode=mode)
    (out.actions.pow(2).sum() + out.write_prob.sum()).backward()
    for p in (memory.gate_in.weight, memory.gate_out.weight, memory.to_kvq.weight):
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
    with pytest.raises(ValueError, match='safetensors'):
        load_memory(tmp_path / 'memory.pt')
    with pytest.raises(FileNotFoundError):
        load_memory(tmp_path / 'missing.safetensors')
    (tmp_path / 'junk.safetensors').write_bytes(b'\x00' * 64)
    with pytest.raises(Exception, match='(?i)header|safetensor|deserializ|invalid'):
        load_memory(tmp_path / 'junk.safetensors')


@pytest.mark.parametrize('bad', [dict(d_key=0), dict(kind='lstm'), dict(gate_threshold=1.5),
                                 dict(action_mode='both'), dict(feature_dim=-3),
                                 dict(sparsity_weight=-1.0)])
def test_config_validates_itself(bad):
    with pytest.raises(ValueError):
        AuraConfig(**{'feature_dim': 4, 'action_dim': 2, **bad})


@pytest.mark.parametrize('kind', ['aura', 'always_write', 'random_budget', 'periodic_budget'])
def test_fast_streaming_path_equals_the_torch_reference(kind):
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=12, action_dim=3, kind=kind,
                                     write_rate=0.2)).eval()
    torch.nn.init.normal_(memory.head_out.weight, std=0.3)
    memory.feature_mean.normal_()
    memory.feature_std.uniform_(0.5, 2.0)
    memory.action_scale.fill_(0.07)
    if kind == 'aura':
        memory.gate_out.bias.data.fill_(0.0)   # an undecided gate: both outcomes occur
    xs, base = torch.randn(200, 12), 0.05 * torch.randn(200, 3)
    memory.reset()
    ref = [memory.reference_step(xs[i], base[i]) for i in range(200)]
    ref_state = [t.clone() for t in memory.state_tensors()]
    memory.reset()
    fast = [memory.step(xs[i], base[i]) for i in range(200)]
    assert [f.wrote for f in fast] == [r.wrote for r in ref]
    assert 0 < sum(r.wrote for r in ref) <= 200
    for f, r in zip(fast, ref):
        torch.testing.assert_close(f.action, r.action, rtol=1e-4, atol=1e-5)
        assert f.surprise == pytest.approx(r.surprise, rel=1e-4, abs=1e-6)
    for a, b in zip(memory.state_tensors(), ref_state):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
