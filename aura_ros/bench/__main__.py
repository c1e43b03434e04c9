"""Benchmarks: ``python -m aura_ros.bench <name> ...``; each writes JSON (and a PNG plot)."""
import argparse
import json
import sys
import time
from pathlib import Path


def _plain(value):
    """numpy scalars and arrays -> plain JSON values."""
    if hasattr(value, 'tolist'):
        return value.tolist()
    raise TypeError(f'not JSON serialisable: {type(value).__name__}')


def write_json(result, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=_plain) + '\n')
    print(f'wrote {path}')


def cmd_synthetic(args):
    from aura_ros.bench import synthetic
    settings = synthetic.BenchSettings.quick() if args.quick else synthetic.BenchSettings()
    if args.train_steps:
        settings.train_steps = {'easy': args.train_steps, 'hard': args.train_steps}
    configs = ['easy', 'hard'] if args.config == 'all' else [args.config]
    result = synthetic.run(configs, args.seeds, settings, jobs=args.jobs)
    result['quick'] = args.quick
    return result, synthetic.plot


def cmd_state_growth(args):
    from aura_ros.bench import state_growth
    return state_growth.run(steps=args.steps), state_growth.plot


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m aura_ros.bench', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('synthetic', help='8-way memory task, every arm, several seeds')
    p.add_argument('--config', choices=['easy', 'hard', 'all'], default='all')
    p.add_argument('--seeds', type=int, default=5)
    p.add_argument('--quick', action='store_true', help='tiny training, ends in ~2 minutes')
    p.add_argument('--train-steps', type=int, default=None, help='override training steps')
    p.add_argument('--jobs', type=int, default=None, help='parallel processes (default 2)')
    p.set_defaults(run=cmd_synthetic)
    p = sub.add_parser('state-growth', help='live state bytes of AURA and a KV-cache over steps')
    p.add_argument('--steps', type=int, default=100_000)
    p.set_defaults(run=cmd_state_growth)
    for p in sub.choices.values():
        p.add_argument('--json', required=True, help='output JSON path')
        p.add_argument('--plot', default=None, help='output PNG path')
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    result, plot = args.run(args)
    result['elapsed_s'] = round(time.monotonic() - t0, 1)
    write_json(result, args.json)
    if args.plot:
        plot(result, args.plot)
        print(f'wrote {args.plot}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
