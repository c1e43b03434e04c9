"""Cache keys that name the code which computed a result, not only its settings.

``code_digest('core', 'train')`` hashes the source of those parts of aura_ros (every ``*.py``
below each, sorted by path): a cached result whose digest differs was computed by other code
and is recomputed. Comments count too (a false miss costs a recomputation, a false hit a
wrong number)."""
import hashlib
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def code_digest(*parts):
    """sha256 (16 hex) of the sources of ``parts`` (folders or modules of aura_ros, e.g.
    'core', 'policy.py')."""
    h = hashlib.sha256()
    for part in parts:
        path = PACKAGE / part
        if not path.exists():
            raise FileNotFoundError(f'no {part} in {PACKAGE}')
        files = sorted(path.rglob('*.py')) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(PACKAGE)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def result_key(code, **settings):
    """One key from a code digest and the settings (JSON-able values)."""
    text = json.dumps({'code': code, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
