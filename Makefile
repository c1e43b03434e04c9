# aura_ros — two commands: `make demo` and `make test`. Both build .venv from nothing first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin

# The ROS 2 wheels install a ROS prefix inside the venv; ament and CMake look for it here.
export AMENT_PREFIX_PATH := $(VENV)
export CMAKE_PREFIX_PATH := $(VENV)
# DDS traffic stays on loopback (tests also pick their own ROS_DOMAIN_ID per run).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg

DEPS_STAMP := $(VENV)/.deps-stamp
INSTALL_STAMP := $(VENV)/.install-stamp

# Upstream launch, launch_ros, launch_pytest and the ros2 CLI for the tests that use the real
# ROS 2 tools (test/ros2). A ROS install provides them when sourced; a pip-only machine gets
# them from AURA_ROS2_TOOLS (the ros2-tools folder; .ci/run sets it) installed into
# .ros2-tools, a folder of their own (they bring pytest 7.4: launch_pytest needs < 8.4).
ROS2_TOOLS := $(CURDIR)/.ros2-tools
ifdef AURA_ROS2_TOOLS
ROS2_STAMP := $(ROS2_TOOLS)/.stamp
ROS2_ENV := PYTHONPATH=$(ROS2_TOOLS) PATH=$(ROS2_TOOLS)/bin:$(BIN):$$PATH \
	AMENT_PREFIX_PATH=$(VENV):$(ROS2_TOOLS)
endif
PACKAGE_INPUTS := setup.py pyproject.toml CMakeLists.txt package.xml $(wildcard msg/*.msg) \
	$(wildcard cmake/*) $(shell find launch config models foxglove -type f 2>/dev/null)

.PHONY: setup demo demo-mujoco test test-fast test-times test-ros2 lint colcon-check clean distclean

setup: $(INSTALL_STAMP)

$(DEPS_STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@touch $(VENV)/COLCON_IGNORE
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

# Editable install: Python edits need no reinstall; msg/, launch/, config/ and models/ do.
$(INSTALL_STAMP): $(DEPS_STAMP) $(PACKAGE_INPUTS)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

demo: setup
	$(BIN)/python -m aura_ros.tools.demo --episodes 5 --out demo_output

# The same through the nodes on the SO-101 in MuJoCo (config/sim_mujoco.yaml).
demo-mujoco: setup
	$(BIN)/python -m aura_ros.tools.demo --episodes 5 --params config/sim_mujoco.yaml \
		--out demo_output_mujoco

lint: setup
	$(BIN)/ruff check aura_ros test launch setup.py

$(ROS2_TOOLS)/.stamp: $(DEPS_STAMP)
	rm -rf $(ROS2_TOOLS)
	$(AURA_ROS2_TOOLS)/install.sh $(BIN)/python $(ROS2_TOOLS)
	@touch $@

# Everything: the suite on 2 pytest-xdist workers (by file; each worker its own ROS domain and
# one torch thread), then the tests with the upstream ROS 2 tools in a pytest of their own
# (skipped with one line saying what to install where the tools are absent; under CI=true
# their absence fails). About 7.5 min on 2 cores (bench/results/test_times.json).
test: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15 test --ignore=test/ros2
	$(MAKE) test-ros2

# The inner loop: the tests marked neither slow nor ros (no node processes, no training runs),
# about 1 min on 2 workers.
test-fast: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow and not ros" test --ignore=test/ros2

# `make test`, timed: bench/results/test_times.json ({"make_test_seconds", "tests"}).
test-times: setup
	$(BIN)/python bench/scripts/test_times.py

# (pytest's status 5, nothing collected: every module skipped itself, the tools are absent;
# not a failure outside CI, where test/ros2/conftest.py already fails the run with status 4)
test-ros2: setup $(ROS2_STAMP)
	$(ROS2_ENV) $(BIN)/python -m pytest -p no:cacheprovider test/ros2; status=$$?; \
		[ $$status -eq 0 ] || { [ $$status -eq 5 ] && [ "$$CI" != true ]; } || exit $$status

colcon-check: setup
	rm -rf build/colcon-ws && mkdir -p build/colcon-ws/src && ln -s $(CURDIR) build/colcon-ws/src/aura_ros
	cd build/colcon-ws && $(BIN)/colcon build --cmake-args -DPython3_EXECUTABLE=$(BIN)/python -DBUILD_TESTING=OFF

clean:
	rm -rf build install log aura_ros/msg aura_ros/*.so demo_output demo_output_mujoco .pytest_cache .ruff_cache .ros2-tools
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
