"""Table-level lineage from the Dagster asset graph, for assets whose SQL sqlglot cannot read."""

from __future__ import annotations


def table_lineage(table: str) -> dict | None:
    """{"table", "upstream": [[direct parents], [their parents], ...]} or None if no such asset."""
    import dagster as dg

    from .definitions import defs

    graph = defs.resolve_asset_graph()
    key = dg.AssetKey(table.split("."))
    if key not in graph.get_all_asset_keys():
        return None
    levels, seen, frontier = [], {key}, {key}
    while frontier:
        parents = {p for k in frontier for p in graph.get(k).parent_keys} - seen
        if not parents:
            break
        levels.append(sorted(".".join(p.path) for p in parents))
        seen |= parents
        frontier = parents
    return {"table": table, "upstream": levels}
