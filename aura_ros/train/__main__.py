"""Regenerate the embedded default VLA and its memories (tqdm progress).

    python -m aura_ros.train backbone --out models/pi0_sim --params config/default.yaml
    python -m aura_ros.train memory --params config/default.yaml --out models/aura_sim
    python -m aura_ros.train episodes BAGS... --params my_arm.yaml --out DIR  # your robot
    python -m aura_ros.train deploy DIR/memory.safetensors --params my_arm.yaml
    python -m aura_ros.train backbone --out models/pi0_sim_rt --params config/realtime.yaml \
        --chunk-size 32 && python -m aura_ros.train memory --params config/realtime.yaml \
        --out models/aura_sim_rt --arms aura --chunk-horizon 32 --task realtime \
        --strides 1,3,6,12                            # the real-time benchmark's pair

``backbone`` trains the tiny PI0 on the visible variant and writes its normalisation statistics
into the parameter file's backbone block (``--variant memory --out models/pi0_sim_memory
--params ''``: the memoryless base trained on the memory task, a control of the closed loop).
``memory`` trains AURA, its gate ablations and the closed-loop baselines on the frozen
backbone's features, every arm on the same data: one set of noisy-expert episodes, then
``--dagger-rounds`` rounds in which *each arm* rolls itself out on the same seeds (labelled by
the expert) and is refitted. The budget arms get AURA's measured write rate. AURA goes to
memory.safetensors (what config/default.yaml loads), the others to memory_<kind>.safetensors.
"""
import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch


def update_params_file(path, values):
    """Rewrite ``key: [..]`` lines of the backbone block in place (comments survive)."""
    text = Path(path).read_text()
    for key, value in values.items():
        rendered = json.dumps([round(float(v), 6) for v in value])
        text, n = re.subn(rf'^(\s*{key}:)\s*\[[^\]]*\]', rf'\1 {rendered}', text,
                          flags=re.MULTILINE)
        if n != 1:
            raise ValueError(f'{path}: expected one "{key}: [...]" line, found {n}')
    Path(path).write_text(text)


def load_backbone(params_path):
    from aura_ros.backbones import build_backbone
    from aura_ros.params import backbone_block, read_params_file
    params, base_dir = read_params_file(params_path, 'policy_node')
    return build_backbone(backbone_block(params), base_dir=base_dir)


def cmd_backbone(args):
    from aura_ros.train.backbone_bc import train_backbone
    norm = train_backbone(args.out, episodes=args.episodes, steps=args.steps, seed=args.seed,
                          variant=args.variant, chunk_size=args.chunk_size,
                          engine=args.engine)
    if args.params:
        update_params_file(args.params, {k: norm[k] for k in ('action_mean', 'action_std',
                                                               'state_mean', 'state_std')})
        print(f'updated normalisation statistics in {args.params}')
    print(json.dumps(norm, indent=2))


MEMORY_ARMS = ('aura', 'aura_surprise_only', 'feature_gate', 'always_write', 'kv_cache',
               'random_budget', 'periodic_budget', 'no_memory')


def cmd_memory(args):
    from aura_ros.train.memory_fit import collect_features, fit_memory, write_rate_on
    if args.dagger_rounds and args.strides != [1]:
        raise SystemExit('--dagger-rounds roll the memory out one step per frame: use them '
                         'with --strides 1 (the default)')
    backbone = load_backbone(args.params)
    action_std = backbone.config.action_std or [1.0] * backbone.config.action_dim
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = 20_000 + args.seed * 100_000
    task = None
    if args.task == 'realtime':
        from aura_ros.sim.realtime import RealtimeTask
        task = RealtimeTask()
    episodes = collect_features(backbone, range(start, start + args.episodes), noise=args.noise,
                                desc='features (expert)', horizon=args.chunk_horizon,
                                task=task, strides=args.strides, engine=args.engine)
    arms = ['aura'] + [k for k in args.arms if k != 'aura']   # the budget arms need its rate
    summary, rate = {'episodes': {}}, None
    for kind in arms:
        fit = dict(steps=args.steps, seed=args.seed, write_rate=rate or 0.1)
        memory = fit_memory(kind, episodes, action_std, **fit)
        data = list(episodes)
        for round_ in range(args.dagger_rounds):  # the arm rolls itself out, the expert labels
            first = 30_000 + round_ * 10_000 + args.seed * 100_000
            data += collect_features(backbone, range(first, first + args.episodes // 2),
                                     memory=memory, beta=0.2, horizon=args.chunk_horizon,
                                     task=task, desc=f'features ({kind}, DAgger {round_})',
                                     engine=args.engine)
            memory = fit_memory(kind, data, action_std, **fit)
        if kind == 'aura':
            rate = write_rate_on(memory, episodes)
        name = 'memory.safetensors' if kind == 'aura' else f'memory_{kind}.safetensors'
        memory.save(out / name)
        summary[kind] = {'write_rate': write_rate_on(memory, episodes), 'file': name}
        summary['episodes'][kind] = len(data)
    shown = {k: v for k, v in vars(args).items() if not callable(v)}   # not the subcommand
    (out / 'training.json').write_text(json.dumps(dict(summary, args=shown), indent=2,
                                                  default=str) + '\n')
    print(json.dumps(summary, indent=2))


def source_settings(args, **extra):
    """Settings of reading recordings from the shared flags (episodes, export-lerobot)."""
    from aura_ros.train.bags import StreamTopics
    from aura_ros.train.episodes import Settings
    from aura_ros.train.lerobot_format import DatasetKeys
    return Settings(
        topics=StreamTopics(args.camera_topic, args.joint_states_topic, args.command_topic,
                            args.events_topic, args.correction_topic),
        dataset=DatasetKeys(args.camera_key, args.state_key, args.action_key, args.joint_units),
        tolerance=args.tolerance, action_lag=args.action_lag, stamps=args.stamps,
        on_bad_bag=args.on_bad_bag, **extra)


def cmd_episodes(args):
    from aura_ros.train.episodes import ARMS, QUICK, Settings, train_from_recordings
    from aura_ros.train.recordings import RecordingError
    defaults = QUICK if args.quick else {'steps': Settings.steps, 'arms': ARMS}
    settings = source_settings(
        args, val_fraction=args.val_fraction, arms=tuple(args.arms or defaults['arms']),
        steps=args.steps or defaults['steps'], seed=args.seed, cache_dir=args.cache_dir)
    if args.quick:
        print(f"quick run: {settings.steps} training steps, arms {', '.join(settings.arms)} "
              f'(a first look; the default trains {Settings.steps} steps)')
    try:
        report = train_from_recordings(args.bags, args.params, args.out, settings)
    except (RecordingError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(f'train episodes: {exc}') from None
    val = report['validation']
    print(json.dumps({'episodes': report['episodes'], 'frames': report['frames'],
                      'frames_dropped_unsynced': report['frames_dropped_unsynced'],
                      'feature_extraction': report['feature_extraction'],
                      'validation': val}, indent=2))
    print(f"wrote {args.out}/memory.safetensors, report.json, PNGs; deploy it with:\n"
          f"  python -m aura_ros.train deploy {args.out}/memory.safetensors --params "
          f"{args.params} --out my_arm_with_memory.yaml")


def cmd_export_lerobot(args):
    from aura_ros.train.episodes import export_lerobot
    from aura_ros.train.recordings import RecordingError
    try:
        export_lerobot(args.bags, args.params, args.out, source_settings(args),
                       camera=args.camera, units=args.units, fps=args.fps)
    except (RecordingError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(f'train export-lerobot: {exc}') from None


def set_checkpoint(text, checkpoint):
    """A parameter file's text with the policy node's ``memory.checkpoint`` set (the one
    ``checkpoint:`` line replaced, or one added under the one ``memory:`` line); ValueError
    when the file's layout does not say where it goes."""
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines) if re.match(r'^\s*checkpoint:', line)]
    if len(found) == 1:
        i = found[0]
        indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
        lines[i] = f'{indent}checkpoint: {checkpoint}'
        return '\n'.join(lines) + '\n'
    memory = [i for i, line in enumerate(lines) if re.match(r'^\s*memory:\s*(#.*)?$', line)]
    if not found and len(memory) == 1:
        i = memory[0]
        indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())] + '  '
        lines.insert(i + 1, f'{indent}checkpoint: {checkpoint}')
        return '\n'.join(lines) + '\n'
    raise ValueError(f'found {len(found)} "checkpoint:" and {len(memory)} "memory:" lines: add '
                     f'"memory: {{checkpoint: ...}}" under your file\'s policy_node section by '
                     f'hand')


def cmd_deploy(args):
    """Point a parameter file's policy node at a trained checkpoint, checked."""
    from aura_ros.core import load_memory
    from aura_ros.params import read_params_file
    checkpoint = Path(args.checkpoint).resolve()
    load_memory(checkpoint)                       # a readable checkpoint (safetensors)
    source = Path(args.params)
    try:
        text = set_checkpoint(source.read_text(), checkpoint)
    except ValueError as exc:
        raise SystemExit(f'train deploy: {source}: {exc}') from None
    out = Path(args.out or args.params)
    if out == source:
        source.with_suffix(source.suffix + '.bak').write_text(source.read_text())
    out.write_text(text)
    values, _ = read_params_file(out, 'policy_node')
    if values.get('memory.checkpoint') != str(checkpoint):
        raise SystemExit(f'train deploy: {out}: memory.checkpoint reads '
                         f"{values.get('memory.checkpoint')!r} after the edit, not the "
                         f'checkpoint: set it by hand')
    print(f'{out}: memory.checkpoint = {checkpoint}'
          + (f' (the previous file kept as {source}.bak)' if out == source else ''))


def add_source_args(p):
    """Where the streams of a recording are (bags and LeRobot datasets)."""
    p.add_argument('--camera-topic', default='camera/image_raw',
                   help='sensor_msgs/Image topic (the camera or aura/frames)')
    p.add_argument('--joint-states-topic', default='joint_states')
    p.add_argument('--command-topic', default='teleop/joint_commands',
                   help='demonstrated commands: JointTrajectory, Float64MultiArray or '
                   'JointState (a leader arm)')
    p.add_argument('--events-topic', default='',
                   help='aura_ros/EpisodeEvent topic ("": any topic of that type; a bag '
                   'without events is one episode)')
    p.add_argument('--correction-topic', default='',
                   help='DAgger: the policy drove (--command-topic aura/joint_commands) and this '
                   "topic's corrections (same types) replace its commands where present")
    p.add_argument('--camera-key', default='',
                   help="LeRobot datasets: the camera feature (default: the dataset's only one, "
                   'e.g. observation.images.front)')
    p.add_argument('--state-key', default='observation.state',
                   help='LeRobot datasets: the joint positions feature')
    p.add_argument('--action-key', default='action',
                   help='LeRobot datasets: the demonstrated joint targets (a leader arm)')
    p.add_argument('--joint-units', default='deg', choices=['deg', 'rad'],
                   help="LeRobot datasets: units of state and action (deg: LeRobot's SO-101 "
                   'follower default, converted to radians)')
    p.add_argument('--tolerance', type=float, default=0.05,
                   help='largest time offset (s) of a frame to its joint state and command')
    p.add_argument('--action-lag', type=float, default=0.0,
                   help='the command of a frame is looked up at frame time + this (s)')
    p.add_argument('--stamps', default='header', choices=['header', 'receive'],
                   help='message times: header stamps where set, or the recording time')
    p.add_argument('--on-bad-bag', default='stop', choices=['stop', 'skip'],
                   help='a damaged or truncated bag stops the run, or is skipped with a '
                   'warning')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m aura_ros.train', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('backbone', help='behaviour-clone the tiny PI0 on the visible variant')
    p.add_argument('--out', default='models/pi0_sim')
    p.add_argument('--params', default='config/default.yaml',
                   help='parameter file whose normalisation statistics to update ("" = none)')
    p.add_argument('--episodes', type=int, default=240)
    p.add_argument('--steps', type=int, default=500)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--chunk-size', type=int, default=8,
                   help='actions per predicted chunk (32 for models/pi0_sim_rt, the real-time '
                   'benchmark: a chunk must outlast the slowest injected inference latency)')
    p.add_argument('--variant', default='visible', choices=['visible', 'memory'],
                   help='task the demos come from (memory: the memoryless-base control)')
    p.add_argument('--engine', default='planar', choices=['planar', 'mujoco'],
                   help='the simulated arm the demos come from (mujoco: the SO-101)')
    p.set_defaults(run=cmd_backbone)
    p = sub.add_parser('memory', help='train AURA and the baselines on frozen features')
    p.add_argument('--params', default='config/default.yaml', help='backbone parameter file')
    p.add_argument('--out', default='models/aura_sim')
    p.add_argument('--episodes', type=int, default=600)
    p.add_argument('--steps', type=int, default=2000)
    p.add_argument('--noise', type=float, default=0.3)
    p.add_argument('--dagger-rounds', type=int, default=0,
                   help='rounds in which each arm rolls itself out and the expert labels '
                   '(every arm gets its own rounds; 0: all arms on the same expert data)')
    p.add_argument('--arms', type=lambda s: [k for k in s.split(',') if k],
                   default=list(MEMORY_ARMS), help='memory arms to train (aura always first)')
    p.add_argument('--chunk-horizon', type=int, default=1,
                   help='actions the memory corrects per step: 1, or a chunk memory for '
                   'asynchronous execution that corrects the first N actions of every chunk')
    p.add_argument('--task', default='frames', choices=['frames', 'realtime'],
                   help='episode timing: frames (ArmTaskConfig, the lockstep sim) or realtime '
                   '(RealtimeTask: cue 0.5 s, delay 0.5-1 s, go 2 s at 30 fps, what the '
                   'real-time sim and benchmark run)')
    p.add_argument('--strides', type=lambda s: [int(k) for k in s.split(',') if k],
                   default=[1], help='the memory steps every s frames, s drawn per episode '
                   '(e.g. 1,3,6,12: the observation rates of asynchronous inference at up to '
                   '~400 ms latency); DAgger rounds need 1')
    p.add_argument('--engine', default='planar', choices=['planar', 'mujoco'],
                   help='the simulated arm the episodes come from (mujoco: the SO-101)')
    p.add_argument('--seed', type=int, default=0)
    p.set_defaults(run=cmd_memory)
    p = sub.add_parser('episodes', help='train the memory from recorded episodes (rosbags or '
                       'LeRobot datasets)',
                       description='Train AURA (and always_write / no_memory controls) from '
                       'rosbags or LeRobotDataset v3.0 folders of demonstrations, on the '
                       'backbone the parameter file names. '
                       'See aura_ros/train/episodes.py and the README, "Train the memory for '
                       'your robot".')
    p.add_argument('bags', nargs='+', metavar='BAG_OR_DIR',
                   help='bag directories (MCAP or sqlite3), LeRobotDataset v3.0 folders, or '
                   'folders holding them')
    p.add_argument('--params', required=True, help='the parameter file the robot runs')
    p.add_argument('--out', required=True, help='output folder (checkpoint, report, PNGs)')
    add_source_args(p)
    p.add_argument('--val-fraction', type=float, default=0.2)
    p.add_argument('--arms', type=lambda s: [k for k in s.split(',') if k], default=None,
                   help='memory arms to train (aura always first; default aura,always_write,'
                   'no_memory; cue_oracle and first_frame: references that need FrameTruth)')
    p.add_argument('--steps', type=int, default=None, help='training steps per arm (default '
                   '2000)')
    p.add_argument('--quick', action='store_true',
                   help='a first look: 1500 steps, arms aura and no_memory (about half the '
                   'time; fewer steps can leave the gate closed; --steps/--arms still apply)')
    p.add_argument('--cache-dir', default=None,
                   help='feature cache (default OUT/features); resumes, refuses another '
                   "backbone's cache")
    p.add_argument('--seed', type=int, default=0)
    p.set_defaults(run=cmd_episodes)
    p = sub.add_parser('export-lerobot', help='write recorded episodes as a LeRobotDataset '
                       'v3.0', description='Write the episodes of bags (or datasets) as a '
                       'LeRobotDataset v3.0 folder (AV1 video, parquet, meta) that LeRobot\'s '
                       'loader, visualiser and training scripts read: the frames train '
                       'episodes labels, joint states, demonstrated targets, instruction, '
                       'success. See aura_ros/train/lerobot_format.py.')
    p.add_argument('bags', nargs='+', metavar='BAG_OR_DIR')
    p.add_argument('--params', required=True,
                   help='the parameter file the robot runs (joint names and order)')
    p.add_argument('--out', required=True, help='a new folder for the dataset')
    p.add_argument('--camera', default='observation.images.front',
                   help="the dataset's camera feature")
    p.add_argument('--units', default='deg', choices=['deg', 'rad'],
                   help="joint units written (deg: as LeRobot's SO-101 follower records)")
    p.add_argument('--fps', type=int, default=None,
                   help="the dataset's frame rate (default: the recording's median)")
    add_source_args(p)
    p.set_defaults(run=cmd_export_lerobot)
    p = sub.add_parser('deploy', help="set a parameter file's memory.checkpoint to a trained "
                       'checkpoint (the printed command after train episodes)')
    p.add_argument('checkpoint', help='the trained memory.safetensors')
    p.add_argument('--params', required=True, help='the parameter file the robot runs')
    p.add_argument('--out', default=None, help='write the edited file here (default: in '
                   'place, the previous one kept as .bak)')
    p.set_defaults(run=cmd_deploy)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.monotonic()
    args.run(args)
    print(f'done in {time.monotonic() - t0:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
