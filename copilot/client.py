"""A Python client for the HTTP API, typed with the API's own pydantic models.

    >>> from copilot.client import Client
    >>> with Client("http://127.0.0.1:8000", key="cpk_...") as api:  # doctest: +SKIP
    ...     run = api.trigger("account_health", "acct-042", idempotency_key="crm-1")
    ...     run = api.wait(run.id)                      # until waiting or finished
    ...     for req in api.iter_approvals():            # with a reviewer's key
    ...         api.approve(req.id, req.payload_hash)
    ...     assert api.verify().ok                      # with an auditor's key
    ...     for action in api.iter_actions(until_empty=True):   # with an app's key
    ...         api.ack(action, "delivered", {"sent": True})

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
    MAX_WAIT,
    AckManyOut,
    ActionOut,
    ActionPage,
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

    # -- the action feed (role app; retry and cancel: role reviewer) ------------------------

    def actions(
        self,
        status: str = "ready",
        *,
        kind: str | None = None,
        subject_id: str | None = None,
        cursor: int | None = None,
        wait: float = 0.0,
        limit: int = 10,
    ) -> ActionPage:
        """`ready` claims up to `limit` actions for this key (long-polling up to `wait` s);
        another status lists them without claiming."""
        given = {"kind": kind, "subject_id": subject_id, "cursor": cursor}
        params = {"status": status, "wait": wait, "limit": limit,
                  **{k: v for k, v in given.items() if v is not None}}  # fmt: skip
        # The server may hold a long-poll for `wait` (capped): give the read that long too.
        timeout = httpx.Timeout(self._http.timeout.read or 30.0, read=min(wait, MAX_WAIT) + 30.0)
        return self._model(ActionPage, "GET", "/v1/actions", params=params, timeout=timeout)

    def iter_actions(
        self,
        *,
        wait: float = MAX_WAIT,
        until_empty: bool = False,
        kind: str | None = None,
        subject_id: str | None = None,
        limit: int = 10,
    ) -> Iterator[ActionOut]:
        """Claimed actions, one by one, long-polling between batches; ack each with `ack`.

        Runs forever unless `until_empty` (then it stops at the first empty poll). An action
        not acked within the visibility timeout returns to the feed for another consumer.
        """
        while True:
            page = self.actions(kind=kind, subject_id=subject_id, wait=wait, limit=limit)
            if not page.items and until_empty:
                return
            yield from page.items

    def ack(
        self,
        action: ActionOut | int,
        status: Literal["delivered", "failed"] = "delivered",
        detail: dict[str, Any] | None = None,
        *,
        claim: str | None = None,
    ) -> ActionOut:
        """Settle a claim (the action as `iter_actions` yielded it, or its id and `claim`);
        repeating it replays, a lost claim raises ApiError `delivery.claim_lost`."""
        action_id = action if isinstance(action, int) else action.id
        token = claim if claim is not None or isinstance(action, int) else action.claim
        body = {"claim": token, "status": status, "detail": detail or {}}
        return self._model(ActionOut, "POST", f"/v1/actions/{action_id}/ack", json=body)

    def ack_many(
        self,
        actions: list[ActionOut],
        status: Literal["delivered", "failed"] = "delivered",
        detail: dict[str, Any] | None = None,
    ) -> AckManyOut:
        """Settle a batch of claims in one call (at most 100; each at most once): every
        result is the action, or the error its own `ack` would have raised (`.error`)."""
        acks = [{"id": a.id, "claim": a.claim, "status": status, "detail": detail or {}}
                for a in actions]  # fmt: skip
        return self._model(AckManyOut, "POST", "/v1/actions/ack", json={"acks": acks})

    def action(self, action_id: int) -> ActionOut:
        """One action and its delivery state."""
        return self._model(ActionOut, "GET", f"/v1/actions/{action_id}")

    def retry_action(self, action_id: int) -> ActionOut:
        """Put a dead action back to `ready` (role reviewer)."""
        return self._model(ActionOut, "POST", f"/v1/actions/{action_id}/retry")

    def cancel_action(self, action_id: int, reason: str) -> ActionOut:
        """Cancel an action's delivery for good (role reviewer)."""
        body = {"reason": reason}
        return self._model(ActionOut, "POST", f"/v1/actions/{action_id}/cancel", json=body)

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
