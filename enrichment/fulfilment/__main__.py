"""``python -m enrichment.fulfilment``: seed the configured database (DATABASE_URL or the
embedded server) with the demo data and print what it holds, or only print it (``--describe``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from enrichment.database import get_engine
from enrichment.errors import InvalidInput
from enrichment.fulfilment.loading import seed
from enrichment.fulfilment.schema import install_schema
from enrichment.fulfilment.summary import describe


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m enrichment.fulfilment",
        description="Replace the fulfilment demo data with freshly seeded rows and summarise it.",
    )
    parser.add_argument("--records", type=int, default=1000, help="exceptions (default 1000)")
    parser.add_argument("--workspaces", type=int, default=4, help="workspaces (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--describe", action="store_true", help="only summarise what the tables hold now"
    )
    args = parser.parse_args(argv)
    engine = get_engine()
    if args.describe:
        with engine.begin() as connection:
            install_schema(connection)
            print(describe(connection).render())
        return 0
    try:
        summary = seed(engine, records=args.records, workspaces=args.workspaces, seed=args.seed)
    except InvalidInput as err:
        parser.error(str(err))
    print(summary.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
