"""GET /v1/review: the review queue, filtered and a page at a time (`Store.review_page`, as
`progressor review` shows it), with the total and a link to the next page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from progressor.core.models import Status
from progressor.serve.auth import requires
from progressor.serve.stored import opened
from progressor.serve.tokens import TokenEntry
from progressor.store.queue import QueueStatus

router = APIRouter(prefix="/v1", tags=["review"])
Reader = Annotated[TokenEntry, Depends(requires("read"))]
#: A page's default and greatest size: a page is one answer, bounded like a request.
LIMIT, MAX_LIMIT = 50, 500


class ReviewEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient: str
    program: str
    week: int = Field(description="The newest computed week (0: never computed).")
    status: Status
    paused: bool = Field(description="The program or an exercise is paused: a resume settles it.")
    flags: list[str] = Field(description="The codes and rules of its flags and alerts.")
    reasons: list[str]
    pending: bool = Field(description="Records or actions arrived since it was computed.")


class ReviewQueue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ReviewEntry]
    total: int = Field(description="How many match the filters, on every page.")
    offset: int
    limit: int
    next: str | None = Field(description="The next page's path and query (None: the last).")


@router.get("/review", response_model=ReviewQueue)
def review(
    request: Request,
    _: Reader,
    status: Annotated[QueueStatus | None, Query()] = None,
    program: Annotated[str | None, Query(description="Only patients on this program.")] = None,
    flag: Annotated[
        str | None, Query(description="A flag's code or rule, an alert's rule.")
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = LIMIT,
) -> ReviewQueue:
    """Patients waiting for a clinician, paused ones first, with why."""
    with opened(request) as store:
        page = store.review_page(
            status=status, program=program, flag=flag, offset=offset, limit=limit
        )
    following = page.next_offset
    # (a relative link: the host a proxy in front answers on is not known here)
    after = request.url.include_query_params(offset=following, limit=limit)
    return ReviewQueue(
        items=[ReviewEntry.model_validate(item, from_attributes=True) for item in page.items],
        total=page.total,
        offset=offset,
        limit=limit,
        next=None if following is None else f"{after.path}?{after.query}",
    )
