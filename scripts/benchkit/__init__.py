"""chatd benchmark, the code behind ``scripts/bench`` (``scripts/bench.py`` is its entry point).

One concept per module:

common       constants, user/room/token names, logging, small helpers
plan         what to run: FanSpec, Plan, the sizes for --quick and the default
database     preparing the database before the daemon starts; durable message ids
daemon       the daemon subprocess, its CPU, memory and limits from /proc
clients      the raw-socket clients: FanClient, FanWorker, IdleClient
load         the load-generator processes (worker side) and Workers (parent side)
profiler     py-spy on the daemon (--profile)
phase        one measured fan-out (or latency) phase against a daemon
context      what the scenarios share: options, plan, database, daemons
fanout       the fanout and scaling scenarios, and the cost model
latency      the latency scenario
connections  the connections scenario
persistence  the persistence scenario, /history included
resume       the resume scenario (optional): logins again after a restart, without bcrypt
ircservers   --compare's servers: chatd's IRC listener, ngIRCd and InspIRCd as child processes
ircclients   the IRC clients of the load generator (the same code for every server)
ircload      IRC phases: the workers' side and the parent's measurement
compare      --compare and the IRC scenarios: interleaved rounds, medians, the side-by-side table
report       targets, totals, the table and the profiles
cli          the options and main
"""
