"""`/v1/audit`: read, verify and export the key's tenant's trail (role `auditor`, read-only)."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from audit import Query as AuditQuery
from audit import export_bundle
from copilot.api.auth import require, runtime
from copilot.api.errors import responses
from copilot.api.schema import HEX_ID, SUBJECT, EventPage, VerifyOut
from copilot.errors import ForbiddenError
from copilot.governance.keys import Principal
from copilot.runtime import Runtime

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Auditor = Annotated[Principal, Depends(require("auditor"))]
Rt = Annotated[Runtime, Depends(runtime)]


@router.get(
    "/events",
    response_model=EventPage,
    responses=responses(401, 403, 422),
    summary="Read the trail",
)
def events(
    who: Auditor,
    rt: Rt,
    run_id: Annotated[str | None, Query(pattern=HEX_ID)] = None,
    subject_id: Annotated[str | None, Query(pattern=SUBJECT)] = None,
    after_seq: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    """Entries ascending by seq, with their hashes and exact bytes (personal payloads left out)."""
    rt.audit.settle(who.tenant)  # chain what busy writers queued, so it is readable too
    found = rt.audit.query(
        who.tenant,
        AuditQuery(run_id=run_id, subject_id=subject_id, after_seq=after_seq, limit=limit + 1),
    )
    page = found[:limit]
    return EventPage(items=page, next_after_seq=page[-1].seq if len(found) > limit else None)


@router.get(
    "/verify",
    response_model=VerifyOut,
    responses=responses(401, 403),
    summary="Verify the trail",
)
def verify(who: Auditor, rt: Rt) -> VerifyOut:
    """Walk the tenant's chain against every known checkpoint; `ok` false names the first bad seq."""
    v = rt.trail.verify(who.tenant)
    return VerifyOut(
        stream=v.stream,
        ok=v.ok,
        entries=v.entries,
        checkpoints=v.checkpoints,
        unsigned=v.unsigned,
        bad_seq=v.bad_seq,
        reason=v.reason,
        detail=v.detail,
        line=v.line(),
    )


@router.get(
    "/export",
    response_class=FileResponse,
    responses={
        200: {
            "description": "An export bundle as a gzipped tar; verify it offline with "
            "`copilot audit verify --bundle DIR`",
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **responses(401, 403, 422),
    },
    summary="Export the trail",
)
def export(
    who: Auditor,
    rt: Rt,
    payloads: Annotated[
        Literal["withheld", "included"],
        Query(description="Erasable payloads (personal data) are withheld: the bundle "
              "verifies without them. `included` is refused for every role "
              "(`audit.payloads_forbidden`) until per-key grants exist; on the host, "
              "`copilot audit export --include-payloads` includes them, audited."),
    ] = "withheld",
) -> FileResponse:
    """The tenant's stream as an offline-verifiable bundle (signed first where this host holds
    the key), without its erasable payloads."""
    if payloads == "included":
        raise ForbiddenError(
            "no key may export erasable payloads over HTTP; the bundle verifies without them. "
            "An operator can include them, audited, with `copilot audit export "
            "--include-payloads` on the host",
            code="audit.payloads_forbidden",
        )
    return export_archive(rt, who.tenant)


def export_archive(rt: Runtime, tenant: str) -> FileResponse:
    """The tenant's bundle, erasable payloads withheld, as a download (the API's export and
    the web trail's share it)."""
    if rt.trail.signer is not None:  # as `copilot audit export`: nothing in the bundle unsigned
        rt.trail.checkpoint(tenant)
    work = Path(tempfile.mkdtemp(prefix="copilot-export-"))
    try:
        export_bundle(rt.trail, work / "bundle", [tenant])
        archive = work / "bundle.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(work / "bundle", arcname="bundle")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(
        archive,
        media_type="application/gzip",
        filename=f"audit-{tenant}.tar.gz",
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )
