"""One-hop expansion of search hits through the configured relationships.

A relation declared on a source (``related:`` in the configuration) links two searchable
sources when its table is itself a configured source: a support message leads to its customer
(forwards) and a customer to its support messages (backwards). Relations to tables that are not
sources enrich the text of the records (the context stage) but lead to nothing searchable.

The links are followed in the source tables, as the configuration joins them; every record
found must also belong to the hit's workspace there, and is then read from the vector table
under the same workspace filter and row-level security as the hits themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from psycopg import Cursor
from sqlalchemy import Engine

from enrichment.config import EnrichConfig, RelatedEntity, SourceConfig
from enrichment.source_tables import check_source, quote


@dataclass(frozen=True)
class Link:
    """From records of ``origin`` to records of ``target`` through ``relation``, declared on
    ``owner`` (the origin when read forwards, the target when read backwards)."""

    origin: SourceConfig
    target: SourceConfig
    owner: SourceConfig
    relation: RelatedEntity
    forwards: bool

    @property
    def origin_column(self) -> str:
        join = self.relation.join
        return join.local if self.forwards else join.remote

    @property
    def target_column(self) -> str:
        join = self.relation.join
        return join.remote if self.forwards else join.local

    @property
    def name(self) -> str:
        """How results name the path: ``customer`` forwards, ``tickets.customer`` backwards."""
        return self.relation.name if self.forwards else f"{self.owner.name}.{self.relation.name}"

    def sql(self, origin_key_type: str) -> str:
        """(hit key, related key) pairs, at most ``per_hit`` per hit, all in the workspace."""
        origin, target = self.origin, self.target
        return (
            f"SELECT h.{quote(origin.key_column)}::text AS hit_key, n.related_key "
            f"FROM {quote(origin.table)} AS h CROSS JOIN LATERAL ("
            f"SELECT r.{quote(target.key_column)}::text AS related_key "
            f"FROM {quote(target.table)} AS r "
            f"WHERE r.{quote(self.target_column)} = h.{quote(self.origin_column)} "
            f"AND r.{quote(target.workspace_column)}::text = %(workspace)s "
            f"ORDER BY r.{quote(target.key_column)} LIMIT %(per_hit)s) AS n "
            f"WHERE h.{quote(origin.key_column)} = "
            f"ANY(CAST(CAST(%(keys)s AS text[]) AS {origin_key_type}[])) "
            f"AND h.{quote(origin.workspace_column)}::text = %(workspace)s"
        )


@dataclass(frozen=True)
class Neighbour:
    """A record one hop from a hit."""

    source: str
    record_key: str
    hit_source: str
    hit_key: str
    link: str


def links(config: EnrichConfig) -> list[Link]:
    """Every link between configured sources, both ways."""
    found = []
    for owner in config.sources:
        for relation in owner.related:
            for target in config.sources:
                if target.table != relation.table:
                    continue
                found.append(Link(owner, target, owner, relation, forwards=True))
                found.append(Link(target, owner, owner, relation, forwards=False))
    return found


class Expander:
    def __init__(self, engine: Engine, config: EnrichConfig) -> None:
        self.engine = engine
        self.links = links(config)

    @cached_property
    def _key_types(self) -> dict[str, str]:
        """SQL type of each linked source's key, so hits are matched through its index."""
        with self.engine.connect() as connection:
            return {
                source.name: check_source(connection, source, relations=())
                for source in {link.origin.name: link.origin for link in self.links}.values()
            }

    def neighbours(
        self,
        cursor: Cursor[dict[str, Any]],
        workspace: str,
        hits: Sequence[tuple[str, str]],
        *,
        per_hit: int,
    ) -> list[Neighbour]:
        """Records one hop from the hits (source, key), in hit order, each hit's neighbours by
        key; a record reached twice is listed once, from its first hit."""
        keys_by_source: dict[str, list[str]] = {}
        for source, key in hits:
            keys_by_source.setdefault(source, []).append(key)
        found: dict[tuple[str, str], list[Neighbour]] = {}
        for link in self.links:
            keys = keys_by_source.get(link.origin.name)
            if not keys:
                continue
            cursor.execute(
                link.sql(self._key_types[link.origin.name]),
                {"keys": keys, "workspace": workspace, "per_hit": per_hit},
            )
            for row in cursor.fetchall():
                hit = (link.origin.name, row["hit_key"])
                found.setdefault(hit, []).append(
                    Neighbour(link.target.name, row["related_key"], *hit, link.name)
                )
        return _first_reached(found.get(hit, []) for hit in hits)


def _first_reached(groups: Iterable[list[Neighbour]]) -> list[Neighbour]:
    seen: set[tuple[str, str]] = set()
    ordered = []
    for group in groups:
        for neighbour in sorted(group, key=lambda n: (n.link, n.source, n.record_key)):
            place = (neighbour.source, neighbour.record_key)
            if place not in seen:
                seen.add(place)
                ordered.append(neighbour)
    return ordered
