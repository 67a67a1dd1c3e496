"""The decoder-only student (notebook 06), a side wing: its training, its offline stand-in model, its tables."""
