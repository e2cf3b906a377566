"""De-tokenizers: TA-Tok ids -> pixels (Tar's Dif-DTok; AR-DTok comes next).

Both read the same condition, :class:`TATokCondition` (frozen TA-Tok -> decoded features on the
full grid -> projection, with a learned null condition for classifier-free guidance).
"""

from dialect.detok.condition import TATokCondition
from dialect.detok.diffusion import DifDTok, DifDTokConfig, euler_sample

__all__ = ["DifDTok", "DifDTokConfig", "TATokCondition", "euler_sample"]
