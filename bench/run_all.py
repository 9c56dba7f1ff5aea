"""Run every benchmark: the same as ``egokit bench`` (see ``egokit bench --help``), kept for existing scripts.

    python bench/run_all.py [--out runs/bench] [--quick] [--only NAME] [--official-repo PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import egokit  # noqa: F401
except ModuleNotFoundError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from egokit.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["egokit", "bench", *sys.argv[1:]]
    main()
