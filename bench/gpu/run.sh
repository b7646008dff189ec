#!/usr/bin/env bash
# Both GPU benchmarks in one device call: builds attune-engine for the GPU in hand, then runs
# run-reference.sh with it, so Attune's rows and transformers + peft's come from the same GPU in
# the same run. Results under $OUT (see README.md); the build's logs in native/build-gpu/logs.
#
#   run(command="bash bench/gpu/run.sh", timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the folder that receives the results}"
out=native/build-gpu/logs gpu_target=attune-engine
source scripts/gpu-build.sh
ATTUNE_ENGINE="$PWD/$gpu_build/attune-engine" exec bash bench/gpu/run-reference.sh "$@"
