# docs: run by tests/test_readme_consumer.py (it needs a live API and a feed)
# consumer.py: deliver what reviewers approved; run as many as you like
import os

from copilot.client import ApiError, Client


def send(action) -> dict:
    """Your delivery: send the email, show the tip... Return what proves it happened."""
    print(f"{action.kind} for {action.subject_id}: {action.payload}", flush=True)
    return {"sent": True}


with Client(os.environ["COPILOT_URL"], key=os.environ["COPILOT_APP_KEY"]) as api:
    for action in api.iter_actions(wait=20):  # claims a batch, long-polls when idle
        try:
            receipt = send(action)
        except Exception as exc:  # retried after a backoff, dead after max attempts
            api.ack(action, "failed", {"error": str(exc)})
            continue
        try:
            api.ack(action, "delivered", receipt)
        except ApiError as exc:
            if exc.code != "delivery.claim_lost":
                raise
            # Too slow: the claim timed out and another consumer has the action, so it
            # is delivered again. Make `send` idempotent on action.idempotency_key.
