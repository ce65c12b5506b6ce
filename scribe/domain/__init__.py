"""The email domain's rules, one module each, shared by every caller (steps, API, clients).

Pure functions and small models: no I/O, no clients, no database. ``names`` (honorifics, author
matching, whether a text names someone), ``papers`` (which of an author's papers to cite),
``placeholders`` (finding and filling ``{{placeholders}}``), ``templates`` (what a valid template
is), ``text`` (output hygiene: machine tells, control characters, titles, URLs), ``sources``
(which research is about the recipient), ``ranking`` (the passages the composer reads, BM25),
``claims`` and ``grounding`` (the checkable claims of a filled value, held against the research).
"""
