"""The domain core: what an agent type is, where it lives, and how a room finds one."""
