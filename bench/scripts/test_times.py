"""Time `make test` (the whole suite, CI's command) and write bench/results/test_times.json:
{"make_test_seconds": wall seconds, "tests": tests that ran (passed + failed + errors),
"passed": n, "skipped": n, "commit": the HEAD it ran on}. Run from the repo root on an
otherwise idle machine:

    make test-times
"""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

OUT = Path('bench/results/test_times.json')


def main():
    t0 = time.monotonic()
    proc = subprocess.run(['make', 'test'], capture_output=True, text=True)
    seconds = time.monotonic() - t0
    sys.stdout.write(proc.stdout[-3000:])
    counts = {'passed': 0, 'failed': 0, 'errors': 0, 'skipped': 0}
    for line in proc.stdout.splitlines():      # one summary line per pytest run
        if re.match(r'^=+ .*\d+ (passed|failed|skipped|error)', line):
            for n, what in re.findall(r'(\d+) (passed|failed|skipped|errors?)', line):
                counts['errors' if what.startswith('error') else what] += int(n)
    commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                            text=True).stdout.strip()
    result = dict(make_test_seconds=round(seconds, 1),
                  tests=counts['passed'] + counts['failed'] + counts['errors'],
                  passed=counts['passed'], skipped=counts['skipped'], status=proc.returncode,
                  commit=commit)
    OUT.write_text(json.dumps(result, indent=1) + '\n')
    print(json.dumps(result))
    return proc.returncode


if __name__ == '__main__':
    sys.exit(main())
