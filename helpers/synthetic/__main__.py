"""``python -m helpers.synthetic --out DIR --size smoke|full --seed N [--datasets a,b]``."""
import argparse

from . import DATASETS, SIZES, generate_all


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="folder that receives one subfolder per dataset")
    parser.add_argument("--size", choices=SIZES, default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated subset of {','.join(DATASETS)}")
    parser.add_argument("--overwrite", action="store_true", help="regenerate datasets that exist")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    for name, seconds in generate_all(args.out, args.size, args.seed, names, args.overwrite).items():
        print(f"{name:8s} {seconds:6.1f} s  -> {args.out}/{name}")


if __name__ == "__main__":
    main()
