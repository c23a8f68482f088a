"""Configuration: the profile, its schema, the targets, paths and units."""
