#!/usr/bin/env python3
"""chatd benchmark: the daemon as a subprocess on loopback, driven by a load generator.

    scripts/bench [--quick] [--only fanout,latency,...] [--json-only] [--procs N]
                  [--window W] [--profile DIR] [--keep] [--max-time SECONDS]
                  [--compare [--servers chatd,ngircd,inspircd] [--rounds N]]
                  [--load closed,paced]

The daemon runs as ``python -m chatd serve`` with a benchmark configuration
(rate limits raised, bcrypt cost 4, port 0 on 127.0.0.1). The database is
prepared beforehand through ``storage.sqlite.SqliteStorage``: users with one
precomputed bcrypt hash, rooms, memberships and (for /history) a room with a
million messages. The load generator runs in separate processes
(multiprocessing, ``--procs``), each one asyncio loop holding many raw-socket
clients that speak the JSON format and verify every message they receive.

Server CPU is the daemon's utime+stime from ``/proc/<pid>/stat`` read around
each measured phase (all its threads, SQLite writer included), so the load
generator's share of the machine does not distort the per-CPU-second figures.

Scenarios (``--only`` takes a comma-separated subset; ws runs only when named):

fanout       C clients over R rooms, S senders x M messages, each sender keeping
             at most W messages unacknowledged (its own echo is the ack).
latency      paced senders (10 x 100 msg/s into a room of 100 = 100k deliveries/s);
             the send time (CLOCK_MONOTONIC, system-wide) travels in the text.
connections  N idle logged-in connections: connect+login rate, server RSS per connection.
persistence  durable messages/s under fan-out, and the cost of persistence
             (same fan-out with the batched writer held off), plus /history 50
             latency on a room with 1,000,000 stored messages.
scaling      deliveries per server CPU-second for rooms of 10, 100, 1000 members.
ws           the web listener: the same fan-out over TCP and over /ws in one daemon
             (deliveries per server CPU-second of each), then idle logged-in
             WebSockets (server RSS per connection). Not run by default.
resume       (only with --only) 1,000 clients log in again with resume tokens after a
             restart, against password logins at the default bcrypt cost (12).

--compare runs the IRC scenarios (room100, rooms10, pairs, dm, room1000, logins)
against chatd's IRC listener, ngIRCd and InspIRCd (Debian's packages, each
configured by the benchmark in the work directory), interleaved over --rounds,
closed loop and paced, and prints chatd's figures beside theirs with ratios.
Named in --only without --compare, those scenarios run against chatd alone.

Output: a table (unless --json-only), then one JSON line on stdout. The exit
status is 0 when every scenario ran with zero loss, zero reordering and no
error reply; the performance targets are reported, never enforced.

The code lives in the ``benchkit`` package beside this script (see its
``__init__``); this file is the entry point that ``scripts/bench`` runs.
"""

from __future__ import annotations

import sys

from benchkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
