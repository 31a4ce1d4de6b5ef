#!/usr/bin/env bash
# Build VTM's DecoderApp with block-statistics tracing from your own VTM checkout, and print
# the binary's path (give it to `codecnn encode/corpus --vtm-decoder PATH`, or export
# CODECNN_VTM_DECODER=PATH).
#
#     bash tools/build_vtm.sh VTM_SOURCE_DIR [BUILD_DIR]
#
# VTM_SOURCE_DIR: a clone of https://vcgit.hhi.fraunhofer.de/jvet/VVCSoftware_VTM (any
# recent VTM: the block-statistics trace has kept its format for years). BUILD_DIR defaults
# to VTM_SOURCE_DIR/build-tracing. Nothing is downloaded. A Release build with
# -DENABLE_TRACING=ON takes about 4 minutes on 2 cores (JOBS=N to change the parallelism).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 VTM_SOURCE_DIR [BUILD_DIR]" >&2
    exit 2
fi
src=$(cd "$1" 2>/dev/null && pwd) || { echo "$0: error: $1: no such directory" >&2; exit 1; }
if [ ! -f "$src/CMakeLists.txt" ] || [ ! -d "$src/source/App/DecoderApp" ]; then
    echo "$0: error: $src: not a VTM source tree (no CMakeLists.txt and source/App/DecoderApp)" >&2
    exit 1
fi
build=${2:-$src/build-tracing}
command -v cmake >/dev/null || { echo "$0: error: cmake not found (apt-get install cmake)" >&2; exit 1; }
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DENABLE_TRACING=ON >&2
cmake --build "$build" --target DecoderApp -j "$jobs" >&2

# VTM's CMake writes its binaries under the source tree's bin/ (e.g. bin/release-tracing/ or
# bin/umake/...); older versions under BUILD_DIR. The newest DecoderApp there is this build's.
app=$(find "$src/bin" "$build" -type f -name DecoderApp -perm -u+x -printf '%T@ %p\n' \
          2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2-)
if [ -z "$app" ]; then
    echo "$0: error: the build finished but no DecoderApp was found under $src/bin or $build" >&2
    exit 1
fi
echo "$app"
