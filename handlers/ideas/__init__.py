"""The ideas phase: citizens write statements, vote on each other's, and see where they stand.

- ``entry``: /ideas and the menu;
- ``writing``: a statement written, shown back, checked for near-duplicates and sent;
- ``voting``: one card at a time, reports, volunteering, changing a vote, being told of new ones;
- ``standing``: where the citizen stands, with consensus, division and opinion groups;
- ``decisions``: staff decisions on statements, told to the author and the voters;
- ``rules`` and ``groups``: the plain functions under all of these.
"""
