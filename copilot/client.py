"""A Python client for the HTTP API, typed with the API's own pydantic models.

    >>> from copilot.client import Client
    >>> with Client("http://127.0.0.1:8000", key="cpk_...") as api:  # doctest: +SKIP
    ...     run = api.trigger("account_health", "acct-042", idempotency_key="crm-1")
    ...     run = api.wait(run.id)                      # until waiting or finished
    ...     for req in api.iter_approvals():            # with a reviewer's key
    ...         api.approve(req.id, req.payload_hash)
    ...     assert api.verify().ok                      # with an auditor's key

Every error response raises `ApiError`, a `CopilotError` with the server's stable `code`,
its message and details, and the HTTP `status`.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from copilot.api.schema import (
    ApprovalPage,
    ApprovalRequest,
    Entry,
    EventPage,
    PreferencesOut,
    RunAccepted,
    RunExplanation,
    RunOut,
    RunState,
    SignalsAccepted,
    VerifyOut,
)
from copilot.errors import CopilotError

M = TypeVar("M", bound=BaseModel)
SETTLED = frozenset(
    {RunState.WAITING, RunState.COMPLETED, RunState.FAILED, RunState.SKIPPED, RunState.CANCELLED}
)


class ApiError(CopilotError):
    """The API refused a request: `code`, `message`, `details` from its error body, and `status`."""

    code = "api.error"

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message, code=code, **details)
        self.status = status


class Client:
    """One API key's view of a copilot server."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        response = self._http.request(method, path, **kw)
        if response.is_success:
            return response
        try:
            error = response.json()["error"]
            raise ApiError(
                response.status_code, error["code"], error["message"], error.get("details", {})
            )
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                response.status_code, f"http.{response.status_code}", response.text[:500], {}
            ) from None

    def _model(self, model: type[M], method: str, path: str, **kw: Any) -> M:
        return model.model_validate_json(self._send(method, path, **kw).content)

    # -- runs (role app) --------------------------------------------------------------------

    def trigger(
        self,
        workflow: str,
        subject_id: str,
        *,
        inputs: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> RunAccepted:
        """Queue a run; the same idempotency key returns the same run (`created` false)."""
        body = {
            "workflow": workflow,
            "subject_id": subject_id,
            "inputs": inputs or {},
            "idempotency_key": idempotency_key,
        }
        return self._model(RunAccepted, "POST", "/v1/runs", json=body)

    def run(self, run_id: str) -> RunOut:
        """The run as it stands."""
        return self._model(RunOut, "GET", f"/v1/runs/{run_id}")

    def wait(self, run_id: str, *, timeout: float = 60.0, poll: float = 0.2) -> RunOut:
        """Poll until the run waits for approval or finishes; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run.state in SETTLED:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {run.state.value} after {timeout} s")
            time.sleep(poll)

    def explanation(self, run_id: str) -> RunExplanation:
        """Why am I seeing this: the run's one-sentence explanation and its evidence."""
        return self._model(RunExplanation, "GET", f"/v1/runs/{run_id}/explanation")

    def ingest_signals(
        self, subject_id: str, values: dict[str, Any], *, source: str = "api"
    ) -> SignalsAccepted:
        """Write a subject's signal values (all or nothing)."""
        body = {"subject_id": subject_id, "values": values, "source": source}
        return self._model(SignalsAccepted, "POST", "/v1/signals", json=body)

    def set_preferences(
        self,
        subject_id: str,
        *,
        opt_out_all: bool = False,
        opt_out_workflows: list[str] | None = None,
        snooze_until: datetime | None = None,
        consent_basis: str | None = None,
    ) -> PreferencesOut:
        """Replace a subject's controls (a time zone is required on `snooze_until`)."""
        body = {
            "opt_out_all": opt_out_all,
            "opt_out_workflows": opt_out_workflows or [],
            "snooze_until": snooze_until.isoformat() if snooze_until else None,
            "consent_basis": consent_basis,
        }
        return self._model(
            PreferencesOut, "PUT", f"/v1/subjects/{subject_id}/preferences", json=body
        )

    # -- approvals (role reviewer) ----------------------------------------------------------

    def approvals(
        self,
        status: str = "pending",
        *,
        cursor: str | None = None,
        limit: int = 50,
        workflow: str | None = None,
        kind: str | None = None,
        risk: str | None = None,
        subject_id: str | None = None,
    ) -> ApprovalPage:
        """One page of the queue, by deadline then risk."""
        given = {"cursor": cursor, "workflow": workflow, "kind": kind, "risk": risk,
                 "subject_id": subject_id}  # fmt: skip
        params = {"status": status, "limit": limit, **{k: v for k, v in given.items() if v}}
        return self._model(ApprovalPage, "GET", "/v1/approvals", params=params)

    def iter_approvals(self, status: str = "pending", **filters: Any) -> Iterator[ApprovalRequest]:
        """Every request of the queue (filters as `approvals`), following the cursor."""
        cursor = None
        while True:
            page = self.approvals(status, cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def approval(self, approval_id: str) -> ApprovalRequest:
        """One request, with its payload hash (what a decision names)."""
        return self._model(ApprovalRequest, "GET", f"/v1/approvals/{approval_id}")

    def decide(
        self,
        approval_id: str,
        decision: Literal["approve", "reject"],
        payload_hash: str,
        *,
        reason: str | None = None,
        edits: dict[str, Any] | None = None,
    ) -> ApprovalRequest:
        """Decide the version you saw; the reviewer is this client's key."""
        body = {
            "decision": decision,
            "payload_hash": payload_hash,
            "reason": reason,
            "edits": edits,
        }
        return self._model(
            ApprovalRequest, "POST", f"/v1/approvals/{approval_id}/decision", json=body
        )

    def approve(
        self,
        approval_id: str,
        payload_hash: str,
        *,
        note: str | None = None,
        edits: dict[str, Any] | None = None,
    ) -> ApprovalRequest:
        """Approve (or, with `edits`, edit then approve: the new version is returned)."""
        return self.decide(approval_id, "approve", payload_hash, reason=note, edits=edits)

    def reject(self, approval_id: str, payload_hash: str, reason: str) -> ApprovalRequest:
        """Reject, with the reason the proposer learns from."""
        return self.decide(approval_id, "reject", payload_hash, reason=reason)

    # -- the trail (role auditor) -----------------------------------------------------------

    def events(
        self,
        *,
        run_id: str | None = None,
        subject_id: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> EventPage:
        """A page of entries, ascending by seq."""
        params: dict[str, Any] = {"after_seq": after_seq, "limit": limit}
        if run_id:
            params["run_id"] = run_id
        if subject_id:
            params["subject_id"] = subject_id
        return self._model(EventPage, "GET", "/v1/audit/events", params=params)

    def iter_events(self, **filters: Any) -> Iterator[Entry]:
        """Every entry matching the filters, following `next_after_seq`."""
        after = int(filters.pop("after_seq", 0))
        while True:
            page = self.events(after_seq=after, **filters)
            yield from page.items
            if page.next_after_seq is None:
                return
            after = page.next_after_seq

    def verify(self) -> VerifyOut:
        """The server walks the tenant's chain against every known checkpoint."""
        return self._model(VerifyOut, "GET", "/v1/audit/verify")

    def export(self, directory: Path) -> Path:
        """Download the tenant's export bundle into `directory`; returns the bundle's path.

        Verify it offline, trusting no server: `copilot audit verify --bundle PATH`.
        """
        response = self._send("GET", "/v1/audit/export")
        directory.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
            tar.extractall(directory, filter="data")
        return directory / "bundle"


__all__ = ["ApiError", "Client"]
