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


def result_key(**parts):
    """One key from a code digest and the settings (JSON-able values), e.g.
    ``result_key(code=code_digest('core'), arm='aura', steps=2000)``."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_cached(path, key):
    """The result stored at ``path`` under ``key`` (``store``), or None: no file, or one that
    another key (other code or settings) produced."""
    path = Path(path)
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get('key') == key:
            return data['result']
    return None


def store(path, key, result):
    """``result`` (JSON-able) under ``key`` at ``path``, atomically (temp file, rename)."""
    path = Path(path)
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps({'key': key, 'result': result}, indent=1) + '\n')
    tmp.replace(path)
