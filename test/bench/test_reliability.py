"""bench reliability: the CLI writes its sections, keeps the ones not run, and the report
renders them."""
import json
import subprocess
import sys

import pytest

from aura_ros.bench.report import reliability_section


@pytest.mark.slow
def test_parts_run_alone_update_their_section_and_keep_the_others(tmp_path):
    out = tmp_path / 'rel.json'
    out.write_text(json.dumps({'parts': ['typos'], 'typos': {'cases': {}, 'typos_refused': True,
                                                            'opt_out_runs': True}}))
    result = subprocess.run([sys.executable, '-m', 'aura_ros.bench', 'reliability', '--parts',
                             'limits', '--steps', '150', '--json', str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data['parts'] == ['limits', 'typos'] and data['typos']['typos_refused']
    for kind in ('sync', 'async'):
        block = data['limits'][kind]
        assert block['commands'] >= 150 and block['violations'] == 0
    text = '\n'.join(reliability_section(data))
    assert '| sync | ' in text and '| async | ' in text
    bad = subprocess.run([sys.executable, '-m', 'aura_ros.bench', 'reliability', '--parts',
                          'limitz', '--json', str(out)], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown parts ['limitz']" in bad.stderr


def test_the_shutdown_section_names_a_slow_or_unclean_node():
    runs = [dict(seconds=0.3, exit_status=0, traceback=False)]
    down = {'repeats': 1, 'settle_s': 6.0, 'all_clean': False, 'slowest_s': 2.5,
            'all_within_1s': False, 'nodes': {
                'policy_node': dict(runs=runs, median_s=0.3, max_s=0.3, clean=True),
                'sim_arm_node': dict(runs=runs, median_s=2.5, max_s=2.5, clean=False)}}
    text = '\n'.join(reliability_section({'shutdown': down}))
    assert '| sim_arm_node | 2.50 | 2.50 | False |' in text
    assert 'every node within 1 s: False' in text
