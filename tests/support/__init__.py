"""Shared test helpers and rigs: builders, seeded worlds, processes, hostile inputs."""
