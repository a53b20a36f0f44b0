"""What every stage shares: the errors derive raises on purpose (and their exit codes),
messages as catalogue keys with fields (put into words in any language, English for the
command line and the JSON), how numbers are written, the version, and the bookkeeping
that lets a signal wait until the files of a report are all in place.

May import: nothing.
"""
