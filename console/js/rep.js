// A rep's day: today's list, the customers, one customer's page, logging a touch and skipping a task.
import { useState } from "preact/hooks";
import { allPages, get, post, tzOffset } from "./api.js";
import { fmtDate, fmtDateTime, fmtMoney, fmtNumber, fmtPercent, t, tl } from "./i18n.js";
import { ErrorBox, Field, Link, Loaded, Notice, Table, html, navigate, options, useLoad, useLocation } from "./ui.js";

export const KINDS = ["call", "message", "email", "visit", "meeting", "complaint", "survey"];
export const OUTCOMES = ["reached", "no_answer", "declined", "positive", "negative", "neutral", "resolved", "open"];
export const TIERS = ["A", "B", "C"];
export const LIFECYCLES = ["potential", "new", "active", "dormant", "at_risk", "churned"];
export const STAGES = ["first_contact", "needs_analysis", "proposal", "won", "lost"];

// datetime-local wants local wall time without a zone; seconds kept, so a touch logged right after a task
// was scheduled does not read as before it (the API completes a cadence task only with a later touch)
function localInputValue(date = new Date()) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 19);
}

export function InteractionForm({ customerId, task, openTasks = [], onDone, onCancel }) {
  const [form, setForm] = useState({
    kind: "call", outcome: "reached", occurred_at: localInputValue(), satisfaction: "", summary: "",
    next_step: "", completes_task_id: task ? task.id : "",
  });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (name) => (event) => setForm({ ...form, [name]: event.target.value });
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const when = new Date(form.occurred_at);
    const body = {
      customer_id: customerId, kind: form.kind, outcome: form.outcome,
      // an unreadable date is sent as typed so the API names the field
      occurred_at: Number.isNaN(when.getTime()) ? form.occurred_at : when.toISOString(),
      summary: form.summary, next_step: form.next_step || null,
      satisfaction: form.satisfaction === "" ? null : Number(form.satisfaction),
      completes_task_id: form.completes_task_id || null,
    };
    try {
      onDone(await post("/v1/interactions", body));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const errors = error && error.fields;
  const tasks = task ? [task] : openTasks;
  return html`<form class="inline-form" onSubmit=${submit} aria-label=${t("log_interaction")}>
    <div class="row">
      <${Field} label=${t("kind")} name="kind" errors=${errors}>${(p) => html`<select ...${p} onChange=${set("kind")}>${options(KINDS, (v) => tl("kind", v), form.kind)}</select>`}<//>
      <${Field} label=${t("outcome")} name="outcome" errors=${errors}>${(p) => html`<select ...${p} onChange=${set("outcome")}>${options(OUTCOMES, (v) => tl("outcome", v), form.outcome)}</select>`}<//>
      <${Field} label=${t("occurred_at")} name="occurred_at" errors=${errors}>${(p) => html`<input ...${p} type="datetime-local" step="1" required value=${form.occurred_at} onInput=${set("occurred_at")} />`}<//>
      <${Field} label=${t("satisfaction")} name="satisfaction" errors=${errors}>${(p) => html`<select ...${p} onChange=${set("satisfaction")}><option value="">–</option>${options(["1", "2", "3", "4", "5"], (v) => v, form.satisfaction)}</select>`}<//>
    </div>
    <${Field} label=${t("summary")} name="summary" errors=${errors}>${(p) => html`<textarea ...${p} rows="2" value=${form.summary} onInput=${set("summary")} />`}<//>
    <div class="row">
      <${Field} label=${t("next_step")} name="next_step" errors=${errors}>${(p) => html`<input ...${p} value=${form.next_step} onInput=${set("next_step")} />`}<//>
      <${Field} label=${t("completes")} name="completes_task_id" errors=${errors}>${(p) => html`<select ...${p} onChange=${set("completes_task_id")}>
        <option value="">${t("none")} (${t("auto")})</option>
        ${tasks.map((item) => html`<option value=${item.id} selected=${item.id === form.completes_task_id}>${item.purpose} · ${fmtDate(item.due_at)}</option>`)}
      </select>`}<//>
    </div>
    <${ErrorBox} error=${error} />
    <button type="submit" disabled=${busy}>${t("log_interaction")}</button>
    ${onCancel && html` <button type="button" onClick=${onCancel}>${t("cancel")}</button>`}
  </form>`;
}

export function SkipForm({ task, onDone, onCancel }) {
  const [reason, setReason] = useState("");
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    setError(null);
    try {
      onDone(await post(`/v1/tasks/${encodeURIComponent(task.id)}/skip`, { reason }));
    } catch (err) {
      setError(err);
    }
  };
  return html`<form class="inline-form" onSubmit=${submit} aria-label=${t("skip_task")}>
    <${Field} label=${t("skip_reason")} name="reason" errors=${error && error.fields}>${(p) => html`<input ...${p} required value=${reason} onInput=${(e) => setReason(e.target.value)} />`}<//>
    <${ErrorBox} error=${error} />
    <button type="submit">${t("skip_confirm")}</button> <button type="button" onClick=${onCancel}>${t("cancel")}</button>
  </form>`;
}

function ReasonCell({ task }) {
  return html`<span class=${`reason reason-${task.reason}`}>${tl("reason", task.reason)}</span><br /><small>${task.purpose}</small>`;
}

export function TodayPage({ user }) {
  const { query } = useLocation();
  const [repId, setRepId] = useState(query.get("rep") || "");
  const [open, setOpen] = useState(null); // [task id, "log" | "skip"]
  const [notice, setNotice] = useState("");
  const reps = useLoad(() => (user.role === "rep" ? { items: [] } : get("/v1/reps", { team: user.role === "manager" ? user.team : undefined })), [user.id]);
  const list = useLoad(() => get("/v1/worklist", { tz: tzOffset(), rep_id: repId || undefined }), [repId]);
  const done = (message) => {
    setOpen(null);
    setNotice(message);
    list.reload();
  };
  return html`<h1>${t("today_title")}</h1>
    ${user.role !== "rep" && html`<form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <${Field} label=${t("rep")} name="rep_id">${(p) => html`<select ...${p} onChange=${(e) => setRepId(e.target.value)}>
        <option value="">${user.name || user.id}</option>
        ${(reps.data?.items || []).filter((r) => r.active && r.id !== user.id).map((r) => html`<option value=${r.id} selected=${r.id === repId}>${r.name} (${r.id})</option>`)}
      </select>`}<//>
    </form>`}
    <${Notice} text=${notice} />
    <${Loaded} state=${list}>${(data) => html`
      <p data-testid="worklist-counts">${t("today_counts", data.counts)}</p>
      ${data.items.length === 0 ? html`<p class="empty">${t("empty_today")}</p>` : html`<${Table}
        className="worklist" caption=${t("today_title")}
        head=${[t("due"), t("customer"), t("tier"), t("reason"), t("actions")]}
        rows=${data.items.map((task) => html`
          <tr data-task=${task.id} class=${task.overdue ? "overdue" : ""}>
            <td>${fmtDateTime(task.due_at)}${task.overdue && html`<br /><span class="badge late">${task.days_late ? t("days_late", { n: task.days_late }) : t("overdue")}</span>`}</td>
            <td><${Link} href=${`/customers/${encodeURIComponent(task.customer_id)}`}>${task.company || task.customer_id}<//><br /><small>${tl("lifecycle", task.lifecycle)}</small></td>
            <td>${task.tier || "–"}</td>
            <td><${ReasonCell} task=${task} /></td>
            <td class="actions">
              <button type="button" onClick=${() => setOpen([task.id, "log"])} aria-expanded=${open?.[0] === task.id && open[1] === "log"}>${t("log_interaction")}</button>
              <button type="button" onClick=${() => setOpen([task.id, "skip"])} aria-expanded=${open?.[0] === task.id && open[1] === "skip"}>${t("skip_task")}</button>
            </td>
          </tr>
          ${open?.[0] === task.id && html`<tr class="form-row"><td colspan="5">${open[1] === "log"
            ? html`<${InteractionForm} customerId=${task.customer_id} task=${task} onCancel=${() => setOpen(null)}
                onDone=${(result) => done(t("logged") + (result.next_cadence_task ? " " + t("next_task", { d: fmtDate(result.next_cadence_task.due_at) }) : ""))} />`
            : html`<${SkipForm} task=${task} onCancel=${() => setOpen(null)} onDone=${() => done(t("skipped"))} />`}</td></tr>`}
        `)} />`}
    `}<//>`;
}

export function CustomersPage() {
  const { query } = useLocation();
  const initial = Object.fromEntries(["q", "tier", "lifecycle", "stage", "owner_id", "team", "industry"].map((k) => [k, query.get(k) || ""]));
  const [filters, setFilters] = useState(initial);
  const [applied, setApplied] = useState(initial);
  const [pages, setPages] = useState([]);
  const list = useLoad(async () => {
    const page = await get("/v1/customers", { ...applied, q: applied.q.length >= 2 ? applied.q : undefined, limit: 50 });
    setPages([page]);
    return page;
  }, [JSON.stringify(applied)]);
  const set = (name) => (event) => setFilters({ ...filters, [name]: event.target.value });
  const apply = (event) => {
    event.preventDefault();
    setApplied(filters);
    const params = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    history.replaceState(null, "", `/customers${params.toString() ? "?" + params : ""}`);
  };
  const more = async () => {
    const last = pages[pages.length - 1];
    const page = await get("/v1/customers", { ...applied, q: applied.q.length >= 2 ? applied.q : undefined, limit: 50, cursor: last.next_cursor });
    setPages([...pages, page]);
  };
  const items = pages.flatMap((page) => page.items);
  const last = pages[pages.length - 1];
  return html`<h1>${t("customers_title")}</h1>
    <form class="filters" onSubmit=${apply}>
      <${Field} label=${t("search")} name="q">${(p) => html`<input ...${p} type="search" minlength="2" value=${filters.q} onInput=${set("q")} />`}<//>
      <${Field} label=${t("tier")} name="tier">${(p) => html`<select ...${p} onChange=${set("tier")}><option value="">${t("any")}</option>${options(TIERS, (v) => v, filters.tier)}</select>`}<//>
      <${Field} label=${t("lifecycle")} name="lifecycle">${(p) => html`<select ...${p} onChange=${set("lifecycle")}><option value="">${t("any")}</option>${options(LIFECYCLES, (v) => tl("lifecycle", v), filters.lifecycle)}</select>`}<//>
      <${Field} label=${t("stage")} name="stage">${(p) => html`<select ...${p} onChange=${set("stage")}><option value="">${t("any")}</option>${options(STAGES, (v) => tl("stage", v), filters.stage)}</select>`}<//>
      <${Field} label=${t("owner")} name="owner_id">${(p) => html`<input ...${p} value=${filters.owner_id} onInput=${set("owner_id")} />`}<//>
      <button type="submit">${t("filter")}</button>
    </form>
    <${Loaded} state=${list}>${() => items.length === 0 ? html`<p class="empty">${t("no_customers")}</p>` : html`
      <${Table} className="customers" caption=${t("customers_title")}
        head=${[t("customer"), t("tier"), t("lifecycle"), t("stage"), t("owner"), `${t("revenue_12m")} (${t("base_currency")})`, t("last_purchase")]}
        rows=${items.map((c) => html`<tr data-customer=${c.id}>
          <td><${Link} href=${`/customers/${encodeURIComponent(c.id)}`}>${c.company}<//></td>
          <td>${c.tier}</td><td>${tl("lifecycle", c.lifecycle)}</td><td>${tl("stage", c.pipeline_stage)}</td>
          <td>${c.owner_id || "–"}</td><td class="num">${fmtMoney(c.rolling_12m_total)}</td><td>${fmtDate(c.last_purchase_at)}</td>
        </tr>`)} />
      ${last && last.next_cursor && html`<button type="button" onClick=${more}>${t("more")}</button>`}`}<//>`;
}

// one list of everything that happened to the customer, newest first
function timelineOf({ interactions, purchases, history, tasks, alerts }) {
  const entries = [];
  for (const i of interactions?.items || []) {
    entries.push({ at: i.occurred_at, type: "interaction", title: `${tl("kind", i.kind)} · ${tl("outcome", i.outcome)}`,
                   detail: [i.summary, i.next_step && `${t("next_step")}: ${i.next_step}`, i.satisfaction && `${t("satisfaction")}: ${i.satisfaction}`, i.rep_id].filter(Boolean).join(" · ") });
  }
  for (const p of purchases?.items || []) {
    entries.push({ at: p.purchased_at, type: "purchase", title: fmtMoney(p.amount, p.currency), detail: [p.external_ref, p.recorded_by].filter(Boolean).join(" · ") });
  }
  for (const s of history?.stages || []) {
    entries.push({ at: s.changed_at, type: "stage", title: `${tl("stage", s.from_stage)} → ${tl("stage", s.to_stage)}`, detail: s.changed_by || "" });
  }
  for (const c of history?.classification || []) {
    entries.push({ at: c.as_of, type: "class", title: `${c.attribute === "tier" ? t("tier") : t("lifecycle")}: ${c.attribute === "tier" ? c.old_value || "–" : tl("lifecycle", c.old_value)} → ${c.attribute === "tier" ? c.new_value : tl("lifecycle", c.new_value)}`, detail: c.reason || "" });
  }
  for (const o of history?.ownership || []) {
    entries.push({ at: o.at || o.changed_at || o.transferred_at, type: "owner", title: `${o.from_owner_id || o.from_rep_id || "–"} → ${o.to_owner_id || o.to_rep_id || "–"}`, detail: o.reason || "" });
  }
  for (const task of tasks?.items || []) {
    entries.push({ at: task.closed_at || task.due_at, type: "task", title: `${tl("status", task.status)} · ${tl("reason", task.reason)}`,
                   detail: [task.purpose, task.skip_reason, task.assignee_id].filter(Boolean).join(" · ") });
  }
  for (const a of alerts?.items || []) {
    entries.push({ at: a.resolved_at || a.raised_at, type: "alert", title: `${tl("rule", a.rule)} · ${tl("status", a.status)}${a.outcome ? " · " + tl("outcome", a.outcome) : ""}`,
                   detail: (a.signals || []).map((s) => `${s.name} ${s.value}${s.threshold !== undefined ? " / " + s.threshold : ""}`).join(", ") });
  }
  return entries.filter((e) => e.at).sort((a, b) => new Date(b.at) - new Date(a.at));
}

const EVENT_LABEL = { interaction: "ev_interaction", purchase: "ev_purchase", stage: "ev_stage", class: "ev_class", owner: "ev_owner", task: "ev_task", alert: "ev_alert" };

function Health({ health }) {
  if (!health) return null;
  return html`<section aria-labelledby="health-h" class="card health">
    <h2 id="health-h">${t("health")}</h2>
    <p class="score"><span data-testid="health-score">${health.score}</span> / 100 · <span class=${`band band-${health.band}`}>${tl("band", health.band)}</span></p>
    <h3>${t("breakdown")}</h3>
    <dl class="breakdown">${Object.entries(health.breakdown || {}).map(([name, value]) => html`
      <dt><label for=${`meter-${name}`}>${tl("sub", name)} (${t("weight")} ${health.weights?.[name] ?? "–"})</label></dt>
      <dd><meter id=${`meter-${name}`} min="0" max="1" value=${value}>${fmtPercent(value)}</meter> ${fmtPercent(value)}</dd>`)}
    </dl>
    <h3>${t("signals")}</h3>
    <dl class="signals">${Object.entries(health.signals || {}).map(([name, value]) => html`<dt>${name}</dt><dd>${value === null ? "–" : typeof value === "object" ? JSON.stringify(value) : String(value)}</dd>`)}</dl>
    ${health.open_alerts?.length > 0 && html`<h3>${t("open_alerts")}</h3><ul>${health.open_alerts.map((a) => html`<li><strong>${tl("rule", a.rule)}</strong> (${tl("status", a.status)}, ${fmtDate(a.raised_at)}): ${(a.signals || []).map((s) => `${s.name} = ${s.value}${s.threshold !== undefined ? ` (${s.threshold})` : ""}${s.detail ? ` ${s.detail}` : ""}`).join("; ")}</li>`)}</ul>`}
  </section>`;
}

export function CustomerPage({ params: [id] }) {
  const [mode, setMode] = useState(null);
  const [notice, setNotice] = useState("");
  const enc = encodeURIComponent(id);
  const state = useLoad(async () => {
    // the record decides: outside the caller's scope it answers 404 and nothing else is asked
    const customer = await get(`/v1/customers/${enc}`);
    const parts = await Promise.allSettled([
      get(`/v1/customers/${enc}/interactions`), get(`/v1/customers/${enc}/purchases`), get(`/v1/customers/${enc}/history`),
      get(`/v1/customers/${enc}/health`), allPages("/v1/tasks", { customer_id: id, limit: 500 }, 500),
      allPages("/v1/alerts", { customer_id: id, limit: 500 }, 500),
    ]);
    const [interactions, purchases, history, health, tasks, alerts] = parts.map((p) => (p.status === "fulfilled" ? p.value : null));
    return { customer, interactions, purchases, history, health, tasks, alerts, failures: parts.filter((p) => p.status === "rejected").map((p) => p.reason) };
  }, [id]);
  return html`<${Loaded} state=${state}>${(data) => {
    const c = data.customer;
    const openTasks = data.interactions?.open_tasks || [];
    const entries = timelineOf(data);
    return html`<p><${Link} href="/customers">← ${t("customers_title")}<//></p>
      <h1>${c.company}</h1>
      <${Notice} text=${notice} />
      ${data.failures.map((err) => html`<${ErrorBox} error=${err} />`)}
      <div class="columns">
        <section class="card" aria-labelledby="profile-h">
          <h2 id="profile-h">${t("profile")}</h2>
          <dl class="profile">
            <dt>${t("tier")}</dt><dd data-testid="tier">${c.tier}</dd>
            <dt>${t("lifecycle")}</dt><dd>${tl("lifecycle", c.lifecycle)}${c.flagged_at_risk ? " ⚠" : ""}</dd>
            <dt>${t("stage")}</dt><dd>${tl("stage", c.pipeline_stage)}</dd>
            <dt>${t("owner")}</dt><dd>${c.owner_id || "–"} · ${c.team || t("no_team")}</dd>
            <dt>${t("industry")}</dt><dd>${c.industry || "–"}</dd>
            <dt>${t("source_channel")}</dt><dd>${c.source_channel || "–"}</dd>
            <dt>${t("revenue_12m")}</dt><dd>${fmtMoney(c.rolling_12m_total)} <small>(${t("base_currency")}, ${fmtNumber(c.purchase_count)} ×)</small></dd>
            <dt>${t("last_purchase")}</dt><dd>${fmtDate(c.last_purchase_at)}</dd>
            <dt>${t("tags")}</dt><dd>${(c.tags || []).join(", ") || "–"}</dd>
            <dt>${t("important_dates")}</dt><dd>${(c.important_dates || []).map((d) => `${d.label || d.kind} ${fmtDate(d.date)}`).join("; ") || "–"}</dd>
            <dt>${t("created")}</dt><dd>${fmtDate(c.created_at)}</dd>
            <dt>${t("notes")}</dt><dd>${c.notes || "–"}</dd>
          </dl>
          <h3>${t("contacts")}</h3>
          ${(c.contacts || []).length === 0 ? html`<p>–</p>` : html`<${Table} className="contacts" head=${[t("name"), t("role"), t("phone"), t("email")]}
            rows=${c.contacts.map((p) => html`<tr><td>${p.name}${p.is_decision_maker && html` <span class="badge dm">${t("decision_maker")}</span>`}</td><td>${p.role || "–"}</td><td>${p.phone || "–"}</td><td>${p.email || "–"}</td></tr>`)} />`}
        </section>
        <${Health} health=${data.health} />
      </div>
      <section class="card" aria-labelledby="tasks-h">
        <h2 id="tasks-h">${t("open_tasks")}</h2>
        ${openTasks.length === 0 ? html`<p>–</p>` : html`<ul class="open-tasks">${openTasks.map((task) => html`<li data-task=${task.id}>
          ${fmtDateTime(task.due_at)} · <${ReasonCell} task=${task} />
          <button type="button" onClick=${() => setMode(["skip", task])}>${t("skip_task")}</button>
        </li>`)}</ul>`}
        ${mode?.[0] === "skip" && html`<${SkipForm} task=${mode[1]} onCancel=${() => setMode(null)} onDone=${() => { setMode(null); setNotice(t("skipped")); state.reload(); }} />`}
        ${mode?.[0] === "log"
          ? html`<${InteractionForm} customerId=${c.id} openTasks=${openTasks} onCancel=${() => setMode(null)}
              onDone=${(result) => { setMode(null); setNotice(t("logged") + (result.next_cadence_task ? " " + t("next_task", { d: fmtDate(result.next_cadence_task.due_at) }) : "")); state.reload(); }} />`
          : html`<button type="button" class="primary" onClick=${() => setMode(["log"])}>${t("log_interaction")}</button>`}
      </section>
      <section class="card" aria-labelledby="audit-h">
        <h2 id="audit-h">${t("changes")}</h2>
        ${(data.history?.audit || []).length === 0 ? html`<p>–</p>` : html`<details><summary>${t("changes_count", { n: data.history.audit.length })}</summary>
          <${Table} className="audit" head=${[t("occurred_at"), t("actor"), t("action"), t("changed")]}
            rows=${[...data.history.audit].reverse().map((a) => html`<tr><td>${fmtDateTime(a.at)}</td><td>${a.actor_id} (${tl("role", a.actor_role)})</td><td><code>${a.action}</code></td>
              <td><small>${Object.entries(a.changes || {}).map(([k, v]) => `${k}: ${Array.isArray(v) && v.length === 2 ? `${v[0] ?? "–"} → ${v[1] ?? "–"}` : typeof v === "object" && v !== null ? JSON.stringify(v) : v}`).join("; ")}</small></td></tr>`)} /></details>`}
      </section>
      <section class="card" aria-labelledby="timeline-h">
        <h2 id="timeline-h">${t("timeline")}</h2>
        <ol class="timeline">${entries.map((e) => html`<li class=${`ev ev-${e.type}`} data-type=${e.type}>
          <time datetime=${e.at}>${fmtDateTime(e.at)}</time> <span class="ev-kind">${t(EVENT_LABEL[e.type])}</span> <strong>${e.title}</strong>
          ${e.detail && html`<div class="ev-detail">${e.detail}</div>`}</li>`)}</ol>
      </section>`;
  }}<//>`;
}
