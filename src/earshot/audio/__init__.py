"""Audio frames, file I/O and resampling."""
