"""Tokenizers: images <-> discrete ids (TA-Tok; the pixel VQ comes with the de-tokenizers)."""
