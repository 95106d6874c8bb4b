"""Keep library chatter (bitsandbytes kernel hints, transformers config warnings) off stderr."""

from __future__ import annotations

import logging
import warnings

from transformers.utils import logging as hf_logging


def quiet_libraries() -> None:
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
