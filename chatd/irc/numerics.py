"""IRC numeric replies, and how chatd's error codes map onto them.

Names follow the modern IRC client protocol document (RFC 1459/2812 plus
the IRCv3 SASL numerics). Each error numeric declares the shape of its
middle parameters (a nick, a channel, a command), so a ``ChatError`` raised
by the domain becomes a well-formed numeric in one place.
"""

from __future__ import annotations

from typing import Final

from chatd.errors import Code

# -- registration ---------------------------------------------------------------
RPL_WELCOME: Final = "001"
RPL_YOURHOST: Final = "002"
RPL_CREATED: Final = "003"
RPL_MYINFO: Final = "004"
RPL_ISUPPORT: Final = "005"
RPL_UMODEIS: Final = "221"
RPL_LUSERCLIENT: Final = "251"
RPL_LUSEROP: Final = "252"
RPL_LUSERUNKNOWN: Final = "253"
RPL_LUSERCHANNELS: Final = "254"
RPL_LUSERME: Final = "255"
RPL_LOCALUSERS: Final = "265"
RPL_GLOBALUSERS: Final = "266"
RPL_STATSCONN: Final = "250"
# -- queries --------------------------------------------------------------------
RPL_AWAY: Final = "301"
RPL_USERHOST: Final = "302"
RPL_ISON: Final = "303"
RPL_WHOWASUSER: Final = "314"
RPL_ENDOFWHOWAS: Final = "369"
RPL_WHOISBOT: Final = "335"
RPL_WHOSPCRPL: Final = "354"
RPL_VERSION: Final = "351"
RPL_INFO: Final = "371"
RPL_ENDOFINFO: Final = "374"
RPL_YOUREOPER: Final = "381"
RPL_TIME: Final = "391"
RPL_MONONLINE: Final = "730"
RPL_MONOFFLINE: Final = "731"
RPL_MONLIST: Final = "732"
RPL_ENDOFMONLIST: Final = "733"
ERR_MONLISTFULL: Final = "734"
RPL_UNAWAY: Final = "305"
RPL_NOWAWAY: Final = "306"
RPL_WHOISUSER: Final = "311"
RPL_WHOISSERVER: Final = "312"
RPL_WHOISOPERATOR: Final = "313"
RPL_ENDOFWHO: Final = "315"
RPL_ENDOFWHOIS: Final = "318"
RPL_WHOISCHANNELS: Final = "319"
RPL_WHOISACCOUNT: Final = "330"
RPL_WHOREPLY: Final = "352"
# -- channels -------------------------------------------------------------------
RPL_LISTSTART: Final = "321"
RPL_LIST: Final = "322"
RPL_LISTEND: Final = "323"
RPL_CHANNELMODEIS: Final = "324"
RPL_CREATIONTIME: Final = "329"
RPL_NOTOPIC: Final = "331"
RPL_TOPIC: Final = "332"
RPL_INVITING: Final = "341"
RPL_NAMREPLY: Final = "353"
RPL_ENDOFNAMES: Final = "366"
RPL_BANLIST: Final = "367"
RPL_ENDOFBANLIST: Final = "368"
# -- MOTD -----------------------------------------------------------------------
RPL_MOTD: Final = "372"
RPL_MOTDSTART: Final = "375"
RPL_ENDOFMOTD: Final = "376"
# -- errors ---------------------------------------------------------------------
ERR_UNKNOWNERROR: Final = "400"
ERR_NOSUCHNICK: Final = "401"
ERR_NOSUCHCHANNEL: Final = "403"
ERR_CANNOTSENDTOCHAN: Final = "404"
ERR_TOOMANYCHANNELS: Final = "405"
ERR_WASNOSUCHNICK: Final = "406"
ERR_TOOMANYTARGETS: Final = "407"
ERR_NOORIGIN: Final = "409"
ERR_INVALIDCAPCMD: Final = "410"
ERR_NORECIPIENT: Final = "411"
ERR_NOTEXTTOSEND: Final = "412"
ERR_INPUTTOOLONG: Final = "417"
ERR_UNKNOWNCOMMAND: Final = "421"
ERR_NOMOTD: Final = "422"
ERR_NONICKNAMEGIVEN: Final = "431"
ERR_ERRONEUSNICKNAME: Final = "432"
ERR_NICKNAMEINUSE: Final = "433"
ERR_USERNOTINCHANNEL: Final = "441"
ERR_NOTONCHANNEL: Final = "442"
ERR_USERONCHANNEL: Final = "443"
ERR_NOTREGISTERED: Final = "451"
ERR_NEEDMOREPARAMS: Final = "461"
ERR_ALREADYREGISTERED: Final = "462"
ERR_PASSWDMISMATCH: Final = "464"
ERR_CHANNELISFULL: Final = "471"
ERR_UNKNOWNMODE: Final = "472"
ERR_NOPRIVILEGES: Final = "481"
ERR_NOOPERHOST: Final = "491"
ERR_INVITEONLYCHAN: Final = "473"
ERR_BANNEDFROMCHAN: Final = "474"
ERR_BADCHANNELKEY: Final = "475"
ERR_BADCHANMASK: Final = "476"
ERR_NEEDREGGEDNICK: Final = "477"
ERR_CHANOPRIVSNEEDED: Final = "482"
ERR_RESTRICTED: Final = "484"
ERR_UMODEUNKNOWNFLAG: Final = "501"
ERR_USERSDONTMATCH: Final = "502"
# <channel> <mode char> <parameter> :<why>: a mode's parameter is refused (modern docs).
ERR_INVALIDMODEPARAM: Final = "696"
# -- SASL (IRCv3) ---------------------------------------------------------------
RPL_LOGGEDIN: Final = "900"
RPL_SASLSUCCESS: Final = "903"
ERR_SASLFAIL: Final = "904"
ERR_SASLTOOLONG: Final = "905"
ERR_SASLABORTED: Final = "906"
ERR_SASLALREADY: Final = "907"
RPL_SASLMECHS: Final = "908"

# The middle parameters (after the client's nick) each error numeric carries:
# "nick" and "channel" come from what the command was about, "command" is the verb.
SHAPES: Final[dict[str, tuple[str, ...]]] = {
    ERR_UNKNOWNERROR: ("command",),
    ERR_NOSUCHNICK: ("nick",),
    ERR_NOSUCHCHANNEL: ("channel",),
    ERR_CANNOTSENDTOCHAN: ("channel",),
    ERR_TOOMANYCHANNELS: ("channel",),
    ERR_UNKNOWNCOMMAND: ("command",),
    ERR_ERRONEUSNICKNAME: ("nick",),
    ERR_NICKNAMEINUSE: ("nick",),
    ERR_WASNOSUCHNICK: ("nick",),
    ERR_USERNOTINCHANNEL: ("nick", "channel"),
    ERR_NOTONCHANNEL: ("channel",),
    ERR_USERONCHANNEL: ("nick", "channel"),
    ERR_NEEDMOREPARAMS: ("command",),
    ERR_INVITEONLYCHAN: ("channel",),
    ERR_CHANNELISFULL: ("channel",),
    ERR_BADCHANNELKEY: ("channel",),
    ERR_BANNEDFROMCHAN: ("channel",),
    ERR_BADCHANMASK: ("channel",),
    ERR_NEEDREGGEDNICK: ("channel",),
    ERR_CHANOPRIVSNEEDED: ("channel",),
}

# How a domain error reads in IRC when the command does not say otherwise.
# Anything else (bad-arguments, internal-error ...) is ERR_UNKNOWNERROR with
# the domain's sentence.
ERRORS: Final[dict[Code, str]] = {
    Code.NO_SUCH_USER: ERR_NOSUCHNICK,
    Code.NO_SUCH_ROOM: ERR_NOSUCHCHANNEL,
    Code.NOT_IN_ROOM: ERR_NOTONCHANNEL,
    Code.NOT_PERMITTED: ERR_CHANOPRIVSNEEDED,
    Code.BANNED: ERR_BANNEDFROMCHAN,
    Code.MUTED: ERR_CANNOTSENDTOCHAN,
    Code.ALREADY_IN_ROOM: ERR_USERONCHANNEL,
    Code.INVALID_NAME: ERR_BADCHANMASK,
    Code.AUTH_FAILED: ERR_PASSWDMISMATCH,
    Code.E2E_REQUIRED: ERR_CANNOTSENDTOCHAN,
    Code.MODERATED: ERR_CANNOTSENDTOCHAN,
    Code.BAD_ROOM_KEY: ERR_BADCHANNELKEY,
    Code.ROOM_FULL: ERR_CHANNELISFULL,
}


class IrcError(Exception):
    """A refusal stated as an IRC numeric: its code, then its parameters after
    the client's nick (the last one is the human text)."""

    def __init__(self, numeric: str, *params: str) -> None:
        super().__init__(numeric, *params)
        self.numeric = numeric
        self.params = params
