#!/usr/bin/env bash
# The Debian packages the tests need at run time, installed only when missing (as root, or
# through sudo): Mesa's Vulkan drivers, whose lavapipe runs Burn's wgpu backend (the GPU code
# path) on the CPU, and Chromium, which loads the run report headless. Prints nothing when
# everything is there; `.ci/run` calls it first.
set -euo pipefail
missing=()
# lavapipe's driver manifest, and the Vulkan loader that finds it.
if ! compgen -G '/usr/share/vulkan/icd.d/lvp_icd*.json' > /dev/null; then
  missing+=(mesa-vulkan-drivers)
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  missing+=(libvulkan1)
fi
# A browser for the tests of the pages the project writes (the run report).
if ! command -v chromium > /dev/null && ! command -v chromium-browser > /dev/null; then
  missing+=(chromium)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi
echo "installing ${missing[*]} (Debian)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null; then
  "${SUDO[@]}" apt-get update > /dev/null
  "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null
fi
