"""Deliver the outbox: send due alerts through their channels and record what happened.

send.py runs a delivery pass (one sender thread per channel; sent, retry or failed),
retry.py decides when a failed send is tried again, message.py builds what a channel shows
from the stored alert, render.py turns that into text, HTML and e-mail, and channels.py maps
a channel type to its module (console, eml, email, webhook, apprise). This package may
import the store and the kernel only: it renders what was stored (snippets included) and
never runs the matcher.
"""
