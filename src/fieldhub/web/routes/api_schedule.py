"""JSON API /api/v1 for estimates, jobs and time blocks.

Bearer personal token (ApiCtx). Money and quantities are strings ("12.50"), never floats, in and out.
Times are ISO 8601 with an offset; they come back in UTC. A refused input is 422 {"detail", "errors":
{field: message}}; another business's record is 404, like a missing one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from pydantic import AwareDatetime, BaseModel

from fieldhub.core.estimates import service as estimates
from fieldhub.core.estimates.models import EstimateStatus
from fieldhub.core.estimates.schemas import EstimateIn
from fieldhub.core.jobs import service as jobs
from fieldhub.core.jobs.models import JobStatus
from fieldhub.core.jobs.schemas import JobIn, JobStatusIn, TimeBlockIn, UserIds
from fieldhub.core.paging import PageNumber
from fieldhub.core.validation import Id
from fieldhub.web.api import Amount, ListOut, Out, PerPage, given, page_out, partial
from fieldhub.web.deps import ApiCtx, ApiManagerCtx
from fieldhub.web.errors import ApiRoute

router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["schedule"])


# ---------------------------------------------------------------- estimates


class EstimateLineOut(Out):
    id: int
    position: int
    item_id: int | None
    description: str
    quantity: Amount
    unit_price: Amount
    amount: Amount
    taxable: bool


class EstimateOut(Out):
    id: int
    version: int
    number: str
    customer_id: int
    status: str
    issue_date: date
    expires_on: date | None
    tax_rate_id: int | None
    subtotal: Amount
    tax_total: Amount
    total: Amount
    memo: str
    notes: str
    lines: list[EstimateLineOut]
    created_at: datetime
    updated_at: datetime


# Only what changes; `lines`, when sent, replaces every line. The whole is validated as EstimateIn.
EstimatePatch = partial(EstimateIn)


@router.get("/estimates", response_model=ListOut[EstimateOut])
async def api_estimates(
    ctx: ApiCtx,
    q: str = "",
    status: EstimateStatus | None = None,
    customer_id: Id | None = None,
    page: PageNumber = 1,
    per_page: PerPage = 25,
) -> Any:
    result = await estimates.list_estimates(
        ctx.db, ctx.tenant_id, q=q, status=status, customer_id=customer_id, page=page, per_page=per_page
    )
    return page_out(result, EstimateOut)


@router.post("/estimates", response_model=EstimateOut, status_code=201)
async def api_estimate_create(ctx: ApiCtx, body: EstimateIn) -> Any:
    return await estimates.create_estimate(ctx.db, ctx.tenant_id, body)


@router.get("/estimates/{estimate_id}", response_model=EstimateOut)
async def api_estimate(ctx: ApiCtx, estimate_id: Id) -> Any:
    return await estimates.get_estimate(ctx.db, ctx.tenant_id, estimate_id)


@router.patch("/estimates/{estimate_id}", response_model=EstimateOut)
async def api_estimate_update(ctx: ApiCtx, estimate_id: Id, body: Annotated[EstimatePatch, Body()]) -> Any:  # type: ignore[valid-type]
    return await estimates.update_estimate(ctx.db, ctx.tenant_id, estimate_id, given(body))


@router.post("/estimates/{estimate_id}/send", response_model=EstimateOut)
async def api_estimate_send(ctx: ApiCtx, estimate_id: Id) -> Any:
    return await estimates.send_estimate(ctx.db, ctx.tenant_id, estimate_id)


@router.post("/estimates/{estimate_id}/approve", response_model=EstimateOut)
async def api_estimate_approve(ctx: ApiCtx, estimate_id: Id) -> Any:
    return await estimates.approve_estimate(ctx.db, ctx.tenant_id, estimate_id)


@router.post("/estimates/{estimate_id}/decline", response_model=EstimateOut)
async def api_estimate_decline(ctx: ApiCtx, estimate_id: Id) -> Any:
    return await estimates.decline_estimate(ctx.db, ctx.tenant_id, estimate_id)


# ---------------------------------------------------------------- jobs


class JobOut(Out):
    id: int
    version: int
    customer_id: int
    title: str
    description: str
    address: str
    scheduled_start: datetime
    scheduled_end: datetime
    status: str
    notes: str
    technician_ids: list[int]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: Any) -> JobOut:
        return cls.model_validate(
            {
                **{f: getattr(job, f) for f in cls.model_fields if f != "technician_ids"},
                "technician_ids": [u.id for u in job.technicians],
            }
        )


# Only what changes; the whole is validated as JobIn. Status changes go through /status.
JobPatch = partial(JobIn)


class TechniciansIn(BaseModel):
    technician_ids: UserIds


@router.get("/jobs", response_model=ListOut[JobOut])
async def api_jobs(
    ctx: ApiCtx,
    starts_before: AwareDatetime | None = None,
    ends_after: AwareDatetime | None = None,
    technician_id: Id | None = None,
    customer_id: Id | None = None,
    status: JobStatus | None = None,
    page: PageNumber = 1,
    per_page: PerPage = 50,
) -> Any:
    """Jobs overlapping [ends_after, starts_before) when given, soonest first."""
    result = await jobs.list_jobs(
        ctx.db,
        ctx.tenant_id,
        starts_before=starts_before,
        ends_after=ends_after,
        technician_id=technician_id,
        customer_id=customer_id,
        status=status,
        page=page,
        per_page=per_page,
    )
    return {
        "items": [JobOut.of(j) for j in result.items],
        "total": result.total,
        "page": result.page,
        "per_page": result.per_page,
    }


@router.post("/jobs", response_model=JobOut, status_code=201)
async def api_job_create(ctx: ApiCtx, body: JobIn) -> Any:
    return JobOut.of(await jobs.create_job(ctx.db, ctx.tenant_id, body))


@router.get("/jobs/{job_id}", response_model=JobOut)
async def api_job(ctx: ApiCtx, job_id: Id) -> Any:
    return JobOut.of(await jobs.get_job(ctx.db, ctx.tenant_id, job_id))


@router.patch("/jobs/{job_id}", response_model=JobOut)
async def api_job_update(ctx: ApiCtx, job_id: Id, body: Annotated[JobPatch, Body()]) -> Any:  # type: ignore[valid-type]
    return JobOut.of(await jobs.update_job(ctx.db, ctx.tenant_id, job_id, given(body)))


@router.post("/jobs/{job_id}/status", response_model=JobOut)
async def api_job_status(ctx: ApiCtx, job_id: Id, body: JobStatusIn) -> Any:
    return JobOut.of(await jobs.set_job_status(ctx.db, ctx.tenant_id, job_id, body.status))


@router.put("/jobs/{job_id}/technicians", response_model=JobOut)
async def api_job_technicians(ctx: ApiCtx, job_id: Id, body: TechniciansIn) -> Any:
    return JobOut.of(await jobs.assign_technicians(ctx.db, ctx.tenant_id, job_id, body.technician_ids))


# ---------------------------------------------------------------- time blocks


class TimeBlockOut(Out):
    id: int
    version: int
    user_id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    source: str


@router.get("/time-blocks", response_model=ListOut[TimeBlockOut])
async def api_time_blocks(
    ctx: ApiCtx,
    starts_before: AwareDatetime | None = None,
    ends_after: AwareDatetime | None = None,
    user_id: Id | None = None,
    page: PageNumber = 1,
    per_page: PerPage = 100,
) -> Any:
    result = await jobs.list_time_blocks(
        ctx.db,
        ctx.tenant_id,
        starts_before=starts_before,
        ends_after=ends_after,
        user_id=user_id,
        page=page,
        per_page=per_page,
    )
    return page_out(result, TimeBlockOut)


@router.post("/time-blocks", response_model=TimeBlockOut, status_code=201)
async def api_time_block_create(ctx: ApiCtx, body: TimeBlockIn) -> Any:
    return await jobs.create_time_block(ctx.db, ctx.tenant_id, body)


@router.get("/time-blocks/{block_id}", response_model=TimeBlockOut)
async def api_time_block(ctx: ApiCtx, block_id: Id) -> Any:
    return await jobs.get_time_block(ctx.db, ctx.tenant_id, block_id)


@router.delete("/time-blocks/{block_id}", status_code=204)
async def api_time_block_delete(ctx: ApiManagerCtx, block_id: Id) -> Response:
    await jobs.delete_time_block(ctx.db, ctx.tenant_id, block_id)
    return Response(status_code=204)
