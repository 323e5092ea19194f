#!/usr/bin/env bash
# The tests check soup's files against the real libraries (torch.load, onnx.checker, numpy, PIL), and
# run --executor slurm against a real single-node Slurm (scripts/slurm-up.sh): this installs Debian's
# packages of them where any is missing, and does nothing otherwise.
set -euo pipefail
python=()
/usr/bin/python3 -c 'import torch, onnx, numpy, PIL' 2>/dev/null || python=(python3-torch python3-onnx python3-numpy python3-pil)
slurm=()
for tool in munged slurmctld slurmd sbatch; do command -v "$tool" >/dev/null || slurm=(slurm-wlm munge); done
# test/cli/examples.test.ts runs the examples as a shell would, pipes into jq included.
tools=()
command -v jq >/dev/null || tools=(jq)
if [ ${#python[@]} = 0 ] && [ ${#slurm[@]} = 0 ] && [ ${#tools[@]} = 0 ]; then exit 0; fi
as_root=$([ "$(id -u)" = 0 ] || echo sudo)
$as_root apt-get update -qq
if [ ${#python[@]} != 0 ] || [ ${#tools[@]} != 0 ]; then
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${python[@]}" "${tools[@]}"
fi
if [ ${#slurm[@]} != 0 ]; then
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${slurm[@]}"
fi
