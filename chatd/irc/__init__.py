"""The IRC listener: a second codec and command table over chatd's domain.

IRC clients reach the same accounts, rooms (as ``#room`` channels),
governance and rate limits as line-protocol clients; nothing here is a second
server. :mod:`chatd.irc.listener` binds the sockets, :mod:`chatd.irc.front`
holds what is IRC-wide (renderer, guests, dispatcher), :mod:`chatd.irc.codec`
frames and parses lines, :mod:`chatd.irc.commands` runs them against the
domain, and :class:`chatd.irc.session.IrcSession` renders what the domain
delivers as IRC lines. See ``docs/IRC.md``.
"""
