"""Neural building blocks shared by every model (the transformer core is written once, here).

Sits right below `core` in the layer order, so encoders, tokenizers, de-tokenizers and the LM can
all use it.
"""
