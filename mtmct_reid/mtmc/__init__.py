"""Multi-camera tracking: the MTMC root (cameras, frames or video, MOTChallenge and AI City boxes),
single-camera tracking, synthetic camera networks as video, and the MTMC metrics."""
