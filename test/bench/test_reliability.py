"""bench reliability: the CLI writes its sections, keeps the ones not run, and the report
renders them."""
import json
import subprocess
import sys

from aura_ros.bench.report import reliability_section


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
