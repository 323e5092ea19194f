#!/usr/bin/env bash
# The tests check soup's files against the real libraries (torch.load, onnx.checker, numpy, PIL): this
# installs Debian's packages of them for /usr/bin/python3 where any is missing, and does nothing otherwise.
set -euo pipefail
if /usr/bin/python3 -c 'import torch, onnx, numpy, PIL' 2>/dev/null; then exit 0; fi
as_root=$([ "$(id -u)" = 0 ] || echo sudo)
$as_root apt-get update -qq
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  python3-torch python3-onnx python3-numpy python3-pil
