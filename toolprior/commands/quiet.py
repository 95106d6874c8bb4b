"""Keep library chatter (bitsandbytes kernel hints, transformers config warnings) off stderr: toolprior/cli.py calls
`quiet_libraries` before it imports a command that sets `quiet_libraries=True` in its options, so the chatter of the
imports themselves is kept off too."""

from __future__ import annotations

import logging
import warnings


def quiet_libraries() -> None:
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    # lazy: the command line imports this module for --help too, which must not load transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
