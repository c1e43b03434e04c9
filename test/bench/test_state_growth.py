"""State growth read from live objects: AURA constant, KV-cache 256 B per step."""
from aura_ros.bench import state_growth


def test_state_growth_small_run():
    result = state_growth.run(steps=2000, progress=False)
    aura, kv = result['aura'], result['kv_cache']
    assert set(aura['state_bytes']) == {4224}
    assert aura['steps'][0] == 1 and aura['steps'][-1] == 2000
    assert kv['state_bytes'] == [256 * s for s in kv['steps']]
    assert result['summary']['kv_over_aura'] == 2000 * 256 / 4224
