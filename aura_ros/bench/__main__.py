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


def parse_seeds(text, option='--seeds'):
    """'5' -> seeds 0-4 (a count); '1-5' -> 1..5; '1,3' -> 1 and 3; '2,' -> seed 2."""
    try:
        if '-' in text:
            lo, hi = (int(x) for x in text.split('-'))
            seeds = list(range(lo, hi + 1))
        elif ',' in text:
            seeds = [int(x) for x in text.split(',') if x.strip()]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise SystemExit(f"{option}: a count ('5'), a range ('1-5') or a list ('1,3'), got "
                         f'{text!r}') from None
    if not seeds or min(seeds) < 0:
        raise SystemExit(f'{option}: at least one seed, none negative, got {text!r}')
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f'{option}: a seed given twice in {text!r}')
    return seeds


def parse_variants(text, known):
    """'all', 'none' or a comma list of ``known`` names."""
    variants = {'all': list(known), 'none': []}.get(text)
    if variants is None:
        variants = [v for v in text.split(',') if v]
    unknown = sorted(set(variants) - set(known))
    if unknown:
        raise SystemExit(f'--variants: unknown {unknown} (choose from {list(known)}, all or '
                         f'none)')
    return variants


def cmd_synthetic(args):
    from aura_ros.bench import synthetic, synthetic_plots, synthetic_summary
    settings = synthetic.BenchSettings.quick() if args.quick else synthetic.BenchSettings()
    if args.train_steps:
        settings.train_steps = {name: args.train_steps for name in settings.train_steps}
    if args.batch:
        settings.batch = args.batch
    if args.eval_episodes:
        settings.eval_episodes = args.eval_episodes
    configs = {'all': ['easy', 'hard'], 'legacy': ['legacy_easy', 'legacy_hard']}.get(
        args.config, [args.config])
    variants = parse_variants(args.variants, list(synthetic.VARIANT_OF))
    result = synthetic_summary.run(configs, parse_seeds(args.seeds, '--seeds'), settings,
                                   jobs=args.jobs, cache_dir=args.cache_dir, variants=variants,
                                   variant_seeds=parse_seeds(args.variant_seeds,
                                                             '--variant-seeds'))
    result['quick'] = args.quick
    return result, synthetic_plots.plot


def cmd_synthetic_threshold(args):
    from aura_ros.bench import synthetic, synthetic_plots
    settings = synthetic.BenchSettings.quick() if args.quick else synthetic.BenchSettings()
    thresholds = [float(t) for t in args.thresholds.split(',')]
    bad = [t for t in thresholds if not 0.0 <= t < 1.0]
    if bad:
        raise SystemExit(f'--thresholds: a gate threshold lies in [0, 1), got {bad}')
    return synthetic.threshold_sweep(args.config, args.seed, settings, thresholds,
                                     arm=args.arm), synthetic_plots.plot_threshold_sweep


def cmd_state_growth(args):
    from aura_ros.bench import state_growth
    return state_growth.run(steps=args.steps), state_growth.plot


def cmd_step_cost(args):
    from aura_ros.bench import step_cost
    horizons = [int(h) for h in args.steps.split(',')]
    return step_cost.run(horizons=horizons, window=args.window), step_cost.plot


def closed_loop_arms():
    from aura_ros.bench.closed_loop import ARMS
    return ARMS


def cmd_closed_loop(args):
    from aura_ros.bench import closed_loop
    arms = [a for a in args.arms.split(',') if a]
    variants = [v for v in args.variants.split(',') if v]
    unknown = set(variants) - set(closed_loop.VARIANTS)
    if unknown:
        raise SystemExit(f'closed-loop: unknown variants {sorted(unknown)} (choose from '
                         f'{list(closed_loop.VARIANTS)})')
    return (closed_loop.run(arms, args.episodes, params=args.params, variants=variants,
                            through_ros=args.through_ros, engine=args.engine,
                            calibration=args.calibration, ablation=not args.no_ablation,
                            realtime=args.realtime),
            closed_loop.plot)


def cmd_train_from_recordings(args):
    from aura_ros.bench import train_from_recordings as tfr
    points = [int(n) for n in args.points.split(',') if n]
    arms = [a for a in args.arms.split(',') if a]
    result = tfr.run(points=points, eval_episodes=args.eval_episodes, steps=args.steps,
                     seed=args.seed, engine=args.engine, params=args.params, work=args.work,
                     arms=arms, noise=args.noise)
    previous = Path(args.json)     # one engine's run keeps the other's curve in the file
    return tfr.merged(json.loads(previous.read_text()) if previous.is_file() else {},
                      result), tfr.plot


def cmd_backbone_server(args):
    from aura_ros.bench import backbone_server
    clients = [int(c) for c in args.clients.split(',') if c]
    return (backbone_server.run(params=args.params, clients=clients, seconds=args.seconds,
                                max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                                threads=args.threads, arms=args.arms, repeats=args.repeats),
            backbone_server.plot)


def cmd_soak(args):
    from aura_ros.bench import soak
    return soak.run(steps=args.steps, params=args.params), soak.plot


def cmd_latency(args):
    from aura_ros.bench import latency
    return latency.run(seconds=args.seconds, rate=args.rate, params=args.params), latency.plot


def cmd_lerobot(args):
    from aura_ros.bench import lerobot_interop
    return lerobot_interop.run(work=args.work, lerobot_python=args.lerobot_python,
                               episodes=args.episodes, act_episodes=args.act_episodes,
                               eval_episodes=args.eval_episodes,
                               node_episodes=args.node_episodes, act_steps=args.act_steps,
                               params=args.params, port=args.port), None


def cmd_mujoco(args):
    from aura_ros.bench import mujoco
    arms = tuple(a for a in args.arms.split(',') if a)
    unknown = set(arms) - set(mujoco.ARMS)
    if unknown:
        raise SystemExit(f'mujoco: unknown arms {sorted(unknown)} (choose from {mujoco.ARMS})')
    return (mujoco.run(args.episodes, args.demos, args.backbone_demos, args.backbone_steps,
                       args.memory_steps, args.work, args.fresh, arms, film=args.film,
                       through_ros=args.through_ros, teleop_noise=args.teleop_noise),
            mujoco.plot)


def cmd_realtime(args):
    from aura_ros.bench import realtime
    from aura_ros.sim.realtime import RealtimeTask
    settings = realtime.RealtimeSettings(episodes=args.episodes, control_rate=args.control_rate,
                                         memory=not args.no_memory,
                                         sim_process=not args.sim_thread,
                                         control_priority=args.control_priority,
                                         open_loop_steps=args.open_loop_steps,
                                         task=RealtimeTask(variant=args.variant))
    modes = [m for m in args.modes.split(',') if m]
    latencies = [int(x) for x in args.latencies.split(',') if x]
    return (realtime.run(settings, params=args.params, modes=modes, latencies=latencies,
                         cache_dir=args.cache_dir), realtime.plot)


def cmd_reliability(args):
    from pathlib import Path

    from aura_ros.bench import reliability
    parts = [p for p in args.parts.split(',') if p]
    unknown = set(parts) - set(reliability.PARTS)
    if unknown:
        raise SystemExit(f'reliability: unknown parts {sorted(unknown)} (choose from '
                         f'{list(reliability.PARTS)})')
    result = reliability.run(parts, steps=args.steps, launches=args.launches,
                             params=args.params)
    previous = Path(args.json)     # parts run alone update their section, keep the others
    if previous.is_file():
        old = json.loads(previous.read_text())
        result = {**{k: v for k, v in old.items() if k in reliability.PARTS}, **result}
        result['parts'] = [p for p in reliability.PARTS if p in result]
    return result, reliability.plot


def build_parser():
    """Every benchmark's command line (the README's commands are checked against it)."""
    parser = argparse.ArgumentParser(prog='python -m aura_ros.bench', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('synthetic', help='8-way memory task, every arm, several seeds')
    p.add_argument('--config', choices=['easy', 'hard', 'all', 'legacy_easy', 'legacy_hard',
                                        'legacy'], default='all',
                   help='all = easy + hard (the context task); legacy = the flag-channel task')
    p.add_argument('--seeds', default='1-5', help="a count from 0 ('5'), a range ('1-5', "
                   "the headline's: seed 0 chose the recipe) or a list ('1,3')")
    p.add_argument('--variants', default='none', help='task variants no setting was chosen '
                   'on, trained (aura, always-write) at the full and at 40%% of their task\'s '
                   'budget: all, none or a comma list')
    p.add_argument('--variant-seeds', default='1-1', help="seeds of the variants, written as "
                   "for --seeds (a bare number is a count from 0: seed 1 alone is '1-1', the "
                   "default)")
    p.add_argument('--quick', action='store_true', help='tiny training, ends in ~2 minutes')
    p.add_argument('--train-steps', type=int, default=None, help='override training steps')
    p.add_argument('--batch', type=int, default=None, help='override the batch size')
    p.add_argument('--eval-episodes', type=int, default=None,
                   help='override the evaluation episodes per (config, seed, arm)')
    p.add_argument('--jobs', type=int, default=None, help='parallel processes (default 2)')
    p.add_argument('--cache-dir', default=None, help='keep each finished (config, seed, arm) '
                   'here and reuse it on a rerun with the same settings (resume)')
    p.set_defaults(run=cmd_synthetic)
    p = sub.add_parser('synthetic-threshold', help='one trained gate of the synthetic '
                       'benchmark evaluated at several run-time gate thresholds')
    p.add_argument('--config', choices=['easy', 'hard', 'legacy_easy', 'legacy_hard'],
                   default='hard')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--arm', choices=['aura', 'aura_surprise_only', 'feature_gate'],
                   default='aura')
    p.add_argument('--thresholds', default='0.5,0.3,0.2,0.1,0.05,0.02,0.01',
                   help='comma-separated, each in [0, 1) (0.5 is the trained one)')
    p.add_argument('--quick', action='store_true', help='tiny training (a smoke run)')
    p.set_defaults(run=cmd_synthetic_threshold)
    p = sub.add_parser('state-growth', help='live state bytes of AURA and a KV-cache over steps')
    p.add_argument('--steps', type=int, default=100_000)
    p.set_defaults(run=cmd_state_growth)
    p = sub.add_parser('step-cost', help='per-step time of AURA, always-write and KV-cache')
    p.add_argument('--steps', default='1000,10000,100000', help='horizons, comma-separated')
    p.add_argument('--window', type=int, default=300, help='timed steps at each horizon')
    p.set_defaults(run=cmd_step_cost)
    p = sub.add_parser('closed-loop', help='simulated arm (task v2), every arm, same seeds, '
                       'write probability per frame kind, gate-input ablation')
    p.add_argument('--arms', default=','.join(closed_loop_arms()))
    p.add_argument('--episodes', type=int, default=200)
    p.add_argument('--variants', default='plain,switch', help='plain (memory), switch '
                   '(memory_switch)')
    p.add_argument('--calibration', type=int, default=50, help='calibration episodes (other '
                   'seeds): the pixel-change threshold and the ablation inputs')
    p.add_argument('--no-ablation', action='store_true', help="skip the gate-input ablation")
    p.add_argument('--realtime', type=int, default=0, help='also run this many episodes of '
                   'each variant through the nodes with the sim in real time')
    p.add_argument('--through-ros', type=int, default=0,
                   help='also run this many episodes through the real nodes and compare')
    p.add_argument('--params', default=None, help='parameter file (default: the package\'s '
                   'config/default.yaml)')
    p.add_argument('--engine', default='planar', choices=['planar', 'mujoco'],
                   help='the simulated arm (mujoco: the SO-101, with config/sim_mujoco.yaml)')
    p.set_defaults(run=cmd_closed_loop)
    p = sub.add_parser('train-from-recordings', help='the learning curve: record teleoperated '
                       'sim episodes through ROS, train every arm on 50-400 of them, evaluate '
                       'in closed loop (stages cached and resumed)')
    p.add_argument('--points', default='50,100,200,400', help='recorded episodes per point '
                   '(multiples of 50; the smaller sets are the start of the larger ones)')
    p.add_argument('--arms', default=','.join(('aura', 'aura_surprise_only', 'always_write',
                                               'no_memory', 'cue_oracle', 'first_frame')))
    p.add_argument('--eval-episodes', type=int, default=200, help='closed-loop episodes per arm '
                   'and point')
    p.add_argument('--steps', type=int, default=2000, help='training steps per memory')
    p.add_argument('--noise', type=float, default=0.3, help="the operator's noise (x the arm's "
                   'speed limit per frame)')
    p.add_argument('--engine', default='planar', choices=['planar', 'mujoco'])
    p.add_argument('--params', default=None, help="the robot's parameter file (default "
                   'config/default.yaml; mujoco: the MuJoCo benchmark\'s WORK/arm.yaml)')
    p.add_argument('--work', default='bench/results/tfr_work', help='bags, features, '
                   'checkpoints, evaluations (resumed)')
    p.add_argument('--seed', type=int, default=0)
    p.set_defaults(run=cmd_train_from_recordings)
    p = sub.add_parser('backbone-server', help='1-16 arms against one gRPC backbone server, '
                       'batching on and off')
    p.add_argument('--clients', default='1,2,4,8,16')
    p.add_argument('--seconds', type=float, default=10.0, help='measured seconds per point')
    p.add_argument('--max-batch', type=int, default=8)
    p.add_argument('--max-wait-ms', type=float, default=5.0)
    p.add_argument('--threads', type=int, default=1, help="the server's torch threads (1: the "
                   'simulated arms run on the same 2 cores; --threads 2 is the ablation)')
    p.add_argument('--repeats', type=int, default=3, help='runs of every point, batched and '
                   'unbatched interleaved; medians reported')
    p.add_argument('--arms', choices=['processes', 'threads'], default='processes',
                   help='each simulated arm a process of its own, or a thread of this one')
    p.add_argument('--params', default=None)
    p.set_defaults(run=cmd_backbone_server)
    p = sub.add_parser('soak', help='one endless episode of the policy loop: RSS, state')
    p.add_argument('--steps', type=int, default=100_000)
    p.add_argument('--params', default=None)
    p.set_defaults(run=cmd_soak)
    p = sub.add_parser('latency', help='camera -> command latency through the real nodes')
    p.add_argument('--seconds', type=float, default=30.0)
    p.add_argument('--rate', type=float, default=60.0, help='camera frames per second')
    p.add_argument('--params', default=None)
    p.set_defaults(run=cmd_latency)
    p = sub.add_parser('mujoco', help='the whole user path on the SO-101 in MuJoCo: train the '
                       'backbone, record teleop, train episodes, deploy, closed loop in real time')
    p.add_argument('--episodes', type=int, default=200, help='evaluation episodes per arm')
    p.add_argument('--demos', type=int, default=400, help='teleoperated episodes recorded')
    p.add_argument('--backbone-demos', type=int, default=400)
    p.add_argument('--backbone-steps', type=int, default=1200)
    p.add_argument('--memory-steps', type=int, default=2000)
    p.add_argument('--arms', default=','.join(('aura', 'aura_surprise_only', 'always_write',
                                                'no_memory', 'base')))
    p.add_argument('--work', default='bench/results/mujoco_work', help='stage outputs, reused '
                   'on a rerun')
    p.add_argument('--fresh', action='store_true', help='start over (delete --work)')
    p.add_argument('--film', default='bench/results/mujoco_episode.gif',
                   help='GIF of one successful AURA episode')
    p.add_argument('--teleop-noise', type=float, default=0.1, help="operator noise of the "
                   "recorded demonstrations (x the arm's speed limit per frame)")
    p.add_argument('--through-ros', type=int, default=20, help='episodes of the deployed file '
                   'through the nodes, the sim in real time (0: skip)')
    p.set_defaults(run=cmd_mujoco)
    p = sub.add_parser('lerobot', help='LeRobot interoperability on the MuJoCo SO-101: the '
                       'memory from an exported LeRobot dataset, a LeRobot ACT as the backbone')
    p.add_argument('--work', default='bench/results/lerobot_work',
                   help='datasets, checkpoints, caches (resumed)')
    p.add_argument('--lerobot-python', default='.lerobot-venv/bin/python',
                   help="the LeRobot env's python (bench/lerobot/setup_env.sh); missing: the "
                   'ACT part is skipped')
    p.add_argument('--episodes', type=int, default=100,
                   help='recorded episodes the memories are trained on (a multiple of 50)')
    p.add_argument('--act-episodes', type=int, default=400,
                   help='recorded episodes ACT is trained on (a multiple of 50)')
    p.add_argument('--eval-episodes', type=int, default=200,
                   help='in-process closed-loop episodes per arm of the imported memory')
    p.add_argument('--node-episodes', type=int, default=50,
                   help='episodes through the nodes per deployed file (0: skip)')
    p.add_argument('--act-steps', type=int, default=2500, help='lerobot-train steps for ACT')
    p.add_argument('--port', type=int, default=5611, help="the LeRobot server's loopback port")
    p.add_argument('--params', default=None,
                   help="the SO-101's parameter file (default: config/sim_mujoco.yaml)")
    p.set_defaults(run=cmd_lerobot)
    p = sub.add_parser('realtime', help='sync vs async execution under injected inference '
                       'latency, the arm in real time')
    p.add_argument('--episodes', type=int, default=100, help='episodes per (mode, latency)')
    p.add_argument('--modes', default='sync,async_latest,async_temporal_ensemble,async_blend,'
                   'async_lerobot_weighted,open_loop_chunk',
                   help="comma-separated (a point's cache key does not depend on which others "
                   "run: '--modes async_lerobot_weighted,open_loop_chunk' runs only those); "
                   'async_lerobot_weighted and open_loop_chunk are the peers\' handovers '
                   '(LeRobot async inference, openpi)')
    p.add_argument('--open-loop-steps', type=int, default=0,
                   help='open_loop_chunk: actions run per chunk before the next is inferred '
                   "(openpi's action_horizon / replan_steps; 0: the whole chunk)")
    p.add_argument('--latencies', default='0,50,100,200,400', help='injected ms, comma-separated')
    p.add_argument('--control-rate', type=float, default=100.0, help='async control rate (Hz)')
    p.add_argument('--variant', default='memory', choices=['memory', 'visible'],
                   help='task variant (visible: the target stays on screen)')
    p.add_argument('--no-memory', action='store_true',
                   help='the frozen backbone alone (diagnostic, with --variant visible)')
    p.add_argument('--params', default=None, help="parameter file (default: the package's "
                   'config/realtime.yaml)')
    p.add_argument('--control-priority', type=int, default=50,
                   help='SCHED_FIFO priority of the async control thread (0: normal scheduler)')
    p.add_argument('--sim-thread', action='store_true',
                   help='run the arm in a thread of the policy process instead of a process '
                   'of its own (with --control-priority 0: the setup of the runs before both '
                   'options existed)')
    p.add_argument('--cache-dir', default=None, help='keep each finished point here and reuse '
                   'it on a rerun with the same settings (resume)')
    p.set_defaults(run=cmd_realtime)
    p = sub.add_parser('reliability', help='safety and data integrity under faults: the '
                       'command rule over randomized runs, server limits, parameter typos, '
                       'gate events recorded over two-arm launches, SIGINT to exit per node')
    p.add_argument('--parts', default='limits,server,typos,recording,shutdown',
                   help='sections to run (others are kept from an existing --json)')
    p.add_argument('--steps', type=int, default=10_000, help='commands per execution (limits)')
    p.add_argument('--launches', type=int, default=20, help='two-arm launches (recording)')
    p.add_argument('--params', default=None, help="parameter file (default: the package's "
                   'config/default.yaml)')
    p.set_defaults(run=cmd_reliability)
    for p in sub.choices.values():
        p.add_argument('--json', required=True, help='output JSON path')
        p.add_argument('--plot', default=None, help='output PNG path')
    p = sub.add_parser('report', help='bench/README.md from the JSON results')
    p.add_argument('--results', default='bench/results')
    p.add_argument('--out', default='bench/README.md')
    p.add_argument('--notes', default='bench/notes.md', help='hand-written notes appended')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == 'report':
        from pathlib import Path

        from aura_ros.bench import report
        notes = Path(args.notes).read_text() if Path(args.notes).is_file() else ''
        report.write(args.results, args.out, notes)
        print(f'wrote {args.out}')
        return 0
    t0 = time.monotonic()
    result, plot = args.run(args)
    if args.command != 'train-from-recordings':   # that file holds each engine's own time
        result['elapsed_s'] = round(time.monotonic() - t0, 1)
    write_json(result, args.json)
    if args.plot and plot:
        for path in plot(result, args.plot) or [args.plot]:   # a plot may name its files
            print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
