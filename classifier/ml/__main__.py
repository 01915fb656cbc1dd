"""Command line: ``python -m classifier.ml train|evaluate|predict|bench ...``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MODELS = Path(__file__).resolve().parents[2] / "models"


def _train(args) -> int:
    from . import train

    if args.compare_policies:
        print(json.dumps(train.compare_policies(args.data, seed=args.seed), indent=2))
        return 0
    if args.version and not train.valid_version(args.version):
        print(
            f"invalid version {args.version!r}: letters, digits, '.', '-', '_' only",
            file=sys.stderr,
        )
        return 2
    cfg = train.Config(
        data=args.data,
        out=args.out,
        version=args.version or "",
        backbone=args.backbone,
        cut_layer=args.cut_layer,
        seed=args.seed,
        variants=args.variants,
        one_bit_rate=args.one_bit_rate,
        balance=args.balance,
        head_epochs=args.head_epochs,
        finetune_epochs=args.epochs,
        finetune_lr=args.finetune_lr,
        label_smoothing=args.label_smoothing,
        final=not args.no_final,
        extra=tuple(args.extra),
        compare_with=args.compare_with,
        processes=args.processes,
        cache=args.cache,
    )
    train.train(cfg, log=lambda msg: print(msg, flush=True))
    return 0


def _ablate(args) -> int:
    from . import ablation, train

    cfg = train.Config(
        data=args.data,
        out="",
        backbone=args.backbone,
        variants=args.variants,
        cache=args.cache,
        processes=args.processes,
    )
    result = ablation.run(cfg, log=lambda msg: print(msg, flush=True))
    print(json.dumps(result, indent=2) if args.json else ablation.markdown(result))
    return 0


def _evaluate(args) -> int:
    from .evaluate import evaluate

    print(json.dumps(evaluate(args.data, args.model, confusion_png=args.confusion), indent=2))
    return 0


def _predict(args) -> int:
    from .predictor import Predictor
    from .preprocess import InvalidImage

    predictor = Predictor.load(args.model)
    status = 0
    for name in args.images:
        try:
            result = predictor.predict(Path(name).read_bytes())
            row = {"image": name, **result.as_dict()}
        except (InvalidImage, OSError) as exc:
            row, status = {"image": name, "error": str(exc)}, 1
        print(json.dumps(row), flush=True)
    return status


def _bench(args) -> int:
    from .bench import run

    return run(model=args.model, as_json=args.json, repeats=args.repeats)


def main(argv: list[str] | None = None) -> int:
    # Training's defaults live in train.Config (which imports no TensorFlow).
    from .backbone import BACKBONES
    from .train import Config

    default = Config.default
    parser = argparse.ArgumentParser(prog="python -m classifier.ml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train and export a model")
    p.add_argument("--data", required=True, help="ImageFolder directory (one folder per class)")
    p.add_argument("--out", default=str(DEFAULT_MODELS), help="where to write the model files")
    p.add_argument("--version", help="model version (default <backbone>-YYYYMMDD-HHMM)")
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="DIR",
        help="another ImageFolder tree (reviewed uploads); repeatable",
    )
    p.add_argument(
        "--compare-with", metavar="MODEL", help="score this model on the same validation"
    )
    p.add_argument(
        "--backbone", default=default("backbone"), choices=sorted(BACKBONES), help="backbone"
    )
    p.add_argument(
        "--cut-layer",
        default=default("cut_layer"),
        metavar="LAYER",
        help="fine-tune the layers after this one (default: the backbone's own)",
    )
    p.add_argument("--seed", type=int, default=default("seed"))
    p.add_argument(
        "--variants", type=int, default=default("variants"), help="augmented copies of each image"
    )
    p.add_argument(
        "--one-bit-rate",
        type=float,
        default=default("one_bit_rate"),
        help="share of augmented copies made 1-bit scans",
    )
    p.add_argument(
        "--balance",
        default=default("balance"),
        choices=("resample", "weights"),
        help="scarce classes: more augmented copies per epoch, or heavier weights",
    )
    p.add_argument("--head-epochs", type=int, default=default("head_epochs"))
    p.add_argument(
        "--epochs", type=int, default=default("finetune_epochs"), help="most fine-tuning epochs"
    )
    p.add_argument(
        "--finetune-lr",
        type=float,
        default=default("finetune_lr"),
        help="fine-tuning learning rate, decayed to zero",
    )
    p.add_argument("--label-smoothing", type=float, default=default("label_smoothing"))
    p.add_argument("--processes", type=int, help="feature workers (default: one per core)")
    p.add_argument("--cache", metavar="DIR", help="keep the computed features here and reuse them")
    p.add_argument("--no-final", action="store_true", help="skip the retraining on all data")
    p.add_argument(
        "--compare-policies", action="store_true", help="only measure the resize policies"
    )
    p.set_defaults(func=_train)

    p = sub.add_parser("ablate", help="linear probes on the frozen backbone, for comparison")
    p.add_argument("--data", required=True, help="ImageFolder directory (one folder per class)")
    p.add_argument("--backbone", default=default("backbone"), choices=sorted(BACKBONES))
    p.add_argument("--variants", type=int, default=default("variants"))
    p.add_argument("--processes", type=int)
    p.add_argument("--cache", metavar="DIR", help="the features cache of a training run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_ablate)

    p = sub.add_parser("evaluate", help="score a model on an ImageFolder directory; prints JSON")
    p.add_argument("data")
    p.add_argument(
        "--model", default=str(DEFAULT_MODELS), help="a .tflite file or a models/ directory"
    )
    p.add_argument("--confusion", help="write the confusion matrix to this PNG")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="classify images; one JSON line each")
    p.add_argument("images", nargs="+")
    p.add_argument("--model", default=str(DEFAULT_MODELS))
    p.set_defaults(func=_predict)

    p = sub.add_parser("bench", help="measure speed and memory")
    p.add_argument("--model", default=str(DEFAULT_MODELS))
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_bench)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
