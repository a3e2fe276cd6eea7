#!/bin/bash
# One prepared run on a lent GPU machine (the `device` tool): HTDemucs-architecture real-time factor, then a
# demucs-format dialogue/music/effects model trained on the project's corpus. Everything it needs travels in the
# git-ignored folder .gpu/ (made by benchmarks/gpu_prepare.sh): wheels missing there (soundfile, soxr, cffi),
# demucs + julius (pure Python), and the corpus as Opus (the WAVs are ten times too big to carry).
# Results land in $OUT: env.txt, rtf.txt/rtf.json, train.txt, logs.tar, and the checkpoint in 15 MB parts.
# RESUME=models/training/dme-small ARCH="" resumes that run (its network; train's defaults are dme-small's);
# SKIP_RTF=1 skips the RTF table.
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}; MINUTES=${MINUTES:-4.5}; RTF_SECONDS=${RTF_SECONDS:-60}
NAME=${NAME:-dme-base}; WORK=${WORK:-/tmp/reelsplit-gpu}
ARCH=${ARCH---segment 3 --channels 24 --t-layers 2}; RESUME=${RESUME:-}
[ -n "${SKIP_PIP:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    .gpu/whl/*.whl >"$OUT/pip.txt" 2>&1 || { cat "$OUT/pip.txt"; exit 1; }
export PYTHONPATH="$WORK/site:$PWD/.gpu/site:$PWD" PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python3 -c "import sys,torch,demucs,soundfile,soxr; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
  nproc; } >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
[ -n "${SKIP_RTF:-}" ] || timeout 200 python3 benchmarks/gpu_rtf.py --seconds "$RTF_SECONDS" --device "$DEVICE" \
    --json "$OUT/rtf.json" >"$OUT/rtf.txt" 2>&1; tail -9 "$OUT/rtf.txt"
echo "== decode corpus"
python3 - "$WORK/corpus" <<'PY'
import sys, pathlib, soundfile as sf
from concurrent.futures import ProcessPoolExecutor
out = pathlib.Path(sys.argv[1])
def one(src):
    dst = out / src.relative_to(".gpu/corpus").with_suffix(".wav")
    dst.parent.mkdir(parents=True, exist_ok=True)
    audio, rate = sf.read(src, dtype="float32", always_2d=True)
    sf.write(dst, audio, rate, subtype="FLOAT")
    return audio.shape[0] / rate
files = sorted(pathlib.Path(".gpu/corpus").rglob("*.ogg"))
with ProcessPoolExecutor(8) as ex:
    seconds = sum(ex.map(one, files))
print(f"{len(files)} files, {seconds / 60:.1f} min")
PY
echo "== train"
if [ -n "$RESUME" ]; then mkdir -p "$WORK/$NAME" && cp "$RESUME"/checkpoint.pt "$RESUME"/training_log.csv "$WORK/$NAME/"; fi
TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1 timeout $(python3 -c "print(int(float('$MINUTES') * 60 + 150))") \
  python3 -m flows.cli train --stems "$WORK/corpus" --out "$WORK/$NAME" --name "$NAME" --device "$DEVICE" \
    --minutes "$MINUTES" --batch-size ${BATCH:-32} $ARCH \
    --lr ${LR:-1e-3} --checkpoint-every 250 --loader-workers ${LOADER_WORKERS:-12} --no-progress >"$OUT/train.txt" 2>&1
echo "train exit $?"; tail -8 "$OUT/train.txt"
(cd "$WORK/$NAME" && tar cf "$OUT/logs.tar" training_log.csv validation.json 2>/dev/null; ls -la)
tar rf "$OUT/logs.tar" -C "$OUT" env.txt rtf.txt train.txt 2>/dev/null
cp "$WORK/$NAME/$NAME.safetensors" "$OUT/" 2>/dev/null
[ -f "$WORK/$NAME/checkpoint.pt" ] && split -b 15m -d "$WORK/$NAME/checkpoint.pt" "$OUT/ckpt.part"
ls -la "$OUT"
