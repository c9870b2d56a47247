"""Dataset readers, the public facade: every name here lives in :mod:`mtmct_reid.data.layouts` (the
registry of layouts and the readers of each) or :mod:`mtmct_reid.data.summary`.

``read_dataset`` reads any registered layout (``market1501``, ``dukemtmc``, ``msmt17``, ``regex``,
``manifest``, and any you register with :func:`~mtmct_reid.data.layouts.register_layout`).
"""

from __future__ import annotations

import os

from mtmct_reid.data.layouts import (
    IMAGE_EXTENSIONS,
    LAYOUTS,
    Layout,
    available_layouts,
    detect_layout,
    list_images,
    read_dataset,
    register_layout,
)
from mtmct_reid.data.layouts.manifest import (
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    read_manifest,
    write_manifest,
)
from mtmct_reid.data.layouts.market import MARKET_FOLDERS, parse_image_names
from mtmct_reid.data.layouts.msmt17 import MSMT17_SLOT_FRAMES
from mtmct_reid.data.records import Records
from mtmct_reid.data.summary import dataset_summary, format_summary

__all__ = [
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "MARKET_FOLDERS",
    "MSMT17_SLOT_FRAMES",
    "Layout",
    "available_layouts",
    "dataset_summary",
    "detect_layout",
    "format_summary",
    "list_images",
    "parse_image_names",
    "read_dataset",
    "read_dukemtmc",
    "read_manifest",
    "read_market1501",
    "read_msmt17",
    "read_regex",
    "register_layout",
    "write_manifest",
]


def read_market1501(root: str | os.PathLike) -> Records:
    """``read_dataset(root, layout="market1501")``: see
    :class:`~mtmct_reid.data.layouts.market.Market1501`."""
    return read_dataset(root, layout="market1501")


def read_dukemtmc(root: str | os.PathLike) -> Records:
    """``read_dataset(root, layout="dukemtmc")``: see
    :class:`~mtmct_reid.data.layouts.market.DukeMTMC`."""
    return read_dataset(root, layout="dukemtmc")


def read_msmt17(root: str | os.PathLike) -> Records:
    """``read_dataset(root, layout="msmt17")``: see :class:`~mtmct_reid.data.layouts.msmt17.MSMT17`."""
    return read_dataset(root, layout="msmt17")


def read_regex(root: str | os.PathLike, pattern: str) -> Records:
    """``read_dataset(root, layout="regex", pattern=pattern)``: see
    :class:`~mtmct_reid.data.layouts.regex.Regex`."""
    return read_dataset(root, layout="regex", pattern=pattern)
