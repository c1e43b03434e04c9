"""The values an export must carry, read from the source recordings by aura_ros's own bag
reader (project venv). Used by check_export.sh: LeRobot's loader must read them back from the
exported dataset.

    python bench/lerobot/export_expect.py BAG_OR_DIR... --params P --expect E.safetensors

Per exported frame, in export order: the camera frame (uint8 RGB), the measured joint state
and the demonstrated target (as the export writes them: degrees), the episode index; per
episode (E.json): first and last row, instruction, outcome.
"""
import argparse
import json
import sys

import numpy as np


def main(argv=None):
    from safetensors.numpy import save_file

    from aura_ros.train.episodes import Settings, command_setup, read_recordings, source_frames
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('bags', nargs='+')
    p.add_argument('--params', required=True)
    p.add_argument('--expect', required=True, help='output: E.safetensors (+ E.json)')
    p.add_argument('--tolerance', type=float, default=0.05)
    args = p.parse_args(argv)
    settings = Settings(tolerance=args.tolerance, progress=False)
    episodes, _ = read_recordings(args.bags, command_setup(args.params), settings,
                                  log=lambda *_: None)
    frames, state, action, index, meta, row = [], [], [], [], [], 0
    for e, ep in enumerate(episodes):
        wanted = {int(ep.frames[k]) for k in ep.kept}
        pixels = dict(source_frames(ep.bag, settings, wanted))
        frames += [pixels[int(ep.frames[k])] for k in ep.kept]
        state.append(np.degrees(ep.positions_all[ep.kept]))
        action.append(np.degrees(ep.targets))
        index.append(np.full(len(ep.kept), e))
        meta.append({'from': row, 'to': row + len(ep.kept), 'task': ep.span.instruction,
                     'success': ep.span.success})
        row += len(ep.kept)
    save_file({'frames': np.stack(frames), 'state': np.concatenate(state).astype(np.float32),
               'action': np.concatenate(action).astype(np.float32),
               'episode_index': np.concatenate(index).astype(np.int64)}, args.expect)
    with open(args.expect.rsplit('.', 1)[0] + '.json', 'w') as fh:
        json.dump(meta, fh, indent=1)
    print(f'{args.expect}: {row} frames, {len(meta)} episodes')


if __name__ == '__main__':
    sys.exit(main())
