"""Files in the official HiFi-GAN format, written the way its train.py writes them."""

from __future__ import annotations

import os

from vestnik.errors import VestnikError
from vestnik.training import save_atomic
from vestnik.vocoder.models import Generator


def save_official(model: Generator, path: str | os.PathLike) -> None:
    """Write `{'generator': state_dict}` with weight norm, as the official train.py does."""
    if not model.has_weight_norm:
        raise VestnikError("the official format keeps weight norm; save before removing it")
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    save_atomic(path, {"generator": state})
