"""pip build of aura_ros: drives the package's CMakeLists.txt (rosidl messages), then installs
the hand-written modules, the generated ``aura_ros.msg`` and the ROS prefix files.

``pip install .`` / ``pip install -e .`` into a venv that holds the ROS 2 wheels (or any sourced
ROS 2 install) works. ``colcon build`` ignores this file: package.xml says ament_cmake.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGE = 'aura_ros'
STAGE = HERE / 'build' / 'cmake-install'
SITE = f'lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages'
# name=module:function, one per line; CMakeLists.txt reads the same file for <prefix>/lib/aura_ros/.
EXECUTABLES = dict(line.strip().split('=', 1)
                   for line in (HERE / 'cmake' / 'executables.txt').read_text().splitlines()
                   if '=' in line)


def ros_prefix():
    """The ROS 2 prefix to build against: AMENT_PREFIX_PATH, else this interpreter's prefix."""
    for entry in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if entry and (Path(entry) / 'share' / 'rosidl_default_generators').is_dir():
            return entry
    if (Path(sys.prefix) / 'share' / 'rosidl_default_generators').is_dir():
        return sys.prefix
    sys.exit('aura_ros: no ROS 2 prefix with rosidl_default_generators found. Install the ROS 2 '
             'wheels into this venv (make setup) or source a ROS 2 install, then retry.')


def run_cmake():
    """Configure, build and install the CMake project into STAGE (messages + executables)."""
    prefix = ros_prefix()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONNOUSERSITE')}
    for var in ('AMENT_PREFIX_PATH', 'CMAKE_PREFIX_PATH'):  # pip's build isolation hides these
        env[var] = os.pathsep.join(p for p in (prefix, env.get(var, '')) if p)
    build_dir = HERE / 'build' / 'cmake'
    python = env.get('AURA_PYTHON', sys.executable)
    steps = [['cmake', '-S', str(HERE), '-B', str(build_dir), f'-DCMAKE_INSTALL_PREFIX={STAGE}',
              f'-DPython3_EXECUTABLE={python}', '-DBUILD_TESTING=OFF',
              '-DCMAKE_BUILD_TYPE=Release'],
             ['cmake', '--build', str(build_dir), '-j2'],
             ['cmake', '--install', str(build_dir)]]
    shutil.rmtree(STAGE, ignore_errors=True)
    for cmd in steps:
        if subprocess.call(cmd, env=env) != 0:
            # SystemExit, not CalledProcessError: setuptools' editable build swallows exceptions.
            raise SystemExit(f'aura_ros: CMake step failed: {" ".join(cmd)}')


def generated_python_files():
    """Generated files of the aura_ros package: msg/ and the typesupport extensions."""
    pkg = STAGE / SITE / PACKAGE
    return [p for p in pkg.rglob('*')
            if p.is_file() and '__pycache__' not in p.parts
            and (p.relative_to(pkg).parts[0] == 'msg' or p.suffix == '.so')]


def prefix_data_files():
    """Everything the CMake install put outside site-packages, as setuptools data_files."""
    groups = {}
    for path in sorted(STAGE.rglob('*')):
        rel = path.relative_to(STAGE)
        if path.is_dir() or rel.as_posix().startswith(('lib/python', 'include/')):
            continue
        groups.setdefault(rel.parent.as_posix(), []).append(str(path))
    return sorted(groups.items())


class BuildWithMessages(build_py):
    """build_py that first builds the rosidl messages and ships them with the package."""

    def run(self):
        try:
            self.build_messages()
        except Exception as exc:  # setuptools' editable build would swallow it: fail loudly
            raise SystemExit(f'aura_ros: building the messages failed: {exc!r}') from exc
        super().run()

    def build_messages(self):
        run_cmake()
        pkg = STAGE / SITE / PACKAGE
        # Editable installs import from the source tree, so the generated files go there
        # (they are git-ignored); a normal build copies them into the wheel's build_lib.
        target = HERE if self.editable_mode else Path(self.build_lib)
        for src in generated_python_files():
            dst = target / PACKAGE / src.relative_to(pkg)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        # install_data may already be finalized (editable builds do that first): update both.
        self.distribution.data_files = prefix_data_files()
        self.get_finalized_command('install_data').data_files = self.distribution.data_files


class AuraDistribution(Distribution):
    # setuptools' editable build asks has_data() before installing data_files, which no
    # Distribution defines, so editable installs would drop lib/aura_ros/ and share/aura_ros/.
    def has_data(self):
        return self.has_data_files()


setup(
    distclass=AuraDistribution,
    name=PACKAGE,
    version='0.1.0',
    description='AURA-Mem (action-gated constant-size memory) for ROS 2 robot arms',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    package_data={PACKAGE: ['py.typed', 'backbones/proto/*.proto']},
    include_package_data=False,
    cmdclass={'build_py': BuildWithMessages},
    entry_points={'console_scripts': [f'{k} = {v}' for k, v in EXECUTABLES.items()]},
    zip_safe=False,
)
