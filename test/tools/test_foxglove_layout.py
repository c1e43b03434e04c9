"""The shipped Foxglove layout (share/aura_ros/foxglove/aura_gate.json): every topic and
message path it plots exists, with a value, in a bag `make demo`'s graph records."""
import json
import re
from pathlib import Path

import pytest

from aura_ros.paths import package_share

pytestmark = pytest.mark.ros


def layout_paths():
    layout = json.loads((Path(package_share('aura_ros')) / 'foxglove' /
                         'aura_gate.json').read_text())
    topics, paths = set(), []
    for config in layout['configById'].values():
        image = config.get('imageMode', {}).get('imageTopic')
        if image:
            topics.add(image)
        for entry in config.get('paths', []):
            topic, _, path = entry['value'].partition('.')
            topics.add(topic)
            paths.append((topic, path))
    return layout, topics, paths


def resolve(msg, path):
    """``points[0].positions[1]`` on a deserialized message."""
    for part in path.split('.'):
        name, *indexes = re.split(r'\[|\]', part.replace('][', '['))
        msg = getattr(msg, name)
        for index in (i for i in indexes if i):
            msg = msg[int(index)]
    return msg


@pytest.mark.slow
def test_every_topic_and_path_of_the_layout_is_in_a_demo_bag(tmp_path):
    from rosbags.highlevel import AnyReader

    from aura_ros.bag_types import typestore
    from aura_ros.tools.demo import run_through_nodes
    layout, topics, paths = layout_paths()
    panels = set()

    def walk(node):
        if isinstance(node, str):
            panels.add(node)
        else:
            walk(node['first'])
            walk(node['second'])
    walk(layout['layout'])
    assert panels == set(layout['configById'])          # every panel placed, none missing
    ok, results, bag = run_through_nodes(1, out=tmp_path, verbose=False)
    assert ok and results
    with AnyReader([bag], default_typestore=typestore()) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert topics <= set(conns), topics - set(conns)
        first = {}
        for conn, _, raw in reader.messages():
            if conn.topic in topics and conn.topic not in first:
                first[conn.topic] = reader.deserialize(raw, conn.msgtype)
    for topic, path in paths:
        value = resolve(first[topic], path)
        assert isinstance(value, (bool, int, float, str)), (topic, path, value)
