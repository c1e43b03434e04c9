"""Write the authentic LeRobotDataset fixtures under test/fixtures/lerobot with LeRobot's own
writer (issue 30). Runs in the LeRobot env (bench/lerobot/setup_env.sh), not in the project's:

    .lerobot-venv/bin/python bench/lerobot/make_fixtures.py [--out test/fixtures/lerobot]

so101_v3: an SO-101-style dataset as ``lerobot-record`` writes one for a follower arm with one
front camera: joint positions in degrees (``use_degrees``: True, LeRobot's default), the
gripper in 0..100, names ``<motor>.pos``; 3 episodes of 24, 18 and 30 frames at 30 fps, 64x64
video in LeRobot's default codec (libsvtav1), one task string per episode. The frames are
synthetic and deterministic: a bright square whose column is ``frame_index % 8`` and whose row
is the episode index on a dark background, so a reader can check that it decodes the right
frame of the right episode. State and action are exact functions of (episode, frame) that the
tests recompute: state[j] = 10 * episode + j + 0.5 * frame, action = state + 1 (the gripper:
its own 0..100 range, 20 + frame).

so101_two_cameras_v3: the same robot with a front and a wrist camera (the wrist frame is the
front frame's negative), 2 episodes of 8 frames: a reader must be told which camera to use.
"""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np

MOTORS = ['shoulder_pan', 'shoulder_lift', 'elbow_flex', 'wrist_flex', 'wrist_roll', 'gripper']
LENGTHS = (24, 18, 30)
TASKS = ('pick up the red cube', 'press the blue button', 'pick up the red cube')
FPS, SIZE = 30, 64


def frame_image(episode, frame):
    img = np.full((SIZE, SIZE, 3), 16, np.uint8)
    col, row = frame % 8, episode
    img[row * 8 + 4: row * 8 + 12, col * 8: col * 8 + 8] = (240, 200, 40)
    return img


def state_of(episode, frame):
    s = np.array([10.0 * episode + j + 0.5 * frame for j in range(len(MOTORS))], np.float32)
    s[-1] = 20 + frame
    return s


def write(root, lengths, tasks, cameras=('front',)):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    if root.exists():
        shutil.rmtree(root)
    names = [f'{m}.pos' for m in MOTORS]
    video = {'dtype': 'video', 'shape': (SIZE, SIZE, 3), 'names': ['height', 'width', 'channels']}
    features = {f'observation.images.{c}': dict(video) for c in cameras}
    features.update({
        'observation.state': {'dtype': 'float32', 'shape': (len(MOTORS),), 'names': names},
        'action': {'dtype': 'float32', 'shape': (len(MOTORS),), 'names': names}})
    ds = LeRobotDataset.create(f'aura_ros/{root.name}', FPS, features, root=root,
                               robot_type='so101_follower', use_videos=True)
    for e, (n, task) in enumerate(zip(lengths, tasks)):
        for f in range(n):
            s = state_of(e, f)
            a = s + 1
            a[-1] = s[-1]
            frame = {'observation.state': s, 'action': a, 'task': task}
            for c in cameras:
                img = frame_image(e, f)
                frame[f'observation.images.{c}'] = img if c == 'front' else 255 - img
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=str(Path(__file__).parents[2] / 'test' / 'fixtures'
                                             / 'lerobot'))
    args = parser.parse_args()
    write(Path(args.out) / 'so101_two_cameras_v3', (8, 8), TASKS[:2], ('front', 'wrist'))
    root = write(Path(args.out) / 'so101_v3', LENGTHS, TASKS)
    info = json.loads((root / 'meta' / 'info.json').read_text())
    size = sum(p.stat().st_size for p in root.rglob('*') if p.is_file())
    print(f'{root}: {info["codebase_version"]}, {info["total_episodes"]} episodes, '
          f'{info["total_frames"]} frames, {size / 1024:.0f} KiB')
    print(json.dumps(info['features']['observation.images.front'], indent=1))


if __name__ == '__main__':
    main()
