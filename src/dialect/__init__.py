"""dialect: vision as a dialect of language.

Text-aligned image tokenizers, de-tokenizers back to pixels, and one autoregressive model that
understands and generates images, with the training code for every piece. See README.md for the
map of the package; layers import only from the layers above them (core -> world -> data ->
encoders -> quant -> tokenizers -> detok -> lm -> unified -> eval -> train -> cli).
"""

__version__ = "0.1.0"
