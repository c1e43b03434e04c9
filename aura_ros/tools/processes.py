"""Finding and running the package's node executables as separate processes."""
import os
import shutil
import sys
from pathlib import Path


def executable(name):
    """Path of an installed aura_ros executable: <prefix>/lib/aura_ros/<name>, else on PATH."""
    for prefix in [sys.prefix, *os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)]:
        candidate = Path(prefix) / 'lib' / 'aura_ros' / name
        if prefix and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f'aura_ros executable {name!r} not found under <prefix>/lib/aura_ros '
                            f'or on PATH: install the package (make setup)')
