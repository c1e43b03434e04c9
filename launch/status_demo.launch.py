"""Smoke test of the diagnostics topics: a scripted GateEvent source and a printing monitor.

    ros2 launch aura_ros status_demo.launch.py
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description():
    params = os.path.join(get_package_share_directory('aura_ros'), 'config',
                          'status_publisher.yaml')
    return LaunchDescription([
        Node(package='aura_ros', executable='gate_monitor', name='gate_monitor',
             output='screen', parameters=[{'max_events': 30}]),
        Node(package='aura_ros', executable='status_publisher', name='status_publisher',
             output='screen', parameters=[params]),
    ])
