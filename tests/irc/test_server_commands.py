"""The commands every IRC server has: WHO masks and WHOX, USERHOST, TIME, INFO,
LUSERS peaks, LIST filters, MONITOR, away-notify, OPER, KILL and WALLOPS."""

from __future__ import annotations

from tests.helpers import PASSWORD, ChatServer, Clients
from tests.irc.conftest import IrcFactory


async def test_who_masks_and_whox(irc: IrcFactory) -> None:
    bob = await irc("bob")
    await irc("bobby")
    hidden = await irc("bobcat")
    hidden.send("MODE bobcat +i")
    await hidden.expect("MODE")
    bob.send("WHO bob*")
    rows = await bob.until("315")
    # bobcat is invisible and shares no channel with bob.
    assert [m.params[5] for m in rows if m.command == "352"] == ["bob", "bobby"]
    assert rows[-1].params[1] == "bob*"
    bob.send("JOIN #den")
    await bob.expect("366")
    hidden.send("JOIN #den")
    await hidden.expect("366")
    bob.send("WHO *")
    assert [m.params[5] for m in await bob.until("315") if m.command == "352"] == [
        "bob", "bobby", "bobcat"]
    bob.send("WHO #den %tcnuhfar,42")
    rows = await bob.until("315")
    whox = [m.params[1:] for m in rows if m.command == "354"]
    assert whox == [("42", "#den", "bob", "chatd.local", "bob", "H@", "bob", "bob real"),
                    ("42", "#den", "bobcat", "chatd.local", "bobcat", "H", "bobcat",
                     "bobcat real")]
    bob.send("WHO nobody", "WHO #den o")
    assert [m.command for m in await bob.until("315")] == ["315"]
    assert [m.command for m in await bob.until("315")] == ["315"]


async def test_userhost_time_and_info(server: ChatServer, irc: IrcFactory) -> None:
    await server.services.accounts.create("root", PASSWORD, is_admin=True)
    bob = await irc("bob")
    await irc("root")
    bob.send("AWAY :lunch", "USERHOST bob root nobody")
    await bob.expect("306")
    assert (await bob.expect("302")).params[1] == "bob=-bob@chatd.local root*=+root@chatd.local"
    bob.send("TIME", "INFO")
    assert (await bob.expect("391")).params[1] == "chatd.local"
    info = await bob.until("374")
    assert any("chatd" in m.params[-1] for m in info if m.command == "371")


async def test_lusers_reports_the_peaks(irc: IrcFactory) -> None:
    bob = await irc("bob")
    carol = await irc("carol")
    await irc("dave")
    await carol.close()
    for _ in range(50):  # until the server has seen carol go
        bob.send("LUSERS")
        lines = {m.command: m.params for m in await bob.until("250")}
        if lines["265"][1] == "2":
            break
    # Three users were online at once; two are now.
    assert lines["265"][1:3] == ("2", "3") and lines["266"][1:3] == ("2", "3")
    assert lines["250"][-1].startswith("Highest connection count: 3")


async def test_lusers_counts_operators_and_connections_not_logged_in(
        server: ChatServer, irc: IrcFactory, clients: Clients) -> None:
    root = await server.services.accounts.create("root", PASSWORD, is_admin=True)
    bob = await irc("bob")
    await irc("root")
    await clients.user("root")  # a second connection: still one operator
    await clients.anonymous()
    unregistered = await irc()

    async def lusers() -> dict[str, tuple[str, ...]]:
        bob.send("LUSERS")
        return {m.command: m.params for m in await bob.until("250")}

    lines = await lusers()
    assert lines["252"][1] == "1" and lines["253"][1] == "2"  # the anonymous two
    assert lines["255"][1] == "I have 3 clients and 0 servers"
    await server.services.accounts.set_admin(root, False)
    await unregistered.close()
    for _ in range(50):  # until the server has seen it go
        lines = await lusers()
        if lines["253"][1] == "1":
            break
    assert lines["252"][1] == "0" and lines["253"][1] == "1"


async def test_lusers_counts_invisible_users(irc: IrcFactory, clients: Clients) -> None:
    """251 splits the users online into visible and invisible (+i), as other servers
    do: irssi sets +i on every connection, and was told "0 invisible" all the same.
    A user is invisible while one of its IRC connections is +i."""
    bob = await irc("bob")
    carol = await irc("carol")
    await clients.user("carol")  # carol's line-protocol connection has no +i

    async def luserclient() -> str:
        bob.send("LUSERS")
        return (await bob.expect("251")).params[1]

    assert await luserclient() == "There are 2 users and 0 invisible on 1 servers"
    carol.send("MODE carol +i")
    await carol.expect("MODE")
    bob.send("MODE bob +i")
    await bob.expect("MODE")
    assert await luserclient() == "There are 0 users and 2 invisible on 1 servers"
    carol.send("MODE carol -i")
    await carol.expect("MODE")
    assert await luserclient() == "There are 1 users and 1 invisible on 1 servers"
    carol.send("MODE carol +i")
    await carol.expect("MODE")
    await carol.close()
    for _ in range(50):  # until the server has seen carol's IRC connection go
        counted = await luserclient()
        if "1 invisible" in counted:
            break
    assert counted == "There are 1 users and 1 invisible on 1 servers"


async def test_list_with_elist_filters(irc: IrcFactory) -> None:
    bob = await irc("bob")
    carol = await irc("carol")
    bob.send("JOIN #dev,#devops,#random")
    for _ in range(3):
        await bob.expect("366")
    carol.send("JOIN #dev")
    await carol.expect("366")

    async def listed(query: str) -> list[str]:
        bob.send(f"LIST {query}".strip())
        return [m.params[1] for m in await bob.until("323") if m.command == "322"]

    assert sorted(await listed("")) == ["#dev", "#devops", "#random"]
    assert sorted(await listed("#dev*")) == ["#dev", "#devops"]
    assert await listed(">1") == ["#dev"]
    assert sorted(await listed("<2,!#r*")) == ["#devops"]
    assert await listed("#random") == ["#random"]
    # A bound past any count is above every room's, not ignored.
    huge = "9" * 30
    assert await listed(f">{huge}") == []
    assert sorted(await listed(f"<{huge}")) == ["#dev", "#devops", "#random"]
    assert await listed(f">{'9' * 400}") == []
    # Channels and masks are alternatives (RFC 2812: LIST #a,#b lists both); the
    # other conditions must all hold as well.
    assert sorted(await listed("#dev,#random")) == ["#dev", "#random"]
    assert await listed("#devops,#random,>1") == []
    assert sorted(await listed("#random,#dev*,<2")) == ["#devops", "#random"]
    assert sorted(await listed("*dev*")) == ["#dev", "#devops"]  # a mask without its #


async def test_monitor(irc: IrcFactory, clients: Clients) -> None:
    bob = await irc("bob")
    await irc("carol")
    bob.send("MONITOR + carol,dave")
    assert (await bob.expect("730")).params[1] == "carol!carol@chatd.local"
    assert (await bob.expect("731")).params[1] == "dave"
    dave = await clients.user("dave")
    assert (await bob.expect("730")).params[1] == "dave!dave@chatd.local"
    await dave.close()
    assert (await bob.expect("731")).params[1] == "dave"
    bob.send("MONITOR L")
    assert (await bob.expect("732")).params[1] == "carol,dave"
    await bob.expect("733")
    bob.send("MONITOR - carol", "MONITOR S")
    assert (await bob.expect("731")).params[1] == "dave"
    bob.send("MONITOR C", "MONITOR L", "MONITOR X")
    assert [m.command for m in await bob.until("733")] == ["733"]
    assert (await bob.expect("400")).params[1] == "MONITOR"
    bob.send("MONITOR + " + ",".join(f"n{i}" for i in range(101)))
    assert (await bob.expect("734")).params[1:3] == ("100", "n100")


async def test_monitor_adds_a_nick_once_and_only_nicks(irc: IrcFactory) -> None:
    """IRCv3 monitor: "Targets already in the list MUST NOT be added again", and a
    target "MUST be a valid nick". A nick already watched, or named twice, is not
    told again; a word that is no nick is left out of the list."""
    bob = await irc("bob")
    await irc("carol")
    bob.send("MONITOR + carol,Carol,no!nick,#chan,dave,carol")
    assert (await bob.expect("730")).params[1] == "carol!carol@chatd.local"
    assert (await bob.expect("731")).params[1] == "dave"
    bob.send("MONITOR + CAROL,erin", "MONITOR L")
    assert (await bob.expect("731", "730")).params[1] == "erin"
    assert (await bob.expect("732")).params[1] == "carol,dave,erin"


async def test_away_notify(irc: IrcFactory, clients: Clients) -> None:
    bob = await irc("bob", caps=("away-notify",))
    carol = await irc("carol")
    alice = await clients.user("alice")
    await alice.command("/create den")
    for client in (bob, carol):
        client.send("JOIN #den")
        await client.expect("366")
    carol.send("AWAY :brb")
    assert await bob.expect("AWAY") and bob.lines[-1] == ":carol!carol@chatd.local AWAY :brb"
    await alice.command("/away at lunch")
    assert (await bob.expect("AWAY")).params == ("at lunch",)
    await alice.command("/away")
    assert (await bob.expect("AWAY")).params == ()
    await alice.close()
    assert (await bob.expect("AWAY")).params == ("offline",)
    await clients.user("alice")
    assert (await bob.expect("AWAY")).params == ()


async def test_away_notify_asked_for_after_registration_and_dropped(
        irc: IrcFactory, clients: Clients) -> None:
    bob = await irc("bob")
    alice = await clients.user("alice")
    await alice.command("/create den")
    bob.send("JOIN #den", "CAP REQ :away-notify")
    await bob.expect("366")
    assert (await bob.expect("CAP")).params[1:] == ("ACK", "away-notify")
    await alice.command("/away at lunch")
    assert (await bob.expect("AWAY")).params == ("at lunch",)
    bob.send("CAP REQ :-away-notify", "PING done")
    await bob.expect("PONG")
    await alice.command("/away")
    bob.send("PING again")
    await bob.expect("PONG")
    aways = [line for line in bob.lines if line.split(" ")[1:2] == ["AWAY"]]
    assert aways == [":alice!alice@chatd.local AWAY :at lunch"]  # not the one after -away


async def test_oper_kill_and_wallops(server: ChatServer, irc: IrcFactory,
                                     clients: Clients) -> None:
    await server.services.accounts.create("root", PASSWORD, is_admin=True)
    root = await irc("root")
    bob = await irc("bob")
    bob.send("OPER bob x", "KILL root :no", "WALLOPS :hello")
    await bob.expect("491")
    await bob.expect("481")
    await bob.expect("481")
    root.send("OPER root wrong")
    await root.expect("464")
    root.send(f"OPER root {PASSWORD}")
    assert (await root.expect("MODE")).params == ("root", "+o")
    await root.expect("381")
    root.send("MODE root")
    assert (await root.expect("221")).params[1] == "+o"
    bob.send("MODE bob +w")
    await bob.expect("MODE")
    root.send("WALLOPS :maintenance at noon")
    assert await bob.raw() == ":root!root@chatd.local WALLOPS :maintenance at noon"
    dave = await clients.user("dave")
    root.send("KILL dave :spam", "KILL bob :spam", "KILL nobody :x")
    assert (await dave.next_event())["text"] == "you were disconnected by root: spam"
    lines = await bob.closed()
    assert any(line.startswith("ERROR :Closing Link: bob (Killed (root (spam)))")
               for line in lines)
    assert (await root.expect("401")).params[1] == "nobody"
    entries = await server.services.audit.entries(20)
    assert {(e.action, e.target) for e in entries} >= {("kill", "dave"), ("kill", "bob")}


async def test_oper_with_an_empty_password_is_461_and_no_failed_login(
        server: ChatServer, irc: IrcFactory) -> None:
    """``OPER root :`` gives no password: 461 as OPER without one, never a password
    tried, so more of them than limits.auth_failures (5) leave the failed-login
    buckets as they were and the right password still makes an operator."""
    await server.services.accounts.create("root", PASSWORD, is_admin=True)
    root = await irc("root")
    for _ in range(6):
        root.send("OPER root :")
        assert (await root.expect("461")).params[1:] == ("OPER", "Not enough parameters")
    root.send(f"OPER root {PASSWORD}")
    await root.expect("381")
    entries = await server.services.audit.entries(50)
    assert not [e for e in entries if e.action == "failed-login"]
    assert server.services.stats.login_failures == 0


async def test_ison_answers_which_nicks_are_online(server: ChatServer, irc: IrcFactory,
                                                   clients: Clients) -> None:
    """irssi's /notify (and other clients without MONITOR) polls with ISON every
    minute: a 421 there would be printed at every poll, and nobody ever shown online."""
    await server.services.accounts.create("offline", PASSWORD)
    await clients.user("carol")  # online over the line protocol
    bob = await irc("bob")
    bob.send("ISON :CAROL offline nobody bob", "ISON carol bob")
    first = await bob.expect("303")
    assert first.params == ("bob", "carol bob")
    assert (await bob.expect("303")).params == ("bob", "carol bob")
    bob.send("ISON")
    assert (await bob.expect("461")).params[1] == "ISON"


async def test_version_answers_351_and_isupport(server: ChatServer, irc: IrcFactory) -> None:
    """irssi's /version, and bots identifying the server, send VERSION: 351 with the
    version, then the 005 lines of the welcome (RFC 2812 3.4.3, and the modern
    documents), rather than a 421 the client prints."""
    bob = await irc("bob")
    bob.send("VERSION", "VERSION chatd.local")
    for _ in range(2):
        version = await bob.expect("351", "421")
        assert version.params[:3] == ("bob", f"chatd-{server.services.version}", "chatd.local")
        supported = await bob.until("005")
        assert [m.command for m in supported] == ["005"]
        assert (await bob.read()).command == "005"  # the ISUPPORT tokens take two lines


async def test_away_notify_follows_a_join_of_someone_away(irc: IrcFactory,
                                                           clients: Clients) -> None:
    """away-notify: "clients will be sent an AWAY message ... when a user joins and
    has an away message set" (and none for a user who is not away): a client that
    takes AWAY lines instead of polling WHO showed a user who came in away as here."""
    bob = await irc("bob", caps=("away-notify",))
    bob.send("JOIN #den")
    await bob.expect("366")
    carol = await irc("carol")
    carol.send("AWAY :lunch", "JOIN #den")
    assert (await bob.expect("JOIN")).source.startswith("carol!")
    away = await bob.read()
    assert (away.command, away.params) == ("AWAY", ("lunch",))
    assert away.source.startswith("carol!")
    alice = await clients.user("alice")  # present: her JOIN comes alone
    await alice.command("/join den")
    assert (await bob.expect("JOIN")).source.startswith("alice!")
    bob.send("PING x")
    assert (await bob.read()).command == "PONG"
