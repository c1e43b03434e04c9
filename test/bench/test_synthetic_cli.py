"""`python -m aura_ros.bench synthetic --quick` and `state-growth` write valid JSON."""
import json
import subprocess
import sys

import pytest

from aura_ros.bench import report
from aura_ros.bench.synthetic import ARMS, t_interval


@pytest.mark.slow
def test_synthetic_quick_writes_the_documented_json(tmp_path):
    out, plot, cache = tmp_path / 'synthetic.json', tmp_path / 'synthetic.png', tmp_path / 'c'

    def run(json_path):
        result = subprocess.run(
            [sys.executable, '-m', 'aura_ros.bench', 'synthetic', '--config', 'all', '--seeds',
             '2', '--quick', '--cache-dir', str(cache), '--json', str(json_path),
             '--plot', str(plot)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(json_path.read_text())

    data = run(out)
    # Every finished (config, seed) is cached; a rerun with the same settings reuses them all.
    assert len(list(cache.glob('*.json'))) == 4
    again = run(tmp_path / 'again.json')
    assert again['configs'] == data['configs']
    assert set(data['configs']) == {'easy', 'hard'}
    for block in data['configs'].values():
        assert block['seeds'] == 2
        assert block['best_o1_arm'] in ARMS and block['best_o1_arm'] not in ('aura', 'kv_cache')
        assert isinstance(block['gate_selectivity'], float)
        assert set(block['arms']) == set(ARMS)
        for stats in block['arms'].values():
            lo, hi = stats['accuracy_ci95']
            assert 0.0 <= lo <= stats['accuracy'] <= hi <= 1.0 + 1e-9
            assert stats['writes_per_episode'] >= 0 and stats['state_bytes'] >= 0
            assert len(stats['accuracy_per_seed']) == 2
        always = block['arms']['always_write']['writes_per_episode']
        assert always == block['task']['horizon']
        assert block['arms']['always_write']['write_reduction'] == pytest.approx(1.0)
        assert block['arms']['aura']['state_bytes'] == 4224
        assert block['arms']['kv_cache']['state_bytes'] == 256 * block['task']['horizon']
        assert block['arms']['no_memory']['writes_per_episode'] == 0
    assert plot.stat().st_size > 1000
    text = report.render(tmp_path)  # bench/README.md from this result
    assert 'Synthetic 8-way task' in text and 'always-write of the same memory' in text


def test_t_interval_matches_student_t():
    mean, (lo, hi) = t_interval([0.70, 0.72, 0.74, 0.71, 0.73])
    assert mean == pytest.approx(0.72)
    # s = 0.0158, t(4) = 2.776 -> half width 0.0196
    assert hi - mean == pytest.approx(2.776 * 0.015811 / 5 ** 0.5, rel=1e-3)
    assert t_interval([0.5]) == (0.5, [0.5, 0.5])
