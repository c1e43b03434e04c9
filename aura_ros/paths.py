"""Paths from parameter files: ``package://`` URLs, the package share directory, relative
paths. No torch here: tools that only find files (bag recorders, reports) import this alone.
"""
import json
import os
import sys
from pathlib import Path


def resolve_path(path, base_dir=None, must_exist=True, kind='model folder'):
    """A path from a parameter file: ``package://aura_ros/x`` (the package share directory),
    absolute, or relative to ``base_dir`` (the parameter file's folder). Refuses what does not
    exist, with the resolved path in the message."""
    if not path:
        raise ValueError(f'empty {kind} path')
    if '\x00' in path:
        raise ValueError(f'{kind} path contains a NUL byte')
    if path.startswith('package://'):
        package, _, rest = path[len('package://'):].partition('/')
        resolved = Path(package_share(package)) / rest
    else:
        resolved = Path(os.path.expanduser(path))
        if not resolved.is_absolute() and base_dir is not None:
            resolved = Path(base_dir) / resolved
    resolved = resolved.resolve()
    if must_exist and not resolved.exists():
        raise FileNotFoundError(f'{kind} not found: {path!r} (resolved to {resolved})')
    return resolved


def package_share(package):
    """Share directory of a package: the ament index, else this source tree for aura_ros."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return get_package_share_directory(package)
    except Exception as exc:  # no ament index (plain pytest, no AMENT_PREFIX_PATH)
        if (Path(sys.prefix) / 'share' / package / 'package.xml').is_file():
            return str(Path(sys.prefix) / 'share' / package)   # pip install in this prefix
        source = Path(__file__).resolve().parents[1]             # aura_ros source tree
        if package == 'aura_ros' and (source / 'package.xml').is_file():
            return str(source)
        raise FileNotFoundError(f'package {package!r} not found in the ament index') from exc


def read_json(path):
    with open(path) as f:
        return json.load(f)
