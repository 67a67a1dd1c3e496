"""The README generator, a side wing: it formats the results files and computes none of them (``python -m report``)."""
