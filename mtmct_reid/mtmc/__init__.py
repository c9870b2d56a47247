"""Multi-camera tracking.

* :mod:`~mtmct_reid.mtmc.root` — the MTMC root (``cameras.csv``, ``img1/`` frames or a video,
  MOTChallenge ``gt``/``det``/``tracks`` files, AI City files) as columnar :class:`Boxes`, common-clock
  times, a frame reader and a batched crop reader; it re-exports the three modules it is built on:
  :mod:`~mtmct_reid.mtmc.boxes` (``Camera``, ``Boxes``), :mod:`~mtmct_reid.mtmc.textfiles`
  (``cameras.csv``, MOTChallenge and AI City files) and :mod:`~mtmct_reid.mtmc.frames` (frame
  files, video decoding and writing, crops);
* :mod:`~mtmct_reid.mtmc.metrics` — per-camera and network IDF1/IDP/IDR, MOTA, HOTA and MCTA
  (``track-eval``; :func:`~mtmct_reid.mtmc.metrics.evaluate_tracks`);
* :mod:`~mtmct_reid.mtmc.sct` — ByteTrack per camera (``track-sct``;
  :func:`~mtmct_reid.mtmc.sct.track_camera`, :func:`~mtmct_reid.mtmc.sct.track_root`);
* :mod:`~mtmct_reid.mtmc.synth_video` — the synthetic network as video (``synth --video``);
* :mod:`~mtmct_reid.mtmc.summary` — ``dataset info ROOT``, preview frames, ``dataset crops``.
"""
