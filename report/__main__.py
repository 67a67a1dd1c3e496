"""``python -m report``: regenerate the README's numbers (see ``report.readme``)."""

from report.readme import main

main()
