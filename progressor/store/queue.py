"""The review queue filtered and a page at a time: what `progressor review` and
GET /v1/review show. Who waits, and why, is `Results.review_queue`'s business; this module only
chooses among its items, so that the command line and the HTTP API list the same patients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from progressor.errors import StoreError, did_you_mean
from progressor.store.values import ReviewItem

#: paused: the program or an exercise is paused (a resume settles it); flagged: the others
#: (flags, an alert of the week under way, a failed recompute: a look settles them).
QueueStatus = Literal["paused", "flagged"]
QUEUE_STATUSES: tuple[QueueStatus, ...] = get_args(QueueStatus)


@dataclass(frozen=True)
class ReviewPage:
    """One page of the queue's items that match the filters, and how many match in all."""

    items: tuple[ReviewItem, ...]
    total: int
    offset: int
    limit: int | None

    @property
    def next_offset(self) -> int | None:
        """The offset of the next page, or None on the last one."""
        end = self.offset + len(self.items)
        return end if end < self.total else None


def select(
    queue: Sequence[ReviewItem],
    *,
    status: str | None = None,
    program: str | None = None,
    flag: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> ReviewPage:
    """The items of `queue` (in its order) that match every filter given, from `offset`,
    at most `limit`. `flag` matches a flag's code or rule, or an alert's rule."""
    if status is not None and status not in QUEUE_STATUSES:
        hint = did_you_mean(status, QUEUE_STATUSES)
        raise StoreError(
            f"unknown status {status!r}"
            + (f" ({hint})" if hint else "")
            + f"; statuses: {', '.join(QUEUE_STATUSES)}"
        )
    if offset < 0 or (limit is not None and limit < 1):
        raise StoreError("the offset is 0 or more, the limit 1 or more")
    matching = [
        item
        for item in queue
        if (status is None or item.paused == (status == "paused"))
        and (program is None or item.program == program)
        and (flag is None or flag in item.flags)
    ]
    end = None if limit is None else offset + limit
    return ReviewPage(tuple(matching[offset:end]), len(matching), offset, limit)


def item_json(item: ReviewItem) -> dict[str, object]:
    """A queue item as JSON: the same fields on the command line and over HTTP."""
    return {
        "patient": item.patient,
        "program": item.program,
        "week": item.week,
        "status": item.status,
        "paused": item.paused,
        "flags": list(item.flags),
        "reasons": list(item.reasons),
        "pending": item.pending,
    }


def page_json(page: ReviewPage) -> dict[str, object]:
    return {
        "items": [item_json(item) for item in page.items],
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
        "next_offset": page.next_offset,
    }
