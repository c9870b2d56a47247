"""Dataset layouts, as a registry: each turns a dataset on disk into
:class:`~mtmct_reid.data.records.Records`.

One entry point, :func:`read_dataset`, reads any registered layout (detected from the folder, or named):

* ``market1501``: ``bounding_box_train`` / ``query`` / ``bounding_box_test``, names
  ``0002_c1s1_000451_03.jpg`` (id, camera, session, frame in session, box). Times are global frames per
  camera (:func:`~mtmct_reid.data.market_time.market_global_time`).
* ``dukemtmc``: the same folders, names ``0005_c2_f0046985.jpg`` (id, camera, global frame).
* ``msmt17``: ``train/`` and ``test/`` with ``list_train.txt`` (+ optional ``list_val.txt``),
  ``list_query.txt``, ``list_gallery.txt``.
* ``regex``: any names, parsed by a user pattern with named groups ``pid``, ``cam`` and optional ``time``.
* ``manifest``: a CSV file ``path,pid,camera,time,split``.

A camera network of your own is one more class: subclass :class:`Layout` and decorate it with
:func:`register_layout`; ``--layout NAME`` then reads it and detection asks it too.

Person ids: ``-1`` junk and ``0`` distractor (never a true match), real people ``> 0``; every layout
follows it (lower ids are refused).
"""

from __future__ import annotations

# The built-in layouts register themselves on import.
from mtmct_reid.data.layouts import manifest, market, msmt17, regex  # noqa: F401
from mtmct_reid.data.layouts.base import IMAGE_EXTENSIONS, Layout, list_images
from mtmct_reid.data.layouts.registry import (
    LAYOUTS,
    available_layouts,
    detect_layout,
    get_layout,
    read_dataset,
    register_layout,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "Layout",
    "available_layouts",
    "detect_layout",
    "get_layout",
    "list_images",
    "read_dataset",
    "register_layout",
]
