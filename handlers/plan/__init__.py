"""The content plan: planned posts, phases that run themselves, results."""
