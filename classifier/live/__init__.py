"""The live page: the active model runs in the browser on camera frames.

The server hands out the model (by version, cached for ever), the page and
its service worker, and stores the frames a user decides to keep.
"""
