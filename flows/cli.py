"""The `reelsplit` command line: run, serve, probe, profiles, verify, models, and the training tools (demo-reel,
corpus build, train), imported only by their own commands. The only place that turns errors into exit codes."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

from pipeline import __version__
from pipeline.errors import OutputError, PipelineError
from pipeline.malloc import tune_malloc

from . import display
from .logs import add_file_log, setup_console
from .prefect_env import UI_PORT

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# `reelsplit train` options that set a TrainConfig field: (flag, field, argparse keywords). One not given keeps
# TrainConfig's default (named in its help).
TRAIN_CONFIG_OPTIONS = (
    ("--segment", "segment_s", dict(type=float, metavar="SECONDS", help="training crop (default 2)")),
    ("--batch-size", "batch_size", dict(type=int, help="mixtures per step (default 4)")),
    ("--lr", "lr", dict(type=float, help="Adam learning rate after the warm-up (default 1e-3)")),
    ("--channels", "channels", dict(type=int, help="network width; from scratch only (default 16)")),
    ("--depth", "depth", dict(type=int, help="network depth; from scratch only (default 4)")),
    ("--t-layers", "t_layers", dict(type=int, help="transformer layers; from scratch only (default 1)")),
    ("--nfft", "nfft", dict(type=int, help="STFT size; from scratch only (default 4096)")),
    ("--loss", "loss", dict(choices=("l1", "l1+sisdr"), help="training loss (default l1)")),
    ("--seed", "seed", dict(type=int, help="seed of the network and the training mixtures (default 0)")),
    ("--checkpoint-every", "checkpoint_every", dict(type=int, help="steps between checkpoints (default 100)")),
)

OUTPUT_TRACKS_HELP = ("the deliverable's audio tracks: interleaved (each stem one track in the master's layout) or "
                      "source (each stem in the master's own track structure: six mono tracks give each stem as six "
                      "mono tracks, labelled 'DX C'; the config's output_tracks, default interleaved)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reelsplit", description="Split film reels into dialogue (DX) and M&E stems, "
                                "normalized to a delivery profile.")
    p.add_argument("--version", action="version", version=f"reelsplit {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (ffmpeg commands, tracebacks)")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_serve, _add_probe, _add_profiles, _add_verify, _add_models, _add_train, _add_corpus,
                _add_demo_reel):
        add(sub)
    return p


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="process reels (files or drop folders) into stems and deliverables")
    run.add_argument("inputs", nargs="+", type=Path, help="media files and/or folders of them")
    run.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    run.add_argument("--profile", default="ebu-r128", help="delivery profile name or YAML path (default ebu-r128)")
    run.add_argument("--model", default=None, help="auto | dfn3 | demucs name | .th/.safetensors file | repo folder "
                     "(default: the config's, auto)")
    run.add_argument("--config", type=Path, default=None, help="settings YAML (default configs/default.yaml)")
    run.add_argument("--workers", type=int, default=None,
                     help="files processed at once (default: one per CPU core, at most 4 and at most the number of "
                     "files; torch gets cores ÷ workers threads each)")
    run.add_argument("--stream", type=int, default=0, help="which audio stream of each file (default 0, the first)")
    run.add_argument("--tracks", default=None, metavar="MAP",
                     help="name every audio channel of the files, in order, e.g. L,R,C,LFE,Ls,Rs,Lt,Rt (5.1 as six "
                     "mono tracks + a stereo fold-down) or L,C,R,Ls,Rs,LFE (film order); - for an unused track "
                     "(default: the config's tracks:, else ffprobe's channel labels or the track count)")
    run.add_argument("--output-tracks", choices=("source", "interleaved"), default=None, help=OUTPUT_TRACKS_HELP)
    run.add_argument("--force", action="store_true", help="reprocess files whose outputs are already current")
    run.add_argument("--strict", action="store_true", help="exit 1 also when a delivered file fails QC")
    run.add_argument("--me-package", action="store_true",
                     help="the M&E package for localization: M&E in the master's layout and in 2.0, DX (MX, and FX = "
                     "M&E - MX, where the model makes them), a mono dialogue guide, the printmaster; listed in the "
                     "manifest")
    run.add_argument("--stereo-downmix", action="store_true",
                     help="5.0, 5.1 and 7.1 sources also get ITU-R BS.775 stereo stems, delivered to the same "
                     "profile")
    run.add_argument("--split-channels", action="store_true",
                     help="each multichannel stem also as discrete mono WAVs, one per channel (REEL1_DX.L.wav; the "
                     "profile's channel_naming), as Netflix asks for 5.1 elements (default: the profile's "
                     "split_channels)")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                     help="where demucs models run: auto (a GPU when torch sees one), cpu or cuda "
                     "(default: the config's, cpu); DFN3 always runs on the CPU")
    _add_speed_options(run)
    run.add_argument("--dask", default=None, metavar="local|ADDRESS",
                     help="run the files on Dask workers: `local` starts --workers worker processes here; "
                     "tcp://HOST:8786 uses a running cluster's scheduler")
    run.add_argument("--start-tc", default=None, metavar="HH:MM:SS:FF",
                     help="start timecode of the outputs (BWF TimeReference, iXML, spotting lists) instead of each "
                     "file's own (HH:MM:SS;FF for drop frame)")
    _add_words_options(run)
    _add_ui_options(run, "for the run's duration")
    run.add_argument("-q", "--quiet", action="store_true",
                     help="print only errors and the final summary (no stage lines, no progress)")
    run.add_argument("--progress-every", type=float, default=display.PLAIN_EVERY_S, metavar="SECONDS",
                     help="when the output is not a terminal (a log, CI, cron): a progress line per running stage "
                     f"this often (default {display.PLAIN_EVERY_S:g}); on a terminal the progress is redrawn in place")
    run.add_argument("--tc-rate", default=None, metavar="FPS",
                     help="timecode rate of files that have none (audio only: a BWF's TimeReference gets labels; "
                     "23.976, 24, 25, 29.97, 30, 50, 59.94, 60), or that replaces theirs")


def _add_words_options(parser) -> None:
    """--asr-model, --language, --no-transcribe: speech recognition (the config's `transcribe:` otherwise)."""
    parser.add_argument("--asr-model", default=None, metavar="PATH",
                        help="faster-whisper model folder for speech recognition (small, medium, large-v3 ...); "
                             "default the bundled, checksum-verified Whisper base")
    parser.add_argument("--language", default=None, metavar="xx",
                        help="the dialogue's language, ISO 639-1 (en, fr ...); default: detected per reel")
    parser.add_argument("--no-transcribe", action="store_true", help="no speech recognition (no words)")


def _add_ui_options(parser, when: str) -> None:
    """--ui and --port: Prefect's dashboard (its UI) on a fixed local port."""
    parser.add_argument("--ui", action="store_true",
                        help=f"{when}: Prefect's dashboard at http://127.0.0.1:PORT (with PREFECT_API_URL set, "
                        "nothing is started and that server's dashboard is named)")
    parser.add_argument("--port", type=int, default=None,
                        help=f"the dashboard's local port (default {UI_PORT}); implies --ui")


def _add_speed_options(parser) -> None:
    """--precision and --batch-segments (how demucs runs; the config's separation.precision / batch_segments)."""
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                        help="demucs arithmetic on CUDA: fp32, or bf16/fp16 autocast (faster on a GPU, about 50 and "
                        "65 dB from fp32; benchmarks/RESULTS.md); the CPU runs fp32 only (default: the config's, fp32)")
    parser.add_argument("--batch-segments", type=int, default=None, metavar="N",
                        help="demucs segments per forward pass (default: the config's, 0 = auto: 1 on the CPU, on "
                        "CUDA as many as half the free GPU memory holds, at most 64)")


def _add_serve(sub) -> None:
    serve = sub.add_parser("serve", help="process a drop folder on a schedule (a Prefect deployment served here)")
    serve.add_argument("--watch", type=Path, required=True, metavar="DROP_DIR", help="the drop folder")
    serve.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    serve.add_argument("--cron", required=True, help='when to run, e.g. "0 2 * * *" (every day at 2:00)')
    serve.add_argument("--timezone", default=None, help="IANA time zone of the cron (default: this machine's)")
    serve.add_argument("--name", default="drop-folder", help="deployment name (default drop-folder)")
    serve.add_argument("--once", action="store_true", help="register the deployment, run it once now and exit")
    serve.add_argument("--pool", default=None, help="register it on this work pool of the Prefect server at "
                       "PREFECT_API_URL instead of serving it here; the pool's workers run it")
    for flag, kw in (("--profile", dict(default="ebu-r128", help="delivery profile (default ebu-r128)")),
                     ("--model", dict(default=None, help="model spec (default: the config's, auto)")),
                     ("--config", dict(type=Path, default=None, help="settings YAML")),
                     ("--workers", dict(type=int, default=1, help="files processed at once (default 1)")),
                     ("--stream", dict(type=int, default=0, help="which audio stream (default 0)")),
                     ("--dask", dict(default=None, metavar="local|ADDRESS", help="run the files on Dask workers")),
                     ("--stereo-downmix", dict(action="store_true",
                                               help="5.0, 5.1 and 7.1 sources also get stereo stems")),
                     ("--output-tracks", dict(choices=("source", "interleaved"), default=None,
                                              help=OUTPUT_TRACKS_HELP))):
        serve.add_argument(flag, **kw)
    _add_words_options(serve)
    _add_speed_options(serve)
    _add_ui_options(serve, "with --once, for the run's duration (serving always starts it)")


def _add_probe(sub) -> None:
    probe = sub.add_parser("probe", help="show what reelsplit sees in a file")
    probe.add_argument("file", type=Path)
    probe.add_argument("--json", action="store_true", help="print JSON")


def _add_profiles(sub) -> None:
    sub.add_parser("profiles", help="list the delivery profiles")


def _add_verify(sub) -> None:
    verify = sub.add_parser("verify", help="check every title's manifest against the files on disk")
    verify.add_argument("out", type=Path)


def _add_models(sub) -> None:
    models = sub.add_parser("models", help="separation models usable on this machine")
    msub = models.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="models usable locally (bundled dfn3 and the user's model repo)")
    inst = msub.add_parser("install", help="copy a demucs .th/.safetensors file into the model repo, verified")
    inst.add_argument("file", type=Path)
    inst.add_argument("--name", default=None, help="install under this name (default: the file's)")
    minfo = msub.add_parser("info", help="details of one model spec")
    minfo.add_argument("spec")


def _add_train(sub) -> None:
    train = sub.add_parser("train", help="train or fine-tune a demucs dialogue/music/effects model on your stems; "
                           "run again with the same --out to resume")
    train.add_argument("--stems", type=Path, required=True,
                       help="folder with dialogue/, music/, effects/ WAVs (or a corpus with train/)")
    train.add_argument("--out", type=Path, required=True, help="output folder (a demucs repo; resumes from it)")
    train.add_argument("--name", default="dme-small",
                       help="model name: writes NAME-<sha8>.th and NAME.safetensors (default dme-small)")
    train.add_argument("--init", default=None, help="fine-tune from this model spec instead of training from scratch")
    train.add_argument("--eval", type=Path, default=None,
                       help="held-out stems folder for the final validation (default: a corpus's eval/, else the "
                       "training stems)")
    train.add_argument("--minutes", type=float, default=None, help="wall-time budget of this call (default 30)")
    train.add_argument("--steps", type=int, default=None, help="total steps of the run, resumed ones included")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    for flag, field, kw in TRAIN_CONFIG_OPTIONS:
        train.add_argument(flag, dest=field, default=None, **kw)
    train.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (1 is faster when another job shares the cores)")
    train.add_argument("--loader-workers", type=int, default=0,
                       help="processes drawing training mixtures beside the network (default 0; use them on a GPU)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_corpus(sub) -> None:
    corpus = sub.add_parser("corpus", help="training corpora")
    csub = corpus.add_subparsers(dest="corpus_command", required=True)
    build = csub.add_parser("build", help="build a corpus (train/ and held-out eval/) from installable material; "
                            "run again to resume or extend it")
    build.add_argument("dir", type=Path)
    build.add_argument("--minutes", type=float, default=10.0, help="minutes of audio per source in train/ (default 10)")
    build.add_argument("--eval-fraction", type=float, default=0.2,
                       help="eval/ gets this fraction of those minutes, at least 3 clips per source (default 0.2)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--sources", nargs="+", choices=("dialogue", "music", "effects"), default=None,
                       help="build only these (default: all three)")
    build.add_argument("--recorded-voices", action="store_true",
                       help="every other train dialogue clip speaks with people's recorded voices (Debian: "
                            "flight-of-the-amazon-queen hedgewars-data); eval keeps its own voices")
    build.add_argument("-q", "--quiet", action="store_true", help="no per-clip progress on stderr")


def _add_demo_reel(sub) -> None:
    demo = sub.add_parser("demo-reel", help="make a seeded demo reel: test picture, speech, music and effects")
    demo.add_argument("out", type=Path, help="output file: .mov .mkv .mp4 .wav or .mxf")
    demo.add_argument("--seconds", type=float, default=30.0, help="length (default 30)")
    demo.add_argument("--layout", choices=("mono", "stereo", "5.1"), default="stereo")
    demo.add_argument("--seed", type=int, default=0, help="the same seed makes the same file, byte for byte")
    demo.add_argument("--stems", action="store_true",
                      help="also write the ground-truth stems (dialogue, music, effects WAVs) to OUT's name + .stems/")


def cmd_probe(args) -> int:
    from pipeline.media import probe
    info = probe(args.file)
    if args.json:
        print(json.dumps(asdict(info), default=str, indent=2))
        return EXIT_OK
    print(f"{info.path}: {info.container}, {info.duration_s:.3f} s, {info.size_bytes} bytes")
    for v in info.video:
        rate = f"{float(v.frame_rate):.3f} fps ({v.frame_rate})" if v.frame_rate else "unknown rate"
        print(f"  video #{v.index}: {v.codec} {v.width}x{v.height}, {rate}")
    for a in info.audio:
        print(f"  audio #{a.index} (a:{a.audio_index}): {a.codec}, {a.channels} ch {a.layout}, {a.sample_rate} Hz"
              f"{', ' + format(a.duration_s, '.3f') + ' s' if a.duration_s else ''}"
              f"{', lang ' + a.language if a.language else ''}{', ' + repr(a.title) if a.title else ''}")
    if not info.audio:
        print("  no audio stream: reelsplit cannot process this file")
    return EXIT_OK


def cmd_profiles(args) -> int:
    from pipeline.profiles import available, load_profile
    print(f"{'name':<13} {'measurement':<13} {'target':>10} {'tol':>6} {'ceiling':>10} {'M&E ceil':>10} "
          f"{'rate':>6} {'bits':>4}  description")
    for name in available():
        p = load_profile(name)
        rate = str(p.sample_rate) if p.sample_rate else "source"
        print(f"{p.name:<13} {p.measurement:<13} {p.target_lufs:>5.1f} LUFS {p.tolerance_lu:>4.1f}LU "
              f"{p.true_peak_dbtp:>5.1f} dBTP {p.me_ceiling_dbtp:>5.1f} dBTP {rate:>6} {p.bit_depth:>4}  {p.description}")
    return EXIT_OK


def _fmt_info(m) -> str:
    params = f"{m.parameters / 1e6:.2f} M" if m.parameters else "-"
    check = {True: "ok", False: "MISMATCH", None: "-"}[m.checksum_ok]
    return (f"{m.name:<16} {m.backend:<7} {m.source:<9} {','.join(m.stems) or '?':<24} {m.sample_rate or '-':>6} "
            f"{params:>9} {m.size_bytes / 1e6:>8.1f} MB  {check:<8} {m.path or ''}")


def cmd_models(args) -> int:
    from pipeline import models
    header = f"{'name':<16} {'backend':<7} {'source':<9} {'stems':<24} {'rate':>6} {'params':>9} {'size':>11}  {'checksum':<8} path"
    if args.models_command == "list":
        print(f"model repo: {models.user_model_repo()}")
        print(header)
        rows = models.list_local()
        for m in rows:
            print(_fmt_info(m))
        return EXIT_FAILED if any(m.checksum_ok is False for m in rows) else EXIT_OK
    if args.models_command == "install":
        target = models.install(args.file, name=args.name)
        print(f"installed {args.file} as {target} (checksum verified)")
        return EXIT_OK
    print(header)
    print(_fmt_info(models.info(models.resolve(args.spec))))
    return EXIT_OK


def cmd_verify(args) -> int:
    from pipeline.manifest import verify_tree
    if not args.out.is_dir():
        raise SystemExit(f"reelsplit: {args.out}: not a folder")
    results = verify_tree(args.out)
    for title, problems in results.items():
        print(f"{'ok' if not problems else 'BAD':<4} {title}" + ("" if not problems else ": " + "; ".join(problems)))
    bad = sum(bool(p) for p in results.values())
    print(f"{len(results) - bad} of {len(results)} titles verified")
    return EXIT_FAILED if bad else EXIT_OK


def cmd_train(args) -> int:
    from pipeline.training.train import TrainConfig, TrainOptions, train
    if args.threads:
        import torch
        torch.set_num_threads(max(1, args.threads))
    config = TrainConfig(**{field: getattr(args, field) for _, field, _ in TRAIN_CONFIG_OPTIONS
                            if getattr(args, field) is not None})
    options = TrainOptions(name=args.name, config=config, init=args.init, minutes=args.minutes, steps=args.steps,
                           device=args.device, progress=not args.no_progress, eval_dir=args.eval,
                           loader_workers=args.loader_workers)
    result = train(args.stems, args.out, options)
    print(f"trained {result.steps} steps in {result.seconds:.0f} s (resumed from step {result.resumed_from}); "
          f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}")
    for source, scores in result.validation.items():
        print(f"  {source}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()))
    print(f"model: {result.model_path}\nsafetensors: {result.safetensors_path}")
    return EXIT_OK


def cmd_corpus(args) -> int:
    from pipeline.training.corpus import SOURCES, build_corpus, format_summary
    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = build_corpus(args.dir, minutes=args.minutes, eval_fraction=args.eval_fraction, seed=args.seed,
                           sources=args.sources or SOURCES, progress=say, recorded_voices=args.recorded_voices)
    print(format_summary(summary))
    return EXIT_OK


def cmd_demo_reel(args) -> int:
    from pipeline.training.demo import make_demo_reel
    reel = make_demo_reel(args.out, seconds=args.seconds, layout=args.layout, seed=args.seed, write_stems=args.stems)
    print(reel.path)
    return EXIT_OK


def _run_settings(args):
    """The config's settings with the command line's --stereo-downmix, --me-package, --tracks, --output-tracks,
    --device and the speech recognition's options on top."""
    from pipeline.config import Settings, parse_tracks, with_transcribe

    settings = with_transcribe(Settings.load(args.config), off=args.no_transcribe, model=args.asr_model,
                               language=args.language)
    if args.stereo_downmix:
        settings = dataclasses.replace(settings, stereo_downmix=True)
    if args.me_package:
        settings = dataclasses.replace(settings, me_package=True)
    if args.tracks:
        settings = dataclasses.replace(settings, tracks=parse_tracks(args.tracks, "--tracks"))
    if args.output_tracks:
        settings = dataclasses.replace(settings, output_tracks=args.output_tracks)
    if args.device:
        settings = dataclasses.replace(settings, separation=dataclasses.replace(settings.separation,
                                                                                device=args.device))
    from pipeline.config import with_speed_options
    from pipeline.separate_demucs import check_precision
    settings = with_speed_options(settings, args.precision, args.batch_segments)
    check_precision(settings.separation)
    return settings


def _say_words(settings) -> None:
    """The speech recognition's model, resolved now (a wrong --asr-model is one line before any work), printed."""
    t = settings.transcribe
    if not t.enabled:
        display.echo("reelsplit: speech recognition off (--no-transcribe)")
        return
    from pipeline.asr_model import resolve_asr_model
    language = "detected per reel" if t.language == "auto" else t.language
    display.echo(f"reelsplit: speech recognition {resolve_asr_model(t.model).label} on {t.source}, language "
                 f"{language}")


def _print_summary(summary, out: Path) -> int:
    """The run's summary on the terminal: counts, each file's verdict and where its words are; returns the
    number of QC failures."""
    ok = sum(r.status == "ok" for r in summary.rows)
    skipped = sum(r.status == "skipped" for r in summary.rows)
    qc_failed = sum(r.qc == "fail" for r in summary.rows)
    print(f"\nreelsplit: {ok} ok, {skipped} skipped, {summary.failed} failed; QC: {qc_failed} fail")
    for r in summary.rows:
        if r.status == "failed":
            print(f"  FAILED {r.file}: {r.stage}: {r.error}")
            continue
        out_lufs = f"{r.output_lufs:.1f} LUFS" if isinstance(r.output_lufs, float) and math.isfinite(r.output_lufs) else ""
        verdict = f"QC {r.qc}" + (f" ({r.qc_reasons})" if r.qc == "fail" else "") if r.qc else ""
        print(f"  {r.status:<7} {r.file} -> {out / r.title}  {out_lufs}  {verdict}")
        if r.transcript:
            folder, title = out / r.title, r.title
            print(f"          words ({r.language}, {r.words:.0f}): dialogue list {folder / (title + '_dialogue.csv')}")
            print(f"          subtitles {folder / (title + '_subtitles')}.srt|.vtt|.ttml, ADR cue sheet "
                  f"{title}_adr.csv, markers {title}_markers.edl")
        elif r.asr_error:
            print(f"          no words: speech recognition failed: {r.asr_error}")
        if r.qc_events:
            n = r.qc_events_n
            count = f"{n:.0f}" if isinstance(n, (int, float)) and math.isfinite(n) else "?"
            print(f"          QC events ({count}): {r.qc_events}")
    return qc_failed


def _ui_port(args) -> int | None:
    """The dashboard's port when one is asked for (--ui, --port), else None."""
    return args.port if args.port is not None else UI_PORT if args.ui else None


def _say_dashboard(server, port: int | None) -> str | None:
    """Print where the dashboard is (the started server's UI, else the configured API's UI) when one is asked
    for (`port`); returns its URL."""
    if port is None:
        return None
    from .prefect_env import dashboard_url
    url = dashboard_url(server)
    print(f"reelsplit: dashboard {url}" if url else "reelsplit: no dashboard: the configured Prefect API names no UI",
          flush=True)
    return url


def cmd_run(args) -> int:
    from pipeline.models import resolve
    from pipeline.profiles import load_profile

    if args.workers is not None and args.workers < 1:
        raise SystemExit("reelsplit: --workers must be at least 1")
    if not args.progress_every > 0:
        raise SystemExit("reelsplit: --progress-every must be more than 0 seconds")
    display.set_quiet(args.quiet)
    from pipeline.starttc import check_options
    check_options(args.start_tc, args.tc_rate)
    settings = _run_settings(args)
    if settings.separation.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            print("reelsplit: error: --device cuda, but torch sees no CUDA device on this machine "
                  "(use --device auto or cpu)", file=sys.stderr)
            return EXIT_USAGE
    profile = load_profile(args.profile)
    if args.split_channels:
        profile = dataclasses.replace(profile, split_channels=True)
    spec = resolve(args.model or settings.separation.model)
    display.echo(f"reelsplit: model {spec.label} [{spec.kind}, {spec.source}]"
                 + (" (auto: htdemucs not installed locally, using the bundled DeepFilterNet3)"
                    if (args.model or settings.separation.model) == "auto" and spec.kind == "dfn3" else ""))
    from pipeline.cleanup import AUTO, auto_reason, resolve_method
    display.echo(f"reelsplit: dialogue clean-up {resolve_method(settings.cleanup, spec.kind)}"
                 + (f" (auto: {auto_reason(spec.kind)})" if settings.cleanup == AUTO else ""))
    _say_words(settings)
    from . import prefect_env
    prefect_env.configure()
    # comes up while the pipeline and torch are imported
    server = prefect_env.start_local_server(ui_port=_ui_port(args))
    from .reel import RunOptions, run
    import torch  # noqa: F401 - the flow needs it; imported here it overlaps the server's start (~2 s)

    out = args.out.expanduser().absolute()
    try:
        add_file_log(out / "reports" / "reelsplit.log")
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder: {exc.strerror or exc}", out) from exc
    from pipeline.batch import discover
    files = {item.title: item.path for item in discover(list(args.inputs)) if not item.problem}
    with prefect_env.connected(server):
        _say_dashboard(server, _ui_port(args))
        with display.showing(files, quiet=args.quiet, every=args.progress_every, words=settings.transcribe.enabled,
                             local=not args.dask):
            summary = run(list(args.inputs), out, spec, settings, profile,
                          RunOptions(workers=args.workers, force=args.force, audio_stream=args.stream, dask=args.dask,
                                     start_tc=args.start_tc, tc_rate=args.tc_rate))
    qc_failed = _print_summary(summary, out)
    print(f"deliverables: {out}")
    print(f"report (CSV):  {summary.csv}")
    print(f"report (HTML): {summary.html}")
    return EXIT_FAILED if summary.failed or (args.strict and qc_failed) else EXIT_OK


def _serve_checks(args):
    """What every scheduled run will resolve, checked now (a mistake is one line here, not a failed run at 2:00):
    the settings with the command line's options, the profile, the model (returned)."""
    from pipeline.config import Settings, with_speed_options, with_transcribe
    from pipeline.models import resolve
    from pipeline.profiles import load_profile
    from pipeline.separate_demucs import check_precision

    settings = with_speed_options(with_transcribe(Settings.load(args.config), off=args.no_transcribe,
                                                  model=args.asr_model, language=args.language),
                                  args.precision, args.batch_segments)
    check_precision(settings.separation)
    _say_words(settings)
    load_profile(args.profile)
    return resolve(args.model or settings.separation.model)


def cmd_serve(args) -> int:
    import contextlib
    import os

    from pipeline.errors import ConfigError

    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if not args.watch.is_dir():
        raise ConfigError("drop folder: " + ("not a folder" if args.watch.exists() else "not found"), args.watch)
    spec = _serve_checks(args)
    out = args.out.expanduser().absolute()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder: {exc.strerror or exc}", out) from exc
    from . import prefect_env
    prefect_env.configure()
    if args.pool and not os.environ.get("PREFECT_API_URL"):
        raise ConfigError("--pool registers on a Prefect server: set PREFECT_API_URL (http://HOST:4200/api)")
    from . import deploy, serve

    options = serve.DropOptions(workers=args.workers, dask=args.dask, stream=args.stream,
                                stereo_downmix=args.stereo_downmix, output_tracks=args.output_tracks,
                                transcribe=not args.no_transcribe, asr_model=args.asr_model, language=args.language,
                                precision=args.precision, batch_segments=args.batch_segments)
    params = serve.parameters(args.watch, out, profile=args.profile, model=args.model, config=args.config,
                              options=options)
    zone = args.timezone or serve.local_timezone()
    serve.schedule(args.cron, zone)
    what = (f"reelsplit-drop-folder/{args.name}: {params['drop']} -> {out}, cron {args.cron!r} ({zone}), "
            f"model {spec.label}, profile {args.profile}")
    if args.pool:
        deployment_id = deploy.deploy_to_pool(params, args.cron, args.pool, name=args.name, timezone=zone)
        print(f"reelsplit: registered {what} on work pool {args.pool} ({deployment_id})")
        print(f"run a worker on each machine that should take its runs: prefect worker start --pool {args.pool}")
        return EXIT_OK
    if args.once:
        server = prefect_env.start_local_server(ui_port=_ui_port(args))    # None: Prefect's temporary server
        with prefect_env.connected(server):
            dashboard = _say_dashboard(server, _ui_port(args))
            flow_run = serve.run_once(serve.deployment(params, args.cron, name=args.name, timezone=zone))
        if dashboard:
            print(f"reelsplit: the run in the dashboard: {dashboard}/runs/flow-run/{flow_run.id}")
        state = flow_run.state
        print(f"reelsplit: ran {what}: {state.name if state else 'unknown'}"
              + (f" ({state.message})" if state and state.message and not state.is_completed() else ""))
        if (out / "reports" / "latest.csv").is_file():
            counts = serve.report_counts(out)
            print(f"files: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}; "
                  f"report: {out / 'reports' / 'latest.html'}")
        return EXIT_OK if state and state.is_completed() else EXIT_FAILED
    with contextlib.ExitStack() as stack:
        api, dashboard = stack.enter_context(deploy.local_server(ui_port=args.port or UI_PORT))
        print(f"reelsplit: serving {what}; Prefect API {api}; Ctrl-C stops", flush=True)
        print(f"reelsplit: dashboard {dashboard}" if dashboard else
              "reelsplit: no dashboard: the configured Prefect API names no UI", flush=True)
        serve.serve(serve.deployment(params, args.cron, name=args.name, timezone=zone))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_console(args.verbose)
    tune_malloc()     # before torch and any thread: large blocks reused, not page-faulted in per segment
    try:
        return {"run": cmd_run, "probe": cmd_probe, "profiles": cmd_profiles, "models": cmd_models,
                "train": cmd_train, "corpus": cmd_corpus, "demo-reel": cmd_demo_reel, "verify": cmd_verify,
                "serve": cmd_serve}[args.command](args)
    except PipelineError as exc:
        where = f"{exc.path}: " if exc.path else ""
        print(f"reelsplit: error: {where}{exc}", file=sys.stderr)
        return EXIT_USAGE if args.command != "probe" else EXIT_FAILED
    except KeyboardInterrupt:
        resume = " (checkpoint saved; run again to resume)" if args.command == "train" else ""
        print(f"reelsplit: interrupted{resume}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
