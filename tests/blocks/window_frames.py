"""Stimulus shared by the window generators' tests (line_buffer, frame_buffer)."""
import numpy as np


def random_frames(params, count, seed):
    """Random frames with the extreme values in them: a row of all-ones, a row of zeros."""
    rng = np.random.default_rng(seed)
    top = (1 << params["abits"]) - 1
    frames = rng.integers(0, top + 1, size=(count, params["height"], params["width"],
                                            params["channels"]))
    frames[0, 0] = top
    frames[-1, -1] = 0
    return frames
