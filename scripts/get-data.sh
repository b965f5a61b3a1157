#!/usr/bin/env bash
# Make sure the real Fashion-MNIST is here: where it already is, else Debian's package (as root), else torchvision's download.
set -uo pipefail
fmnist="${1:-.venv/bin/fmnist}"
"$fmnist" data >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "Installing Debian's dataset-fashion-mnist ..."
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  "$fmnist" data >/dev/null 2>&1 && exit 0
fi
"$fmnist" data --download
