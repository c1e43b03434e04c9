"""AURA-Mem on a physical arm: perception_node + policy_node (lifecycle, autostarts).

    ros2 launch aura_ros aura.launch.py params_file:=/path/to/robot.yaml \\
        camera_topic:=/camera/color/image_raw \\
        command_topic:=/joint_trajectory_controller/joint_trajectory

Relative topic names resolve in ``namespace`` (default: none): ``namespace:=left`` puts the
whole arm under /left (two arms side by side: launch/two_arms.launch.py).

The parameter file's ``backbone:`` block selects the VLA (see config/*.yaml); swapping
backbones is a parameter-file change only.
"""
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description():
    params_file = LaunchConfiguration('params_file')
    camera_topic = LaunchConfiguration('camera_topic')
    command_topic = LaunchConfiguration('command_topic')
    namespace = LaunchConfiguration('namespace')
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', description='parameter file (backbone, memory, command blocks)',
            default_value=PathJoinSubstitution([FindPackageShare('aura_ros'), 'config',
                                                'default.yaml'])),
        DeclareLaunchArgument('camera_topic', default_value='camera/image_raw',
                              description='sensor_msgs/Image input'),
        DeclareLaunchArgument('command_topic', default_value='aura/joint_commands',
                              description='joint command output'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of this arm (relative topics move with it)'),
        Node(package='aura_ros', executable='perception_node', name='perception_node',
             namespace=namespace, output='screen',
             parameters=[params_file, {'camera_topic': camera_topic}]),
        Node(package='aura_ros', executable='policy_node', name='policy_node',
             namespace=namespace, output='screen',
             parameters=[params_file, {'command.topic': command_topic}]),
    ])
