"""``python -m aescot.integrations verl|easyr1|easyr1-prompt``: print the file a trainer's config points at."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = {
    "verl": HERE / "verl_reward.py",
    "easyr1": HERE / "easyr1_reward.py",
    "easyr1-prompt": HERE / "easyr1_format_prompt.jinja",
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in FILES:
        print(f"usage: python -m aescot.integrations {{{'|'.join(FILES)}}}", file=sys.stderr)
        return 2
    print(FILES[argv[0]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
