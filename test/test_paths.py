"""aura_ros.paths: parameter-file paths, without torch."""
import subprocess
import sys

import pytest

from aura_ros.paths import package_share, resolve_path
from conftest import REPO


def test_modules_that_only_find_files_do_not_import_torch():
    # the typestore recorders and readers share finds message definitions: no torch
    code = ('import sys; from aura_ros.bag_types import typestore;'
            'typestore(["aura_ros/msg/GateEvent"]); print("torch" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    assert out.stdout.strip() == 'False', out.stderr


def test_resolve_path_package_relative_and_missing(tmp_path):
    share = package_share('aura_ros')
    assert resolve_path('package://aura_ros/config/default.yaml').parent.name == 'config'
    assert str(resolve_path('package://aura_ros/config')).startswith(str(share).rstrip('/'))
    (tmp_path / 'model').mkdir()
    assert resolve_path('model', base_dir=tmp_path) == (tmp_path / 'model').resolve()
    with pytest.raises(FileNotFoundError, match='memory checkpoint not found.*resolved to'):
        resolve_path('absent.safetensors', base_dir=tmp_path, kind='memory checkpoint')
    assert resolve_path('absent', base_dir=tmp_path, must_exist=False).name == 'absent'
    with pytest.raises(ValueError, match='empty model folder path'):
        resolve_path('')
