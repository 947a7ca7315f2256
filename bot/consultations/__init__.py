"""Consultations as staff define them: the YAML file format, import, export and links."""
