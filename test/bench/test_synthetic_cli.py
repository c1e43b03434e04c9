"""`python -m aura_ros.bench synthetic --quick` and `state-growth` write valid JSON."""
import json
import subprocess
import sys

import pytest

from aura_ros.bench import report
from aura_ros.bench.stats import t_interval, wilson
from aura_ros.bench.synthetic import ARMS, BUDGET_ARMS, GATE_ARMS, PARITY_THRESHOLDS


@pytest.mark.slow
def test_synthetic_quick_writes_the_documented_json(tmp_path):
    out, plot, cache = tmp_path / 'synthetic.json', tmp_path / 'synthetic.png', tmp_path / 'c'

    def run(json_path):
        result = subprocess.run(
            [sys.executable, '-m', 'aura_ros.bench', 'synthetic', '--config', 'all', '--seeds',
             '2', '--quick', '--train-steps', '8', '--batch', '8', '--eval-episodes', '40',
             '--variants', 'hard_short_noisy', '--variant-seeds', '3-3',
             '--cache-dir', str(cache), '--json', str(json_path),
             '--plot', str(plot)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(json_path.read_text())

    data = run(out)
    # Every finished (config, seed, arm) is cached; a rerun with the same settings reuses them.
    assert len(list(cache.glob('*.json'))) == 4 * len(ARMS) + 2 * 2   # + variant x budgets
    again = run(tmp_path / 'again.json')
    assert again['configs'] == data['configs'] and again['variants'] == data['variants']
    assert set(data['configs']) == {'easy', 'hard'} and data['seeds'] == [0, 1]
    variant = data['variants']['hard_short_noisy']
    assert variant['budget_of'] == 'hard' and set(variant['budgets']) == {'1', '0.4'}
    assert [b['training_steps'] for b in variant['budgets'].values()] == [8, 3] or \
        [b['training_steps'] for b in variant['budgets'].values()] == [3, 8]
    for b in variant['budgets'].values():
        assert b['seeds'] == 1 and b['gate_status'][0] in ('closed', 'always_open', 'selective')
        assert b['collapsed'] == (b['gate_status'][0] != 'selective')
        assert b['aura_minus_always_write'] == pytest.approx(
            b['aura_accuracy'] - b['always_write_accuracy'])
    for name, block in data['configs'].items():
        assert block['seeds'] == 2
        assert block['task']['label_channel'] is False
        assert block['best_o1_arm'] in ARMS
        assert block['best_o1_arm'] not in GATE_ARMS + ('kv_cache',)
        assert set(block['arms']) == set(ARMS)
        assert set(block['write_probability']) == set(GATE_ARMS + BUDGET_ARMS)
        for prob in block['write_probability'].values():
            for kind in ('event', 'repeat', 'distractor', 'context', 'background'):
                c = prob['counts'][kind]
                assert c['steps'] > 0 and prob[kind] == c['writes'] / c['steps']
                assert prob['ci95'][kind] == pytest.approx(wilson(c['writes'], c['steps']))
        assert set(block['gate_input_ablation']) == {'state', 'features', 'state_shuffled',
                                                     'features_shuffled'}
        curve = data['parity_curve'][name]
        assert curve == block['parity_curve']
        assert curve['thresholds'] == list(PARITY_THRESHOLDS)
        writes = curve['writes_per_episode']
        assert writes[0] <= writes[-1]             # 0.98 writes no more than 0.01
        i = curve['thresholds'].index(0.5)         # the trained threshold: the aura arm
        assert curve['accuracy'][i] == pytest.approx(block['arms']['aura']['accuracy'])
        assert writes[i] == pytest.approx(block['arms']['aura']['writes_per_episode'])
        assert curve['at_parity'] == [ci[1] >= curve['best_o1_ci95'][0]
                                      for ci in curve['accuracy_ci95']]
        assert all(stats['training_steps'] == 8 for stats in block['arms'].values())
        for arm in GATE_ARMS:
            assert len(block['arms'][arm]['gate_status']) == 2
        assert {'write_reduction_vs_best_o1', 'write_reduction_vs_always_write',
                'write_reduction_at_parity'} <= set(block['parity'])
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
    assert 'Synthetic 8-way task' in text and 'could falsify' in text


def test_t_interval_matches_student_t():
    mean, (lo, hi) = t_interval([0.70, 0.72, 0.74, 0.71, 0.73])
    assert mean == pytest.approx(0.72)
    # s = 0.0158, t(4) = 2.776 -> half width 0.0196
    assert hi - mean == pytest.approx(2.776 * 0.015811 / 5 ** 0.5, rel=1e-3)
    assert t_interval([0.5]) == (0.5, [0.5, 0.5])


def test_a_new_gate_recipe_reruns_the_gated_and_budget_arms_and_keeps_the_others():
    from aura_ros.bench.synthetic import BenchSettings, _cache_path
    old, new = BenchSettings(), BenchSettings(gate={'write_cost': 1.0})
    for arm in ARMS:
        same = _cache_path('c', 'hard', 0, arm, old) == _cache_path('c', 'hard', 0, arm, new)
        assert same == (arm not in GATE_ARMS + BUDGET_ARMS), arm
    assert old.gate_config('aura') == old.gate and old.gate_config('always_write') == {}


def test_a_cached_arm_is_keyed_by_the_code_that_computed_it():
    from aura_ros.bench.code_key import code_digest
    from aura_ros.bench.synthetic import COMPUTED_BY, BenchSettings, _cache_path
    settings = BenchSettings()
    now = _cache_path('c', 'hard', 0, 'always_write', settings)
    assert now == _cache_path('c', 'hard', 0, 'always_write', settings,
                              code=code_digest(*COMPUTED_BY))
    assert now != _cache_path('c', 'hard', 0, 'always_write', settings, code='0123456789abcdef')


@pytest.mark.slow
def test_threshold_sweep_measures_the_benchmarks_own_gate_at_each_threshold():
    """At the trained threshold the sweep's model is the benchmark's (same evaluation result as
    run_seed's aura); the threshold reaches the gate: raising it never adds a write, and the
    quick model's gate (open after its short warm-up) closes at 0.9."""
    from aura_ros.bench import synthetic
    settings = synthetic.BenchSettings.quick()
    settings.eval_episodes = 60
    bench = synthetic.run_seed('easy', 0, settings, arms=('aura',))['aura']
    sweep = synthetic.threshold_sweep('easy', 0, settings, [0.0, 0.5, 0.9], progress=False)
    rows = {r['threshold']: r['evaluation'] for r in sweep['thresholds']}
    assert rows[0.5]['accuracy'] == bench['accuracy']
    assert rows[0.5]['write_counts'] == bench['write_counts']
    writes = [rows[t]['writes_per_episode'] for t in (0.0, 0.5, 0.9)]
    assert writes == sorted(writes, reverse=True)
    assert rows[0.0]['writes_per_episode'] == 64 and rows[0.9]['writes_per_episode'] == 0
    assert all(r['calibration']['write_counts'] != r['evaluation']['write_counts']
               for r in sweep['thresholds'] if r['threshold'] < 0.9)
    with pytest.raises(ValueError, match='no learned gate'):
        synthetic.threshold_sweep('easy', 0, settings, [0.5], arm='always_write')


def test_a_cached_arm_is_keyed_by_its_own_tasks_budget_only():
    """Another task's budget (a variant added, say) leaves a task's cached arms valid; its own
    budget does not."""
    from aura_ros.bench.synthetic import BenchSettings, _cache_path, variant_settings
    settings = BenchSettings()
    other = variant_settings(settings, 'hard_long_mixed', 0.4)
    assert _cache_path('c', 'hard', 1, 'aura', settings) == _cache_path('c', 'hard', 1, 'aura',
                                                                        other)
    assert (_cache_path('c', 'hard_long_mixed', 1, 'aura', settings)
            != _cache_path('c', 'hard_long_mixed', 1, 'aura', other))
    assert other.train_steps['hard_long_mixed'] == round(0.4 * settings.train_steps['hard'])


def test_seeds_and_variants_on_the_command_line():
    from aura_ros.bench.__main__ import build_parser, parse_seeds, parse_variants
    assert parse_seeds('5') == [0, 1, 2, 3, 4] and parse_seeds('1-5') == [1, 2, 3, 4, 5]
    assert parse_seeds('1,3') == [1, 3] and parse_seeds('2,') == [2]
    for bad, why in (('3,1,3', 'given twice'), ('x', 'a count'), ('0', 'at least one'),
                     ('2-1', 'at least one')):
        with pytest.raises(SystemExit, match=why):
            parse_seeds(bad)
    args = build_parser().parse_args(['synthetic', '--json', 'x.json'])   # the defaults
    assert parse_seeds(args.seeds) == [1, 2, 3, 4, 5] and parse_seeds(args.variant_seeds) == [1]
    known = ['hard_long_mixed', 'easy_sparse']
    assert parse_variants(args.variants, known) == []
    assert parse_variants('all', known) == known
    assert parse_variants('easy_sparse', known) == ['easy_sparse']
    with pytest.raises(SystemExit, match="unknown \\['hard'\\]"):
        parse_variants('hard,easy_sparse', known)
