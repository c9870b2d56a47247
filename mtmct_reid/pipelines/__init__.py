"""Pipelines: the toolkit's stages wired end to end (the demo)."""
