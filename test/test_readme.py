"""The README documents every node parameter and the two commands, its benchmark commands
parse, and its pip-only block runs as written (with fewer episodes)."""
import shlex

import pytest

from aura_ros.params import (
    EPISODE_RECORDER_PARAMS,
    MONITOR_PARAMS,
    PERCEPTION_PARAMS,
    POLICY_PARAMS,
    RECORDER_PARAMS,
    SIM_PARAMS,
    SIM_TELEOP_PARAMS,
    STATUS_PUBLISHER_PARAMS,
    markdown_rows,
)
from conftest import REPO

README = (REPO / 'README.md').read_text()


def test_every_parameter_is_documented_with_its_default():
    lines = README.splitlines()
    every = (POLICY_PARAMS + PERCEPTION_PARAMS + SIM_PARAMS + RECORDER_PARAMS + MONITOR_PARAMS +
             STATUS_PUBLISHER_PARAMS + EPISODE_RECORDER_PARAMS + SIM_TELEOP_PARAMS)
    for row in markdown_rows(every):  # whole rows: name, type, default, range, description
        assert row in lines, row


def test_every_documented_benchmark_command_parses():
    """A flag renamed or removed fails here, not on a reader's machine (`--episodes 600` once
    stayed in the list after the curve took `--points`)."""
    from aura_ros.bench.__main__ import build_parser
    lines = [line.split('  #')[0] for line in README.splitlines()
             if line.startswith('python -m aura_ros.bench ')]
    assert len(lines) >= 10
    for line in lines:
        try:
            build_parser().parse_args(shlex.split(line)[3:])
        except SystemExit as exc:
            pytest.fail(f'the README\'s command does not parse ({exc}): {line}')


def test_the_two_commands_come_first():
    head = '\n'.join(README.splitlines()[:40])
    assert 'make demo' in head and 'make test' in head


def readme_block(heading):
    """The first ```bash block after the paragraph that starts with ``heading``."""
    text = README[README.index(heading):]
    start = text.index('```bash\n') + len('```bash\n')
    return text[start:text.index('```', start)]


@pytest.mark.slow
@pytest.mark.ros
def test_the_pip_only_record_train_deploy_run_block_runs(tmp_path):
    """The README's whole path on the simulated arm, as written, with fewer episodes and
    training steps: record (recorder stopped before training), train, deploy, run."""
    import os
    import subprocess
    block = readme_block('**The whole path on the simulated arm, from a pip-only venv**')
    quick = (block.replace('episodes:=300', 'episodes:=3').replace('--episodes 20',
                                                                     '--episodes 2')
             .replace('--out my_memory', '--out my_memory --steps 40 --val-fraction 0.34'))
    assert quick.count('episodes:=3') == 2 and '--steps 40' in quick
    env = dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}")
    quick = quick.replace('$PWD/.venv', str(REPO / '.venv')).replace(   # (run from the repo)
        'config/default.yaml', str(REPO / 'config' / 'default.yaml'))
    proc = subprocess.run(['bash', '-e', '-x', '-c', quick],   # -x: stderr names each command
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:   # the whole tails (an assertion's message would be cut short)
        pytest.fail(f'exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr '
                    f'(commands marked +)\n{proc.stderr[-5000:]}', pytrace=False)
    assert (tmp_path / 'demos' / 'sim' / 'metadata.yaml').is_file()   # the recorder closed it
    assert (tmp_path / 'my_memory' / 'memory.safetensors').is_file()
    assert 'my_sim.yaml: memory.checkpoint' in proc.stdout
    import re
    assert re.search(r'demo: [0-2]/2 episodes succeeded', proc.stdout), proc.stdout[-2000:]
    assert 'from ' + str((tmp_path / 'my_memory' / 'memory.safetensors').resolve()) in \
        (tmp_path / 'my_run' / 'policy_node.log').read_text()
