#!/bin/sh
# Regenerate the synthetic sample pairs (deterministic: same seed, same bytes).
# Run from the repository root after `pip install -e .`.
set -eu
cd "$(dirname "$0")"
gen() {  # name, duration in ms, then kvmtrace synth options
    name=$1; ms=$2; shift 2
    kvmtrace synth "$@" --duration-ms "$ms" --seed 1 --format report-tl --format dat7 -o . --name "$name" > /dev/null
    xz -9 -f "$name.report-tl.txt"
}
gen arm64-6.1-synth-prefix-nohzfull 60  --arch arm64 --entry pre-fix --nohz-full 1
gen arm64-6.1-synth-fixed-nohzfull  60  --arch arm64 --entry fixed   --nohz-full 1
gen arm64-6.1-synth-prefix-tick     200 --arch arm64 --entry pre-fix --nohz-full ""
gen arm64-6.1-synth-fixed-tick      200 --arch arm64 --entry fixed   --nohz-full ""
gen x86-6.1-synth-fixed-tick        200 --arch x86   --entry fixed   --nohz-full ""
gen x86-5.15-synth-prefix-tick      200 --arch x86   --entry pre-fix --nohz-full "" --kernel 5.15
gen x86-5.10-synth-prefix-tick      200 --arch x86   --entry pre-fix --nohz-full "" --kernel 5.10
