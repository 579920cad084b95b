#!/usr/bin/env bash
# The GPU check (issue 17), one short run on a lent GPU machine (an H200 here, ~15 minutes of device
# time, 64 MiB of files beyond the git tree). That machine has python3 with torch, pandas,
# matplotlib, pyyaml, tqdm and pytest, but no internet, SpikingJelly or DVC. Prepare here, once:
#
#   echo /.device/ >> .git/info/exclude && mkdir -p .device/wheels .device/mnist/MNIST
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .device/wheels spikingjelly==2.0.0
#   cp -r ../shared/datasets/MNIST/raw .device/mnist/MNIST/
#
# then run it there with `.device` carried:  bash bench/device_check.sh 2>&1 | tee $OUT/device_check.log
# It installs SpikingJelly, runs the test suite on the GPU (the tests that drive DVC are left out: DVC is
# not there), then both pipelines stage by stage (bench/device_check.py), printing per-stage times,
# training images per second and peak GPU memory.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --target /tmp/site .device/wheels/*.whl
export PYTHONPATH="/tmp/site:$PWD/src:$PWD" PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1
export DEEPSNN_DATA_MIRROR="$PWD/.device/mnist"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
start=$(date +%s)
python3 -m pytest -q -x --ignore=tests/test_dvc_download.py --ignore=tests/test_dvc_experiments.py \
  --ignore=tests/test_dvc_sharing.py --ignore=tests/test_review.py tests
echo "test suite on the GPU: $(( $(date +%s) - start )) s"
python3 bench/device_check.py --out /tmp/device_check
