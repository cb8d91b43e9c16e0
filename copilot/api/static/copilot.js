/* copilot.js: the browser client for placements. No dependencies; served by `copilot api`.
 *
 *   <script src="https://copilot.example.com/copilot.js"></script>
 *   const copilot = new Copilot({baseUrl: "https://copilot.example.com",
 *                                token: () => fetch("/my-app/copilot-token").then(r => r.text())});
 *   const d = await copilot.decide("onboarding.next_step", "acct-042", {"onboarding.plan": "trial"});
 *   if (d.item) { render(d.item.content, d.explanation); await copilot.impression(d); }
 *   // later: copilot.dismiss(d), copilot.accept(d), copilot.complete(d), copilot.snooze(d)
 *
 * `token` is a subject token (`cps_...`, minted by your server with its app key through
 * POST /v1/subject-tokens) or a function returning one (or a promise of one); a function
 * is called again once when the server answers token.expired.
 */
(function (global) {
  "use strict";

  function CopilotError(status, code, message, details) {
    this.name = "CopilotError";
    this.status = status;
    this.code = code;
    this.message = message;
    this.details = details || {};
  }
  CopilotError.prototype = Object.create(Error.prototype);

  function eventId() {
    if (global.crypto && typeof global.crypto.randomUUID === "function") {
      return global.crypto.randomUUID();
    }
    return "ev-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function Copilot(options) {
    if (!options || !options.token) throw new Error("new Copilot({baseUrl, token}) needs a token");
    this.baseUrl = (options.baseUrl || "").replace(/\/+$/, "");
    this._source = options.token;
    this._token = typeof options.token === "string" ? options.token : null;
  }

  Copilot.prototype._currentToken = async function (refresh) {
    if (typeof this._source !== "function") return this._source;
    if (refresh || !this._token) this._token = await this._source();
    return this._token;
  };

  Copilot.prototype._post = async function (path, body, retried) {
    const token = await this._currentToken(false);
    const response = await fetch(this.baseUrl + path, {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + token},
      body: JSON.stringify(body),
    });
    let doc = null;
    try { doc = await response.json(); } catch (e) { doc = null; }
    if (response.ok) return doc;
    const err = (doc && doc.error) || {code: "http." + response.status, message: response.statusText};
    if (err.code === "token.expired" && !retried && typeof this._source === "function") {
      await this._currentToken(true);
      return this._post(path, body, true);
    }
    throw new CopilotError(response.status, err.code, err.message, err.details);
  };

  /** What `subjectId` sees in `placement` now: {decision_id, item|null, why, explanation, ...}. */
  Copilot.prototype.decide = function (placement, subjectId, context) {
    return this._post("/v1/decide", {placement: placement, subject_id: subjectId, context: context || {}});
  };

  /** Record an exposure event on a decision (idempotent by its event id). */
  Copilot.prototype.event = function (decision, kind, options) {
    const id = typeof decision === "string" ? decision : decision.decision_id;
    const body = {event_id: (options && options.eventId) || eventId(), kind: kind};
    if (options && options.until) body.until = options.until;
    return this._post("/v1/decisions/" + encodeURIComponent(id) + "/events", body);
  };

  ["impression", "accept", "dismiss", "snooze", "complete"].forEach(function (kind) {
    Copilot.prototype[kind] = function (decision, options) { return this.event(decision, kind, options); };
  });

  Copilot.CopilotError = CopilotError;
  global.Copilot = Copilot;
})(typeof window !== "undefined" ? window : globalThis);
