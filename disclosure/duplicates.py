"""Likely duplicates of a report, by similarity of title, asset and text.

PostgreSQL: weighted full-text search (title and asset weigh most), no extension needed.
Other databases: word overlap (Jaccard) over title and asset of recent reports.
"""

import re

from django.db import connection

from disclosure.models import Report
from disclosure.pgp import sealing

WORD = re.compile(r"[a-z0-9][a-z0-9._-]{2,}")
STOP = {"the", "and", "for", "with", "via", "from", "into", "that", "this", "https", "http", "www"}
SQLITE_CANDIDATES = 2000


def _words(*texts) -> set[str]:
    return {w for text in texts for w in WORD.findall((text or "").lower()) if w not in STOP}


def likely_duplicates(report: Report, limit: int = 5) -> list[Report]:
    words = _words(report.title, report.asset)
    if not words:
        return []
    others = Report.objects.exclude(pk=report.pk).only("pk", "tracking_id", "title", "asset", "status")
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

        vector = SearchVector("title", weight="A", config="simple") + SearchVector("asset", weight="A",
                                                                                  config="simple")
        if not sealing.sealing_enabled():  # sealed descriptions are ciphertext: nothing to match
            vector += SearchVector("description", weight="C", config="simple")
        query = None
        for word in sorted(words)[:20]:
            term = SearchQuery(word, config="simple")
            query = term if query is None else query | term
        ranked = others.annotate(rank=SearchRank(vector, query)).filter(rank__gt=0.05).order_by("-rank", "-pk")
        return list(ranked[:limit])
    scored = []
    for other in others.order_by("-received_at")[:SQLITE_CANDIDATES]:
        theirs = _words(other.title, other.asset)
        overlap = len(words & theirs) / len(words | theirs) if theirs else 0
        if overlap >= 0.25:
            scored.append((overlap, other.pk, other))
    scored.sort(key=lambda item: (-item[0], -item[1]))
    return [other for _, _, other in scored[:limit]]
