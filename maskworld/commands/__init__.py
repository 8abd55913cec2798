# Each command module keeps torch, the models and the training code inside its `run`: `maskworld --help`
# imports every command module to build its parser, and must not wait for those imports.
