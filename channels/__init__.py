"""Channels: ways into the agents besides a LiveKit frontend (README: Channels).

Each conversation is a LiveKit room the channel joins as the user (channels/room.py), so every
agent type works unchanged; channels/hub.py is what they share, each kind registers itself in
channels/registry.py, and `python -m channels serve` (channels/service.py) runs them all.
"""
