/* The tidegate dashboard: rollouts at a glance, one rollout's signals, targets and audit
 * trail, and the manual acts an operator token may do. It reads the public API
 * (/api/v1, docs/api.md) with the token a person pastes (kept in sessionStorage: this tab
 * only) and polls every POLL_MS, so the page follows the rollout without a reload.
 * The server checks the role on every act; the page only hides what the role cannot do.
 * Every text from the API goes in through textContent: nothing is parsed as HTML.
 */
(function () {
  "use strict";
  var TOKEN_KEY = "tidegate.token";
  var POLL_MS = 2000;
  var ACTS = {
    rollback: { label: "Roll back", verb: "roll back", danger: true },
    pause: { label: "Pause", verb: "pause", danger: false },
    resume: { label: "Resume", verb: "resume", danger: false },
    promote: { label: "Promote", verb: "promote", danger: true },
  };
  var session = { me: null, timer: null, act: null, rollout: null };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var element = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) { return; }
      if (key === "text") { element.textContent = String(value); }
      else if (key === "className") { element.className = value; }
      else { element.setAttribute(key, value === true ? "" : String(value)); }
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) { return; }
      element.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return element;
  }

  function section(id, title) {
    var found = $(id);
    if (found) { return found.querySelector(".body"); }
    var body = el("div", { className: "body" });
    $("main").appendChild(el("section", { id: id, className: "card" }, [el("h2", { text: title }), body]));
    return body;
  }

  // Swap a section's content only when it changed: a poll that brings nothing new leaves the
  // page alone (hover, focus and text selection survive it).
  function fill(container, children) {
    var fresh = document.createElement("div");
    children.forEach(function (child) { if (child) { fresh.appendChild(child); } });
    if (fresh.innerHTML === container.innerHTML) { return; }
    container.textContent = "";
    while (fresh.firstChild) { container.appendChild(fresh.firstChild); }
  }

  // --- the API --------------------------------------------------------------------------

  function ApiError(status, detail) { this.status = status; this.message = detail; }

  async function api(method, path, body) {
    var headers = { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    var response = await fetch(path, {
      method: method, headers: headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    var data = null;
    try { data = await response.json(); } catch (ignored) { data = null; }
    if (response.status === 401) {
      signOut("The server refused this token (401). Paste a valid one.");
      throw new ApiError(401, "signed out");
    }
    if (!response.ok && response.status !== 202) {
      var detail = data && data.detail ? data.detail : response.statusText;
      throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return { status: response.status, body: data };
  }

  async function get(path) { return (await api("GET", path)).body; }

  // --- signing in -----------------------------------------------------------------------

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    session.me = null;
    clearTimeout(session.timer);
    $("main").textContent = "";
    $("whoami").textContent = "";
    $("sign-out").hidden = true;
    $("updated").textContent = "";
    $("act-result").hidden = true;
    $("sign-in").hidden = false;
    $("sign-in-error").hidden = !message;
    $("sign-in-error").textContent = message || "";
    $("token-input").focus();
  }

  async function start() {
    try {
      session.me = await get("/api/v1/whoami");
    } catch (error) {
      if (error.status !== 401) { problem("Cannot ask who this token is: " + error.message); schedule(start); }
      return;
    }
    $("sign-in").hidden = true;
    $("whoami").textContent = session.me.name + " · " + session.me.role;
    $("whoami").setAttribute("data-role", session.me.role);
    $("sign-out").hidden = false;
    refresh();
  }

  function mayAct() { return session.me && (session.me.role === "operator" || session.me.role === "admin"); }

  // --- polling --------------------------------------------------------------------------

  function schedule(what) {
    clearTimeout(session.timer);
    session.timer = setTimeout(what || refresh, POLL_MS);
  }

  async function refresh() {
    clearTimeout(session.timer);
    if (!session.me) { return; }
    if (document.hidden) { schedule(); return; }
    var match = location.pathname.match(/^\/rollouts\/([^/]+)\/?$/);
    try {
      if (match) { await showRollout(decodeURIComponent(match[1])); } else { await showList(); }
      problem(null);
      $("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    } catch (error) {
      if (error.status === 401) { return; }
      problem(error.status ? error.message + " (" + error.status + ")" : "Cannot reach the server (" + error.message + "); retrying.");
    }
    if (session.me) { schedule(); }
  }

  function problem(text) {
    $("problem").hidden = !text;
    $("problem").textContent = text || "";
  }

  // --- shared pieces --------------------------------------------------------------------

  function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "—"; }

  function ago(iso) {
    if (!iso) { return ""; }
    var seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 90) { return Math.round(seconds) + " s ago"; }
    if (seconds < 5400) { return Math.round(seconds / 60) + " min ago"; }
    if (seconds < 172800) { return Math.round(seconds / 3600) + " h ago"; }
    return Math.round(seconds / 86400) + " days ago";
  }

  function stateBadge(state) {
    return el("span", { className: "badge state-" + state, "data-state": state, text: state.replace("_", " ") });
  }

  function trafficBar(percent) {
    var fillBar = el("span", { className: "fill" });
    fillBar.style.width = Math.max(0, Math.min(100, percent)) + "%";
    return el("span", { className: "traffic", title: percent + "% of users on the new version" }, [
      el("span", { className: "track" }, [fillBar]), el("span", { className: "pct", text: percent + "%" }),
    ]);
  }

  function healthBadge(health) {
    var kind = "unknown", text = "not evaluated yet";
    if (health && health.breaching.length) { kind = "breach"; text = "breach: " + health.breaching.join(", "); }
    else if (health && health.pending && health.pending.length) { kind = "pending"; text = "pending: " + health.pending.join(", "); }
    else if (health && health.no_data.length) { kind = "no_data"; text = "no data: " + health.no_data.join(", "); }
    else if (health && health.decision) { kind = "ok"; text = "healthy"; }
    var badge = el("span", { className: "badge health-" + kind, "data-health": kind, text: text });
    if (health && health.decision) {
      badge.title = "decision: " + health.decision + (health.from === "recorded" ? " (last recorded change)" : " (live)");
    }
    return badge;
  }

  function stepText(row) {
    return ["progressing", "paused", "stepping_down"].indexOf(row.state) >= 0 ? "step " + (row.step + 1) : "—";
  }

  function number(value) {
    if (value === null || value === undefined) { return "—"; }
    return Math.abs(value) >= 1e6 || (value !== 0 && Math.abs(value) < 0.001) ? value.toExponential(2) : String(Number(value.toPrecision(4)));
  }

  function table(id, headings, rows, empty) {
    if (!rows.length) { return el("p", { id: id, className: "muted", text: empty }); }
    return el("table", { id: id }, [
      el("thead", {}, [el("tr", {}, headings.map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, rows),
    ]);
  }

  function cells(values, attrs) {
    return el("tr", attrs || {}, values.map(function (v) {
      return el("td", {}, [typeof v === "string" || typeof v === "number" ? String(v) : v]);
    }));
  }

  // --- the rollouts list ----------------------------------------------------------------

  async function showList() {
    var rows = await get("/api/v1/rollouts");
    document.title = "tidegate · rollouts";
    if (!$("rollouts-section")) { $("main").textContent = ""; }
    var body = section("rollouts-section", "Rollouts");
    var lines = rows.slice().reverse().map(function (row) {
      var link = el("a", { href: "/rollouts/" + encodeURIComponent(row.id), text: row.name });
      return cells([
        el("span", {}, [link, el("span", { className: "id", text: row.id })]),
        stateBadge(row.state), stepText(row), trafficBar(row.traffic), healthBadge(row.health),
        row.holder || "—", el("span", { title: when(row.since), text: ago(row.since) }),
      ], { "data-rollout": row.id, "data-state": row.state });
    });
    fill(body, [
      el("p", { className: "muted", text: rows.length + " rollout" + (rows.length === 1 ? "" : "s") + ", newest first" }),
      table("rollouts", ["Rollout", "State", "Step", "Traffic", "Health", "Held by", "Since"], lines,
        "No rollouts yet: register one (POST /api/v1/rollouts) or put its file in the rollouts folder."),
    ]);
  }

  // --- one rollout ----------------------------------------------------------------------

  async function showRollout(id) {
    var path = "/api/v1/rollouts/" + encodeURIComponent(id);
    var answers = await Promise.all([
      get(path), get(path + "/signals"), get(path + "/transitions"),
      get("/api/v1/audit?rollout=" + encodeURIComponent(id)),
    ]);
    var rollout = answers[0], signals = answers[1], transitions = answers[2], audit = answers[3];
    session.rollout = rollout;
    document.title = "tidegate · " + rollout.name;
    if (!$("summary-section") || $("main").getAttribute("data-rollout") !== id) {
      $("main").textContent = "";
      $("main").setAttribute("data-rollout", id);
      $("main").appendChild(el("a", { className: "back", href: "/", text: "← all rollouts" }));
    }
    showSummary(rollout);
    showRules(rollout, signals);
    showCharts(signals, transitions);
    showTargets(rollout);
    showAudit(audit);
  }

  function showSummary(rollout) {
    var body = section("summary-section", "Rollout");
    var facts = el("dl", { className: "facts" }, [
      el("dt", { text: "state" }), el("dd", {}, [stateBadge(rollout.state)]),
      el("dt", { text: "traffic" }), el("dd", {}, [trafficBar(rollout.traffic)]),
      el("dt", { text: "step" }), el("dd", { text: stepText(rollout) }),
      el("dt", { text: "version" }), el("dd", { text: rollout.previous_version + " → " + rollout.version }),
      el("dt", { text: "since" }), el("dd", { text: when(rollout.since) + " (" + ago(rollout.since) + ")" }),
      el("dt", { text: "held by" }), el("dd", { text: rollout.holder || "—" }),
      el("dt", { text: "reason" }), el("dd", { id: "rollout-reason", text: rollout.reason || "—" }),
    ]);
    var children = [el("h1", {}, [rollout.name + " ", el("span", { className: "id", text: rollout.id })]), facts];
    if (mayAct()) {
      children.push(el("div", { id: "acts", className: "buttons" }, Object.keys(ACTS).map(function (trigger) {
        var button = el("button", {
          type: "button", "data-act": trigger, className: ACTS[trigger].danger ? "danger" : "",
          disabled: rollout.acts.indexOf(trigger) < 0, text: ACTS[trigger].label,
          title: rollout.acts.indexOf(trigger) < 0 ? "not allowed while " + rollout.state.replace("_", " ") : "",
        });
        button.addEventListener("click", function () { askAct(trigger); });
        return button;
      })));
    } else {
      children.push(el("p", { className: "muted", text: "Read only: a viewer token sees no manual acts." }));
    }
    fill(body, children);
  }

  function showRules(rollout, signals) {
    var body = section("rules-section", "Rules");
    var rules = signals.available ? signals.rules : (rollout.rules || []).map(function (r) {
      return { policy: r.policy, action: r.action, status: r.status, value: r.value, since: r.since, condition: "" };
    });
    var rows = rules.map(function (rule) {
      var status = rule.status || "no_data";
      return cells([
        rule.policy, rule.condition || "", rule.action,
        el("span", { className: "badge health-" + status, text: status.replace("_", " ") }),
        number(rule.value), rule.since ? when(rule.since) : "—",
      ], { "data-policy": rule.policy, "data-status": status });
    });
    var note = signals.available ? null : el("p", { className: "muted", text: holderNote(signals) });
    fill(body, [note, table("rules", ["Rule", "Condition", "Action", "Status", "Value", "Since"], rows,
      "No rule readings here yet.")]);
  }

  function holderNote(signals) {
    if (signals.holder && signals.holder === signals.replica) { return "No live readings: " + signals.reason + "."; }
    return signals.holder
      ? "Live readings are on the replica holding this rollout: " + signals.holder + " (this is " + signals.replica + ")."
      : "No replica holds this rollout now, so there are no live readings (" + signals.reason + ").";
  }

  function showCharts(signals, transitions) {
    var body = section("charts-section", "Signals");
    if (!signals.available) {
      fill(body, [el("p", { id: "charts-unavailable", className: "muted", text: holderNote(signals) })]);
      return;
    }
    var markers = transitions.map(function (t) {
      return { t: Date.parse(t.at) / 1000, label: t.trigger + (t.actor && t.actor !== "tidegate" ? " by " + t.actor : ""), kind: t.trigger };
    });
    var charts = signals.rules.map(function (rule) {
      var box = el("div", { className: "chart", "data-policy": rule.policy });
      var first = rule.series.length ? rule.series[0].t : null;
      var nearStart = first !== null && first <= signals.start + 2 * signals.interval;
      // drawn after the box is in the page, so the chart can take its width
      return { box: box, options: {
        series: rule.series, threshold: rule.threshold, thresholdLabel: rule.threshold_label,
        spans: rule.spans, baseline: nearStart ? rule.baseline : null, markers: markers,
        unit: unitOf(rule), title: rule.policy + " · " + rule.signal,
      } };
    });
    fill(body, charts.length ? charts.map(function (c) { return c.box; }) : [el("p", { className: "muted", text: "No rules." })]);
    charts.forEach(function (c) { window.TidegateCharts.lineChart(c.box, c.options); });
  }

  function unitOf(rule) {
    if (rule.kind === "count") { return "events"; }
    if (rule.kind === "drift") { return "relative change"; }
    return "";
  }

  function showTargets(rollout) {
    var body = section("targets-section", "Targets");
    var rows = rollout.targets.map(function (target) {
      var outcome = target.outcome || "not told yet";
      return cells([
        target.name, target.kind, target.last_operation || "—",
        el("span", { className: "badge outcome-" + outcome.replace(/ /g, "_"), text: outcome }),
        target.detail || "",
      ], { "data-target": target.name });
    });
    var sources = (rollout.sources || []).map(function (s) {
      return cells([s.source, s.ok_reads + " ok / " + s.failed_reads + " failed",
        s.consecutive_failures ? s.consecutive_failures + " failing in a row" : "answering", s.last_error || ""]);
    });
    fill(body, [
      table("targets", ["Target", "Kind", "Last operation", "Outcome", "Detail"], rows, "No targets."),
      sources.length ? el("h3", { text: "Sources" }) : null,
      sources.length ? table("sources", ["Source", "Reads", "Now", "Last error"], sources, "") : null,
    ]);
  }

  function describeAudit(entry) {
    var p = entry.payload || {};
    var reason = p.reason ? " — “" + p.reason + "”" : "";
    switch (entry.kind) {
      case "created": return "created " + (p.name || "") + " " + (p.version || "");
      case "manual":
      case "transition": return (p.trigger || "") + ": " + p.from + " → " + p.to + " at " + p.traffic + "%" + reason;
      case "decision": return "decided " + p.decision + (p.policies && p.policies.length ? " (" + p.policies.join(", ") + ")" : "");
      case "action": return p.target + ": " + p.operation + " → " + p.outcome + (p.detail ? " (" + p.detail + ")" : "");
      case "page": return "paged a human" + (p.target ? " for " + p.target : "") + reason;
      default: return JSON.stringify(p);
    }
  }

  function showAudit(audit) {
    var body = section("audit-section", "Audit trail");
    var rows = audit.slice(-100).reverse().map(function (entry) {
      return cells([when(entry.at), entry.actor, entry.kind, describeAudit(entry)],
        { "data-kind": entry.kind, "data-actor": entry.actor });
    });
    fill(body, [
      el("p", { className: "muted", text: (audit.length > 100 ? "The newest 100 of " + audit.length + " rows" : audit.length + " rows, newest first") +
        ". The hash chain is checked by GET /api/v1/audit/verify (tidegate audit verify)." }),
      table("audit", ["At", "Actor", "Kind", "What"], rows, "Nothing audited yet."),
    ]);
  }

  // --- manual acts: a reason, then a confirmation ----------------------------------------

  function askAct(trigger) {
    var rollout = session.rollout;
    session.act = { trigger: trigger, id: rollout.id, name: rollout.name, previous: rollout.previous_version, version: rollout.version };
    $("act-title").textContent = ACTS[trigger].label + " " + rollout.name + "?";
    $("act-reason").value = "";
    $("act-continue").disabled = true;
    $("act-ask").hidden = false;
    $("act-check").hidden = true;
    $("act-dialog").showModal();
    $("act-reason").focus();
  }

  function consequence(act) {
    return {
      rollback: "Every target is told to go back to " + act.previous + ".",
      pause: "Traffic stays where it is until someone resumes or rolls back.",
      resume: "The rollout carries on from the highest step not above the current traffic.",
      promote: "Every target gets " + act.version + " for all users.",
    }[act.trigger];
  }

  function confirmAct() {
    var act = session.act;
    act.reason = $("act-reason").value.trim();
    if (!act.reason) { return; }
    $("act-summary").textContent = "You (" + session.me.name + ") are about to " + ACTS[act.trigger].verb + " " +
      act.name + " (" + act.id + "). " + consequence(act) + " Reason for the audit log: “" + act.reason + "”.";
    $("act-confirm").textContent = "Yes, " + ACTS[act.trigger].verb;
    $("act-ask").hidden = true;
    $("act-check").hidden = false;
    $("act-confirm").focus();
  }

  async function doAct() {
    var act = session.act;
    $("act-dialog").close();
    var result = $("act-result");
    result.hidden = false;
    result.className = "note";
    result.textContent = ACTS[act.trigger].label + ": sent…";
    try {
      var answer = await api("POST", "/api/v1/rollouts/" + encodeURIComponent(act.id) + "/" + act.trigger, { reason: act.reason });
      var request = answer.body;
      result.setAttribute("data-outcome", request.outcome);
      result.textContent = answer.status === 202
        ? ACTS[act.trigger].label + " queued: the replica holding the rollout has not answered yet."
        : ACTS[act.trigger].label + " done by " + request.actor + ": " + request.detail;
    } catch (error) {
      if (error.status === 401) { return; }
      result.className = "note error";
      result.setAttribute("data-outcome", "refused");
      result.textContent = ACTS[act.trigger].label + " refused: " + error.message;
    }
    refresh();
  }

  // --- wiring ----------------------------------------------------------------------------

  function wire() {
    $("sign-in").addEventListener("submit", function (event) {
      event.preventDefault();
      var token = $("token-input").value.trim();
      if (!token) { return; }
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token-input").value = "";
      start();
    });
    $("sign-out").addEventListener("click", function () { signOut(""); });
    $("act-reason").addEventListener("input", function () { $("act-continue").disabled = !$("act-reason").value.trim(); });
    $("act-continue").addEventListener("click", confirmAct);
    $("act-back").addEventListener("click", function () { $("act-ask").hidden = false; $("act-check").hidden = true; });
    $("act-cancel").addEventListener("click", function () { $("act-dialog").close(); });
    $("act-confirm").addEventListener("click", doAct);
    document.addEventListener("visibilitychange", function () { if (!document.hidden && session.me) { refresh(); } });
    if (sessionStorage.getItem(TOKEN_KEY)) { start(); } else { signOut(""); }
  }

  wire();
})();
