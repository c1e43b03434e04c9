"""python -m aura_ros.train deploy: a parameter file pointed at a trained checkpoint, the rest
of the file (comments, other sections) untouched, or a clear refusal."""
import pytest

from aura_ros.params import read_params_file
from aura_ros.train.__main__ import main, set_checkpoint
from conftest import REPO


def test_the_checkpoint_line_is_replaced_or_added_and_nothing_else_changes(tmp_path):
    shipped = (REPO / 'config' / 'default.yaml').read_text()
    edited = set_checkpoint(shipped, '/x/memory.safetensors')
    diff = [(a, b) for a, b in zip(shipped.splitlines(), edited.splitlines()) if a != b]
    assert diff == [('      checkpoint: package://aura_ros/models/aura_sim/memory.safetensors',
                     '      checkpoint: /x/memory.safetensors')]
    added = set_checkpoint('/**/policy_node:\n  ros__parameters:\n    memory:  # ours\n'
                           '      enabled: true\n', '/x/m.safetensors')
    path = tmp_path / 'p.yaml'
    path.write_text(added)
    values, _ = read_params_file(path, 'policy_node')
    assert values == {'memory.checkpoint': '/x/m.safetensors', 'memory.enabled': True}
    with pytest.raises(ValueError, match='by hand'):
        set_checkpoint('/**/policy_node:\n  ros__parameters:\n    start_armed: false\n', 'x')


def test_the_cli_checks_the_checkpoint_and_keeps_a_backup(tmp_path, tiny_models):
    params = tmp_path / 'arm.yaml'
    params.write_text((REPO / 'config' / 'default.yaml').read_text())
    main(['deploy', str(tiny_models['memory_pi0']), '--params', str(params)])
    values, _ = read_params_file(params, 'policy_node')
    assert values['memory.checkpoint'] == str(tiny_models['memory_pi0'].resolve())
    assert (tmp_path / 'arm.yaml.bak').read_text() == (REPO / 'config' / 'default.yaml') \
        .read_text()
    with pytest.raises(FileNotFoundError):
        main(['deploy', str(tmp_path / 'none.safetensors'), '--params', str(params)])
