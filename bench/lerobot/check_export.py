"""Read an aura_ros export with LeRobot's own loader and compare it value by value with what
the source recordings hold (bench/lerobot/export_expect.py). Runs in the LeRobot env:

    .lerobot-venv/bin/python bench/lerobot/check_export.py DATASET E.safetensors

Checks: every frame (LeRobot's decoded video against the bag's pixels: AV1 is lossy, so the
mean absolute difference per frame, 0-255 scale, is reported and must stay under --max-mae,
and no neighbouring frame of the same episode that differs from its own by more than the
codec's error may be closer to it than its own),
every joint state and action (float32, exact), episode boundaries (rows and LeRobot's
episode_index per frame), instructions and outcomes. Prints one JSON line; exit 1 on a
mismatch.
"""
import argparse
import json
import sys

import numpy as np


def main(argv=None):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from safetensors.numpy import load_file
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('dataset')
    p.add_argument('expect')
    p.add_argument('--max-mae', type=float, default=8.0)
    p.add_argument('--distinct', type=float, default=3.0,
                   help='neighbouring frames that differ by more than this (mean, 0-255) are '
                   'told apart; closer ones are within the codec\'s error of each other')
    args = p.parse_args(argv)
    want = load_file(args.expect)
    episodes = json.load(open(args.expect.rsplit('.', 1)[0] + '.json'))
    ds = LeRobotDataset('local/aura_ros_export', root=args.dataset, video_backend='pyav')
    n = len(want['state'])
    problems = []
    if len(ds) != n or ds.num_episodes != len(episodes):
        problems.append(f'{len(ds)} frames / {ds.num_episodes} episodes, expected {n} / '
                        f'{len(episodes)}')
    lo = list(ds.meta.episodes['dataset_from_index'])
    hi = list(ds.meta.episodes['dataset_to_index'])
    if lo != [e['from'] for e in episodes] or hi != [e['to'] for e in episodes]:
        problems.append('episode boundaries differ')
    mae, state_err, action_err, wrong, closer, distinct = [], 0.0, 0.0, [], [], 0
    for i in range(min(n, len(ds))):
        item = ds[i]
        img = item['observation.images.front'].numpy().transpose(1, 2, 0) * 255.0
        mae.append(float(np.abs(img - want['frames'][i]).mean()))
        for j in (i - 1, i + 1):     # the right frame: no distinct neighbour is closer
            if not (0 <= j < n and want['episode_index'][j] == want['episode_index'][i]):
                continue
            apart = float(np.abs(want['frames'][j].astype(np.float64)
                                 - want['frames'][i]).mean())
            if apart > args.distinct:
                distinct += 1
                if float(np.abs(img - want['frames'][j]).mean()) < mae[-1]:
                    closer.append(i)
        state_err = max(state_err, float(np.abs(item['observation.state'].numpy()
                                                - want['state'][i]).max()))
        action_err = max(action_err, float(np.abs(item['action'].numpy()
                                                  - want['action'][i]).max()))
        e = int(item['episode_index'])
        if e != int(want['episode_index'][i]) or item['task'] != episodes[e]['task'] or \
                bool(item['next.success']) != (bool(episodes[e]['success'])
                                                and i == episodes[e]['to'] - 1):
            wrong.append(i)
    if state_err or action_err:
        problems.append(f'joint values differ (state {state_err}, action {action_err})')
    if wrong:
        problems.append(f'{len(wrong)} frames with another episode, task or outcome '
                        f'(first: {wrong[0]})')
    if closer:
        problems.append(f'{len(closer)} decoded frames are closer to a neighbour than to their '
                        f'own frame (first: row {closer[0]})')
    if max(mae) > args.max_mae:
        problems.append(f'a frame differs by {max(mae):.2f} on average (> {args.max_mae})')
    print(json.dumps({'frames': n, 'episodes': len(episodes), 'fps': ds.fps,
                      'frame_mae_mean': float(np.mean(mae)), 'frame_mae_max': max(mae),
                      'distinct_neighbours_checked': distinct,
                      'state_max_abs_error': state_err, 'action_max_abs_error': action_err,
                      'problems': problems}))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
