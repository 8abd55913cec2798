"""The generative heart G: tokenizer (FSQ), dynamics transformer, MaskGIT sampler."""
