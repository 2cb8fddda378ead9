"""Cluster mode: several nodes share every room through Redis and PostgreSQL.

A layer beside the composition root (``chatd.app`` imports it, it imports the
layers below it): each module implements one of the domain's seams over shared
state. It is imported only when ``cluster.enabled`` and ``cluster.redis`` are
set, so the embedded daemon never loads the Redis client. See docs/CLUSTER.md.
"""
