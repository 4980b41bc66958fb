"""`python -m dtlgen.isa [--check]`: render the engines' descriptor decoders from the spec into their sources."""

from __future__ import annotations

import sys

from dtlgen.isa.render import stale, write


def main(argv: list[str]) -> int:
    if "--check" in argv:
        names = stale()
        print("decoders follow the spec" if not names else "stale decode regions: " + ", ".join(names))
        return 1 if names else 0
    names = write()
    print("rewrote: " + ", ".join(names) if names else "decoders already follow the spec")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
