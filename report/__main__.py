"""``python -m report [--profile full|cpu]``: regenerate the README's numbers (see ``report.readme``)."""

import argparse

from helpers.config import get_config
from report.data import README, REPORT_PROFILES, report_profile
from report.readme import answer_figure, render

parser = argparse.ArgumentParser(prog="python -m report",
                                 description="Regenerate the README's numbers from one profile's results.")
parser.add_argument("--profile", choices=REPORT_PROFILES, help="default: the first complete of full, cpu")
config = get_config(report_profile(parser.parse_args().profile))
answer_figure(config)
README.write_text(render(README.read_text(), config))
print(f"README.md regenerated from results/{config.profile}/")
