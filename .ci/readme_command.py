"""Print one of the README's two opening commands: `main` (install, run the main job) or `test`.

.ci/run runs the `test` line exactly as a reader would type it."""
import re
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
lines = re.search(r"^```bash\n(.*?)^```", README, re.S | re.M).group(1).strip().splitlines()
print(lines[{"main": 0, "test": 1}[sys.argv[1]]])
