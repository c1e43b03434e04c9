"""Write accounting and state size of every baseline behind the AURA interface."""
import pytest
import torch

from aura_ros.core import MEMORY_KINDS, AuraConfig, build_memory

T = 40


def run(kind, **kw):
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=10, action_dim=4, kind=kind, **kw)).eval()
    memory.reset()
    outs = [memory.step(torch.randn(10), torch.zeros(4)) for _ in range(T)]
    return memory, outs


@pytest.mark.parametrize('kind', MEMORY_KINDS)
def test_counters_match_the_step_outputs(kind):
    memory, outs = run(kind)
    writes = sum(o.wrote for o in outs)
    assert memory.total_steps == T and memory.total_writes == writes
    assert all(torch.isfinite(o.action).all() and o.action.shape == (4,) for o in outs)


def test_always_write_writes_every_step():
    memory, outs = run('always_write')
    assert all(o.wrote for o in outs) and memory.bytes_written == T * 4224


def test_no_memory_never_writes_and_holds_nothing():
    memory, outs = run('no_memory')
    assert not any(o.wrote for o in outs) and memory.state_bytes() == 0


def test_periodic_budget_writes_every_period():
    memory, outs = run('periodic_budget', write_rate=0.1)
    steps = [t for t, o in enumerate(outs) if o.wrote]
    assert len(steps) == 4 and all(b - a == 10 for a, b in zip(steps, steps[1:]))


def test_random_budget_writes_near_its_rate():
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=10, action_dim=4, kind='random_budget',
                                     write_rate=0.2)).eval()
    memory.reset()
    writes = sum(memory.step(torch.randn(10)).wrote for _ in range(2000))
    assert 340 < writes < 460


def test_skip_budget_gate_is_blind_to_the_input():
    """Skip-RNN control: when to write next is set by the state alone. Two input streams that
    agree on the first step (a write) and differ everywhere after must write again at the
    same step, because nothing but a write changes the state."""
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=10, action_dim=4, kind='skip_budget',
                                     write_rate=0.2)).eval()
    first = torch.randn(10)
    schedules = []
    for scale in (1.0, 100.0):
        memory.reset()
        writes = [memory.step(first).wrote]
        writes += [memory.step(scale * torch.randn(10)).wrote for _ in range(30)]
        schedules.append(writes)
    assert schedules[0][0] and schedules[1][0]
    assert True in schedules[0][1:]
    assert schedules[0][1:].index(True) == schedules[1][1:].index(True)


def test_gru_state_is_constant_and_kv_cache_grows_256_bytes_per_step():
    gru, _ = run('gru_dense', gru_hidden=64)
    assert gru.state_bytes() == 64 * 4
    kv, _ = run('kv_cache')
    assert kv.state_bytes() == T * 256
    kv.step(torch.randn(10))
    assert kv.state_bytes() == (T + 1) * 256


@pytest.mark.parametrize('kind', MEMORY_KINDS)
def test_sequence_output_shapes(kind):
    memory = build_memory(AuraConfig(feature_dim=10, action_dim=4, kind=kind))
    out = memory.forward_sequence(torch.randn(3, 7, 10), torch.zeros(3, 7, 4))
    assert out.actions.shape == (3, 7, 4)
    assert out.writes.shape == out.write_prob.shape == (3, 7)


def test_kv_cache_compiled_step_equals_the_torch_step_across_buffer_growth():
    """The KV-cache gets the same engineering as AURA (compiled, preallocated) and computes
    the same thing as its torch version, also after its buffers grow (64 -> 128 -> 256)."""
    torch.manual_seed(0)
    memory = build_memory(AuraConfig(feature_dim=10, action_dim=4, kind='kv_cache')).eval()
    with torch.no_grad():
        torch.nn.init.normal_(memory.head_out.weight, std=0.3)
        memory.feature_mean.normal_()
        memory.recency.fill_(-4.0)
    xs, base = torch.randn(200, 10), 0.1 * torch.randn(200, 4)

    def run(step):
        memory.reset()
        return torch.stack([step(xs[i], base[i]).action for i in range(200)])

    torch.testing.assert_close(run(memory.step), run(memory.reference_step), rtol=1e-4,
                               atol=1e-5)
    assert memory.state_bytes() == 200 * 256 and memory._capacity == 256
