"""Agents in the dream: the world as a Gymnasium env, a batched vector env, actor-critic.

    import gymnasium as gym, maskworld
    env = gym.make("maskworld/Dream-v0", world="maskworld/worlds/default", max_episode_steps=100)
    envs = gym.make_vec("maskworld/Dream-v0", num_envs=64, world=...)   # one batched forward pass per step

`import maskworld` registers `maskworld/Dream-v0` with `gymnasium.register` and entry-point strings, so
torch and the env modules load only when an env is made (see maskworld/__init__.py).
"""

ENV_ID = "maskworld/Dream-v0"
