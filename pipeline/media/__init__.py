"""Media: Instagram renditions (framing, colour, JPEG with the AI label), storage of files, and
the signed, expiring public URLs Instagram fetches them from.
"""
