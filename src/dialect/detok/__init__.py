"""De-tokenizers: TA-Tok ids -> pixels, Tar's AR-DTok and Dif-DTok.

Both read the same condition, :class:`TATokCondition` (frozen TA-Tok -> decoded features on the
full grid -> projection, with a learned null condition for classifier-free guidance).
`DECODERS` names them for the CLI and the pipeline ("ar", "diffusion").
"""

from dialect.detok.ar import ARDTok, ARDTokConfig
from dialect.detok.condition import TATokCondition
from dialect.detok.diffusion import DifDTok, DifDTokConfig, euler_sample

DECODERS: dict[str, type] = {"ar": ARDTok, "diffusion": DifDTok}

__all__ = ["DECODERS", "ARDTok", "ARDTokConfig", "DifDTok", "DifDTokConfig", "TATokCondition", "euler_sample"]
