"""The README documents every node parameter and the two commands."""
from aura_ros.params import (
    EPISODE_RECORDER_PARAMS,
    MONITOR_PARAMS,
    PERCEPTION_PARAMS,
    POLICY_PARAMS,
    RECORDER_PARAMS,
    SIM_PARAMS,
    SIM_TELEOP_PARAMS,
    STATUS_PUBLISHER_PARAMS,
    markdown_rows,
)
from conftest import REPO

README = (REPO / 'README.md').read_text()


def test_every_parameter_is_documented_with_its_default():
    lines = README.splitlines()
    every = (POLICY_PARAMS + PERCEPTION_PARAMS + SIM_PARAMS + RECORDER_PARAMS + MONITOR_PARAMS +
             STATUS_PUBLISHER_PARAMS + EPISODE_RECORDER_PARAMS + SIM_TELEOP_PARAMS)
    for row in markdown_rows(every):  # whole rows: name, type, default, range, description
        assert row in lines, row


def test_the_two_commands_come_first():
    head = '\n'.join(README.splitlines()[:40])
    assert 'make demo' in head and 'make test' in head
