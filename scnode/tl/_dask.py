"""Optional Dask scale-out of the tools: one task per independent fit (``distributed`` is imported lazily)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..core import FitInterrupted

if TYPE_CHECKING:
    from distributed import Client


@contextmanager
def dask_client(client: Client | str | None) -> Iterator[Client | None]:
    """Yield a :class:`distributed.Client` for ``client`` (a client or a scheduler address), or ``None`` for ``None``.

    A client made here from an address is closed on exit; a given one is left open. Used before any
    work starts, so a missing ``distributed`` or a wrong address fails at once.
    """
    if client is None:
        yield None
        return
    try:
        import distributed
    except ImportError as err:
        raise ImportError(
            "client= needs Dask's distributed scheduler, which is not installed: pip install scnode[dask]"
        ) from err
    if isinstance(client, str):
        with distributed.Client(client) as opened:
            yield opened
        return
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client or a scheduler address, got {type(client).__name__}.")
    yield client


def _call(fn: Callable, item: Any, shared: tuple) -> Any:
    """Run one task: ``fn(item, *shared)``."""
    return fn(item, *shared)


def map_tasks(
    fn: Callable,
    items: Sequence[Any],
    shared: tuple,
    client: Client | None = None,
    *,
    label: str = "tasks",
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """Return ``[fn(item, *shared) for item in items]``, computed here or as one Dask task per item.

    With a client, ``shared`` (the AnnData, trajectories and settings every task needs) is sent to
    the cluster once with :meth:`distributed.Client.scatter`; ``fn`` must be importable on the
    workers (they need scnode installed). Results come back in the order of ``items``. On the first
    failing task the others are cancelled and its error is raised here. A fit interrupted here
    (Ctrl-C) stops them all; its message counts the ``label`` (e.g. ``"fits"``) that were complete,
    and gives no advice on checkpoints (the tasks would share one file). ``on_result`` is called
    with each result as its task ends (in the order they end), e.g. to report progress; what it
    returns, when not ``None``, is kept in place of the result (e.g. a large fit written to disk).
    """
    if client is None:
        results = []
        for item in items:
            try:
                result = fn(item, *shared)
                kept = None if on_result is None else on_result(result)
                results.append(result if kept is None else kept)
                del result
            except FitInterrupted as err:
                err.add_context(
                    f"{len(results)} of {len(items)} {label} were complete (none is returned).", resumable=False
                )
                raise
        return results
    # a one-element list: the tuple travels whole, as one piece of data (scatter splits sequences)
    [data] = client.scatter([shared], hash=False)
    futures = [client.submit(_call, fn, item, data, pure=False) for item in items]
    try:
        if on_result is None:
            return client.gather(futures)
        from distributed import as_completed

        results = {}  # each result fetched once, as its task ends; returned in the order of items
        for future, result in as_completed(futures, with_results=True):
            kept = on_result(result)
            results[future.key] = result if kept is None else kept
        return [results[f.key] for f in futures]
    except BaseException:
        client.cancel(futures)
        raise
