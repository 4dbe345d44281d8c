"""Stored records: events and their queries; the registry of orgs, keys, devices, products."""
