"""Training loops: tokenizer, dynamics, and the whole world pipeline. No framework: plain loops."""
