"""The rules of the wire, with no I/O: what a request asks of the cache, how its key is made,
what differs between providers, how a stream is framed, what `Cache-Status` says, what
the policy rules decide for a request, and what tells a replay miss from its nearest recording.

Each module here decides from values alone (headers, a parsed body, recorded bytes), so
each can be tested without HTTP, and the data path in `proxy` only calls them.
"""
