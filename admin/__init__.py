"""Entry points for people: the ``ryla`` command line (one module per command group) and the
media endpoint that Instagram fetches images from.
"""
