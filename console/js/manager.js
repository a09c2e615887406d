// A manager's pages: the team dashboard, the alert queue, a departing rep's hand-over, spreadsheet imports.
import { useEffect, useState } from "preact/hooks";
import { allPages, download, get, post, upload } from "./api.js";
import { Chart } from "./charts.js";
import { fmtDate, fmtDateTime, fmtMoney, fmtNumber, fmtPercent, t, tl } from "./i18n.js";
import { ErrorBox, Field, Link, Loaded, Notice, Table, html, options, useLoad } from "./ui.js";
import { LIFECYCLES, STAGES, TIERS } from "./rep.js";

const PERIOD_KINDS = ["day", "week", "month", "quarter", "half", "year"];
const RULES = ["silence", "no_repurchase", "interval_lengthening", "unanswered_followups", "open_complaint", "low_satisfaction"];

function teamsOf(reps) {
  return [...new Set(reps.map((r) => r.team).filter(Boolean))].sort();
}

// rows of a figure table -> x periods and one series per breakdown value (or one series)
function seriesOf(table, column, label) {
  const periods = [...new Set(table.rows.map((row) => row.period))];
  const key = table.breakdown;
  const groups = key ? [...new Set(table.rows.map((row) => row[key] ?? "–"))] : [label];
  const series = groups.map((group) => ({
    name: String(group), type: "line", connectNulls: false,
    data: periods.map((period) => {
      const row = table.rows.find((r) => r.period === period && (!key || (r[key] ?? "–") === group));
      return row ? row[column] : null;
    }),
  }));
  return { periods, series };
}

const percentAxis = { type: "value", min: 0, axisLabel: { formatter: (v) => fmtPercent(v) } };
const percentTooltip = { trigger: "axis", valueFormatter: (v) => fmtPercent(v) };

function rateChart(table, column, label) {
  const { periods, series } = seriesOf(table, column, label);
  return {
    option: { tooltip: percentTooltip, legend: { type: "scroll", bottom: 0 }, grid: { left: 50, right: 20, top: 20, bottom: 50 },
              xAxis: { type: "category", data: periods }, yAxis: percentAxis, series },
    table: [[t("period"), ...series.map((s) => s.name)], periods.map((p, i) => [p, ...series.map((s) => fmtPercent(s.data[i]))])],
  };
}

function barChart(categories, values, name) {
  return {
    option: { tooltip: { trigger: "axis" }, grid: { left: 50, right: 20, top: 20, bottom: 40 },
              xAxis: { type: "category", data: categories }, yAxis: { type: "value", minInterval: 1 },
              series: [{ name, type: "bar", data: values }] },
    table: [["", name], categories.map((c, i) => [c, fmtNumber(values[i])])],
  };
}

// the customers a figure counted in its period (GET /v1/reports/customers), each read from the customers API
async function countedCustomers(behind) {
  const page = await get("/v1/reports/customers", { ...behind, limit: 50 });
  const items = await Promise.all(page.items.map((item) => get(`/v1/customers/${encodeURIComponent(item.customer_id)}`)
    .catch(() => ({ id: item.customer_id, company: item.customer_id }))));
  return { items, next_cursor: page.next_cursor, total: page.total };
}

// the customers behind a clicked figure: those a period's figure counted (drill.behind), or those in a class
// now, from the customers listing (drill.filters, the same filters the figure used)
function Behind({ drill, onClose }) {
  const state = useLoad(() => drill.behind ? countedCustomers(drill.behind) : get("/v1/customers", { ...drill.filters, limit: 50 }),
    [JSON.stringify(drill)]);
  const params = new URLSearchParams(Object.entries(drill.filters || {}).filter(([, v]) => v));
  return html`<section class="card drill" aria-labelledby="drill-h" data-testid="drill">
    <h2 id="drill-h">${drill.label}</h2>
    <${Loaded} state=${state}>${(page) => page.items.length === 0 ? html`<p class="empty">${t("no_customers")}</p>` : html`
      <${Table} head=${[t("customer"), t("tier"), t("lifecycle"), t("owner"), t("revenue_12m")]}
        rows=${page.items.map((c) => html`<tr data-customer=${c.id}><td><${Link} href=${`/customers/${encodeURIComponent(c.id)}`}>${c.company}<//></td>
          <td>${c.tier}</td><td>${tl("lifecycle", c.lifecycle)}</td><td>${c.owner_id || "–"}</td><td class="num">${fmtMoney(c.rolling_12m_total)}</td></tr>`)} />
      ${drill.behind ? page.next_cursor && html`<p>${t("first_of", { n: page.items.length, total: page.total })}</p>`
        : page.next_cursor && html`<p><${Link} href=${`/customers?${params}`}>${t("more")} →<//></p>`}`}<//>
    <button type="button" onClick=${onClose}>${t("close")}</button>
  </section>`;
}

export function DashboardPage({ user }) {
  const [form, setForm] = useState({ period_kind: "month", from: "", to: "", breakdown: "", team: "", rep: "", period: "" });
  const [applied, setApplied] = useState(form);
  const [drill, setDrill] = useState(null);
  const reps = useLoad(() => get("/v1/reps"), [user.id]);
  const scope = { team: applied.team || undefined, rep: applied.rep || undefined };
  const range = { period_kind: applied.period_kind, from: applied.from || undefined, to: applied.to || undefined, ...scope };
  // coverage has a bar per rep of a team; an admin looking at everyone gets one per team (thousands of reps otherwise)
  const coverageBy = user.role === "admin" && !applied.team && !applied.rep ? "team" : "rep";
  const data = useLoad(async () => {
    const today = new Date().toISOString().slice(0, 10);
    const [churn, repurchase, board, followups, tiers, lifecycles, alerts] = await Promise.all([
      get("/v1/reports/churn", { ...range, breakdown: applied.breakdown || undefined }),
      get("/v1/reports/repurchase", { ...range, breakdown: applied.breakdown || undefined }),
      get("/v1/reports/dashboard", { ...scope, period: applied.period || undefined }),
      // coverage by rep in the last period of the range (today's when none is chosen)
      get("/v1/reports/followups", { period_kind: applied.period_kind, from: applied.to || today, to: applied.to || today, breakdown: coverageBy, ...scope }),
      get("/v1/reports/distribution", { dimension: "tier", ...scope }),
      get("/v1/reports/distribution", { dimension: "lifecycle", ...scope }),
      get("/v1/alerts/summary"),
    ]);
    return { churn, repurchase, board, followups, tiers, lifecycles, alerts };
  }, [JSON.stringify(applied)]);
  const set = (name) => (event) => setForm({ ...form, [name]: event.target.value });
  const teams = teamsOf(reps.data?.items || []);
  const breakdowns = ["tier", "lifecycle", "industry", "rep", ...(user.role === "admin" ? ["team"] : [])];
  const drillScope = { team: applied.team || (user.role === "manager" ? user.team : undefined), owner_id: applied.rep || undefined };
  // a point of a rate chart: the customers its numerator counted in that period (and breakdown value)
  const counted = (metric, table) => (p) => {
    const key = table.breakdown, value = key && p.seriesName !== "–" ? p.seriesName : undefined;
    setDrill({ label: t("customers_behind", { label: `${t(metric)} · ${p.name}${value ? ` · ${value}` : ""}` }),
               behind: { metric, period: p.name, ...scope, ...(value ? { [key]: value } : {}) } });
  };
  return html`<h1>${t("dashboard_title")}</h1>
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); setDrill(null); setApplied(form); }}>
      <${Field} label=${t("period_kind")} name="period_kind">${(p) => html`<select ...${p} onChange=${set("period_kind")}>${options(PERIOD_KINDS, (v) => tl("pk", v), form.period_kind)}</select>`}<//>
      <${Field} label=${t("from")} name="from">${(p) => html`<input ...${p} type="date" value=${form.from} onInput=${set("from")} />`}<//>
      <${Field} label=${t("to")} name="to">${(p) => html`<input ...${p} type="date" value=${form.to} onInput=${set("to")} />`}<//>
      <${Field} label=${t("headline_period")} name="period" errors=${data.error?.fields}>${(p) => html`<input ...${p} placeholder="2026-Q3" size="9" value=${form.period} onInput=${set("period")} />`}<//>
      <${Field} label=${t("breakdown")} name="breakdown">${(p) => html`<select ...${p} onChange=${set("breakdown")}><option value="">${t("breakdown_none")}</option>${options(breakdowns, (v) => t(v === "rep" ? "rep" : v), form.breakdown)}</select>`}<//>
      ${user.role === "admin" && html`<${Field} label=${t("team")} name="team">${(p) => html`<select ...${p} onChange=${set("team")}><option value="">${t("all")}</option>${options(teams, (v) => v, form.team)}</select>`}<//>`}
      <${Field} label=${t("rep")} name="rep">${(p) => html`<select ...${p} onChange=${set("rep")}><option value="">${t("all")}</option>
        ${(reps.data?.items || []).filter((r) => r.role === "rep" && (!form.team || r.team === form.team)).map((r) => html`<option value=${r.id} selected=${r.id === form.rep}>${r.name} (${r.id})</option>`)}</select>`}<//>
      <button type="submit">${t("filter")}</button>
    </form>
    <${Loaded} state=${data}>${(d) => {
      const churn = rateChart(d.churn, "churn_rate", t("churn_rate"));
      const repurchase = rateChart(d.repurchase, "repurchase_rate", t("repurchase_rate"));
      const funnelRows = d.board.funnel || [];
      const funnel = barChart(funnelRows.map((s) => tl("stage", s.stage)), funnelRows.map((s) => s.entered), t("entered"));
      const repRows = d.followups.rows;
      const coverage = {
        option: { tooltip: percentTooltip, legend: { bottom: 0 }, grid: { left: 50, right: 20, top: 20, bottom: 50 },
                  xAxis: { type: "category", data: repRows.map((r) => r[coverageBy] ?? "–") }, yAxis: { ...percentAxis, max: 1 },
                  series: [{ name: t("followup_coverage"), type: "bar", data: repRows.map((r) => r.followup_coverage) },
                           { name: t("missed_followup_rate"), type: "bar", data: repRows.map((r) => r.missed_followup_rate) }] },
        table: [[t(coverageBy), t("followup_coverage"), t("missed_followup_rate")], repRows.map((r) => [r[coverageBy] ?? "–", fmtPercent(r.followup_coverage), fmtPercent(r.missed_followup_rate)])],
      };
      const bands = ["healthy", "watch", "at_risk"];
      const health = barChart(bands.map((b) => tl("band", b)), bands.map((b) => d.alerts.health_bands?.[b] ?? 0), t("customers"));
      const tiers = barChart(d.tiers.values.map((v) => v.value), d.tiers.values.map((v) => v.customers), t("customers"));
      const lifecycles = barChart(d.lifecycles.values.map((v) => tl("lifecycle", v.value)), d.lifecycles.values.map((v) => v.customers), t("customers"));
      const f = d.board.figures || {};
      return html`
        <section aria-labelledby="headline-h"><h2 id="headline-h">${t("headline")} · ${d.board.period?.label}</h2>
          <dl class="figures">
            ${[["churn_rate", fmtPercent(f.churn_rate)], ["repurchase_rate", fmtPercent(f.repurchase_rate)], ["followup_coverage", fmtPercent(f.followup_coverage)],
               ["missed_followup_rate", fmtPercent(f.missed_followup_rate)], ["revenue", fmtMoney(f.revenue)]].map(([k, v]) => html`<div data-figure=${k}><dt>${k === "revenue" ? `${t("revenue")} (${t("base_currency")})` : t(k)}</dt><dd>${v}</dd></div>`)}
          </dl></section>
        <p class="hint">${t("click_hint")}</p>
        ${drill && html`<${Behind} drill=${drill} onClose=${() => setDrill(null)} />`}
        <div class="charts">
          <${Chart} id="chart-churn" title=${t("churn_over_time")} ...${churn} onClick=${counted("churned", d.churn)} />
          <${Chart} id="chart-repurchase" title=${t("repurchase_over_time")} ...${repurchase} onClick=${counted("repeat_buyers", d.repurchase)} />
          <${Chart} id="chart-funnel" title=${`${t("funnel")} · ${d.board.period?.label}`} ...${funnel}
            onClick=${(p) => setDrill({ label: t("entered_stage", { stage: p.name, period: d.board.period?.label }),
                                        behind: { metric: `stage.entered:${funnelRows[p.dataIndex].stage}`, period: d.board.period?.label, ...scope } })} />
          <${Chart} id="chart-coverage" title=${`${t(coverageBy === "team" ? "coverage_by_team" : "coverage_by_rep")} · ${d.followups.from}`} ...${coverage}
            onClick=${(p) => { const value = repRows[p.dataIndex]?.[coverageBy]; if (value) setDrill({ label: t("customers_behind", { label: `${t("due_customers")} · ${d.followups.from} · ${value}` }),
                                                                                            behind: { metric: "followup.customers_due", period: d.followups.from, [coverageBy]: value } }); }} />
          <${Chart} id="chart-tier" title=${t("tier_distribution")} ...${tiers}
            onClick=${(p) => setDrill({ label: t("customers_behind", { label: `${t("tier")} ${p.name}` }), filters: { ...drillScope, tier: d.tiers.values[p.dataIndex].value } })} />
          <${Chart} id="chart-lifecycle" title=${t("lifecycle_distribution")} ...${lifecycles}
            onClick=${(p) => setDrill({ label: t("customers_behind", { label: p.name }), filters: { ...drillScope, lifecycle: d.lifecycles.values[p.dataIndex].value } })} />
          <${Chart} id="chart-health" title=${`${t("health_distribution")} (${t("in_scope")})`} ...${health} />
        </div>`;
    }}<//>`;
}

function AlertActions({ alert, entry, reps, onDone }) {
  const [mode, setMode] = useState(null);
  const [form, setForm] = useState({ note: "", outcome: "recovered", to_owner_id: "" });
  const [error, setError] = useState(null);
  const set = (name) => (event) => setForm({ ...form, [name]: event.target.value });
  const run = async (event) => {
    event.preventDefault();
    setError(null);
    try {
      if (mode === "ack") await post(`/v1/alerts/${alert.id}/acknowledge`, form.note ? { note: form.note } : {});
      if (mode === "resolve") await post(`/v1/alerts/${alert.id}/resolve`, { outcome: form.outcome, ...(form.note ? { note: form.note } : {}) });
      // the queue follows the customer's owner: reassigning an alert is giving the customer to another rep
      if (mode === "reassign") await post(`/v1/customers/${encodeURIComponent(entry.customer_id)}/transfer`, { to_owner_id: form.to_owner_id, ...(form.note ? { reason: form.note } : {}) });
      setMode(null);
      onDone(t("saved"));
    } catch (err) {
      setError(err);
    }
  };
  const candidates = reps.filter((r) => r.active && r.id !== entry.owner_id && (!entry.team || r.team === entry.team));
  return html`<div class="alert-actions">
    ${alert.status !== "acknowledged" && html`<button type="button" onClick=${() => setMode("ack")}>${t("acknowledge")}</button> `}
    <button type="button" onClick=${() => setMode("resolve")}>${t("resolve")}</button>
    <button type="button" onClick=${() => setMode("reassign")}>${t("reassign")}</button>
    ${mode && html`<form class="inline-form" onSubmit=${run} aria-label=${t(mode === "ack" ? "acknowledge" : mode)}>
      ${mode === "resolve" && html`<${Field} label=${t("outcome")} name="outcome" errors=${error?.fields}>${(p) => html`<select ...${p} onChange=${set("outcome")}>${options(["recovered", "lost", "false_alarm"], (v) => tl("outcome", v), form.outcome)}</select>`}<//>`}
      ${mode === "reassign" && html`<${Field} label=${t("new_owner")} name="to_owner_id" errors=${error?.fields}>${(p) => html`<select ...${p} required onChange=${set("to_owner_id")}><option value="">–</option>${candidates.map((r) => html`<option value=${r.id}>${r.name} (${r.id})</option>`)}</select>`}<//>`}
      <${Field} label=${t("note")} name="note" errors=${error?.fields}>${(p) => html`<input ...${p} value=${form.note} onInput=${set("note")} />`}<//>
      <${ErrorBox} error=${error} />
      <button type="submit">${t(mode === "ack" ? "acknowledge" : mode)}</button> <button type="button" onClick=${() => setMode(null)}>${t("cancel")}</button>
    </form>`}
  </div>`;
}

export function AlertQueuePage({ user }) {
  const [filters, setFilters] = useState({ rule: "", tier: "", rep: "" });
  const [applied, setApplied] = useState(filters);
  const [notice, setNotice] = useState("");
  const [names, setNames] = useState({});
  const reps = useLoad(() => get("/v1/reps"), [user.id]);
  const queue = useLoad(async () => {
    const page = await get("/v1/alert-queue", { ...applied, limit: 50 });
    // the queue names customers by id; their company names come from the customers service
    Promise.allSettled(page.items.map((e) => get(`/v1/customers/${encodeURIComponent(e.customer_id)}`)))
      .then((all) => setNames(Object.fromEntries(all.filter((r) => r.status === "fulfilled").map((r) => [r.value.id, r.value.company]))));
    return page;
  }, [JSON.stringify(applied)]);
  const set = (name) => (event) => setFilters({ ...filters, [name]: event.target.value });
  return html`<h1>${t("alerts_title")}</h1>
    <form class="filters" onSubmit=${(e) => { e.preventDefault(); setApplied(filters); }}>
      <${Field} label=${t("rules")} name="rule">${(p) => html`<select ...${p} onChange=${set("rule")}><option value="">${t("any")}</option>${options(RULES, (v) => tl("rule", v), filters.rule)}</select>`}<//>
      <${Field} label=${t("tier")} name="tier">${(p) => html`<select ...${p} onChange=${set("tier")}><option value="">${t("any")}</option>${options(TIERS, (v) => v, filters.tier)}</select>`}<//>
      ${user.role !== "rep" && html`<${Field} label=${t("rep")} name="rep">${(p) => html`<select ...${p} onChange=${set("rep")}><option value="">${t("all")}</option>${(reps.data?.items || []).filter((r) => r.role === "rep").map((r) => html`<option value=${r.id}>${r.name} (${r.id})</option>`)}</select>`}<//>`}
      <button type="submit">${t("filter")}</button>
    </form>
    <${Notice} text=${notice} />
    <${Loaded} state=${queue}>${(page) => html`
      <p data-testid="queue-total">${t("queue_total", { n: fmtNumber(page.customers), v: fmtMoney(page.value_at_stake) })}</p>
      ${page.items.length === 0 ? html`<p class="empty">${t("queue_empty")}</p>` : html`<${Table} className="queue"
        head=${[t("customer"), t("value_at_stake"), t("health"), t("owner"), t("open_alerts")]}
        rows=${page.items.map((e) => html`<tr data-customer=${e.customer_id}>
          <td><${Link} href=${`/customers/${encodeURIComponent(e.customer_id)}`}>${names[e.customer_id] || e.customer_id}<//><br /><small>${e.tier} · ${tl("lifecycle", e.lifecycle)}</small></td>
          <td class="num">${fmtMoney(e.value_at_stake)}<br /><small>${t("risk")} ${fmtPercent(e.risk)} · ${fmtMoney(e.revenue_12m)}</small></td>
          <td>${e.health_score ?? "–"} <span class=${`band band-${e.band}`}>${tl("band", e.band)}</span></td>
          <td>${e.owner_id || "–"}<br /><small>${e.team || ""}</small></td>
          <td><ul class="alerts">${e.alerts.map((a) => html`<li data-alert=${a.id}><strong>${tl("rule", a.rule)}</strong> · ${tl("status", a.status)} · ${t("raised")} ${fmtDate(a.raised_at)}
            <br /><small>${(a.signals || []).map((s) => `${s.name} ${s.value}${s.threshold !== undefined ? " / " + s.threshold : ""}`).join(", ")}</small>
            <${AlertActions} alert=${a} entry=${e} reps=${reps.data?.items || []} onDone=${(m) => { setNotice(m); queue.reload(); }} /></li>`)}</ul></td>
        </tr>`)} />`}`}<//>`;
}

export function HandoverPage({ user }) {
  const [form, setForm] = useState({ from: "", mode: "to_owner_id", target: "", reason: "", deactivate: true });
  const [preview, setPreview] = useState(null);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const reps = useLoad(() => get("/v1/reps", user.role === "manager" ? { team: user.team } : undefined), [user.id]);
  const all = reps.data?.items || [];
  const set = (name) => (event) => { setPreview(null); setResult(null); setForm({ ...form, [name]: event.target.type === "checkbox" ? event.target.checked : event.target.value }); };
  const body = () => ({ [form.mode]: form.target, deactivate: form.deactivate, ...(form.reason ? { reason: form.reason } : {}) });
  const doPreview = async (event) => {
    event.preventDefault();
    setError(null);
    try {  // the API's dry run: the same plan the hand-over will follow, round-robin turn included
      setPreview(await post(`/v1/reps/${encodeURIComponent(form.from)}/handover`, { ...body(), dry_run: true }));
    } catch (err) {
      setError(err);
    }
  };
  const run = async () => {
    setError(null);
    try {
      setResult(await post(`/v1/reps/${encodeURIComponent(form.from)}/handover`, body()));
      setPreview(null);
      reps.reload();
    } catch (err) {
      setError(err);
    }
  };
  const teams = teamsOf(all);
  return html`<h1>${t("handover_title")}</h1>
    <form onSubmit=${doPreview} class="card">
      <div class="row">
        <${Field} label=${t("departing")} name="from" errors=${error?.fields}>${(p) => html`<select ...${p} required onChange=${set("from")}><option value="">–</option>${all.filter((r) => r.active && r.role === "rep").map((r) => html`<option value=${r.id} selected=${r.id === form.from}>${r.name} (${r.id}, ${r.team || "–"})</option>`)}</select>`}<//>
        <fieldset><legend>${t("target")}</legend>
          <label><input type="radio" name="mode" value="to_owner_id" checked=${form.mode === "to_owner_id"} onChange=${set("mode")} /> ${t("to_owner")}</label>
          <label><input type="radio" name="mode" value="to_team" checked=${form.mode === "to_team"} onChange=${set("mode")} /> ${t("to_team")}</label>
        </fieldset>
        ${form.mode === "to_owner_id"
          ? html`<${Field} label=${t("new_owner")} name="to_owner_id" errors=${error?.fields}>${(p) => html`<select ...${p} required onChange=${set("target")}><option value="">–</option>${all.filter((r) => r.active && r.id !== form.from).map((r) => html`<option value=${r.id} selected=${r.id === form.target}>${r.name} (${r.id})</option>`)}</select>`}<//>`
          : html`<${Field} label=${t("team")} name="to_team" errors=${error?.fields}>${(p) => html`<select ...${p} required onChange=${set("target")}><option value="">–</option>${options(user.role === "manager" ? [user.team] : teams, (v) => v, form.target)}</select>`}<//>`}
      </div>
      <div class="row">
        <${Field} label=${t("reason")} name="reason" errors=${error?.fields}>${(p) => html`<input ...${p} value=${form.reason} onInput=${set("reason")} />`}<//>
        <div class="field"><label><input type="checkbox" checked=${form.deactivate} onChange=${set("deactivate")} /> ${t("deactivate")}</label></div>
      </div>
      <${ErrorBox} error=${error} />
      <button type="submit">${t("preview")}</button>
    </form>
    ${preview && html`<section class="card" aria-labelledby="preview-h" data-testid="handover-preview">
      <h2 id="preview-h">${t("preview")}</h2>
      <p>${t("preview_owns", { rep: form.from, n: fmtNumber(preview.moved) })}</p>
      <${Table} head=${[t("owner"), t("customers")]} rows=${Object.entries(preview.by_new_owner || {}).map(([rep, count]) => html`<tr><td>${rep}</td><td>${fmtNumber(count)}</td></tr>`)} />
      <ul>${preview.customers.slice(0, 20).map((c) => html`<li>${c.company} → ${c.to_owner_id}</li>`)}${preview.moved > 20 && html`<li>…</li>`}</ul>
      <button type="button" class="primary" onClick=${run} disabled=${!form.target}>${t("do_handover")}</button>
    </section>`}
    ${result && html`<section class="card" role="status" data-testid="handover-result"><p>${t("handover_done", { n: result.moved })}</p>
      <${Table} head=${[t("owner"), t("customers")]} rows=${Object.entries(result.by_new_owner || {}).map(([rep, count]) => html`<tr><td>${rep}</td><td>${count}</td></tr>`)} /></section>`}`;
}

function JobRow({ job }) {
  return html`<tr data-job=${job.id}><td>${fmtDateTime(job.created_at)}</td><td>${job.filename}</td><td>${job.kind || "–"}${job.dry_run ? " (dry run)" : ""}</td>
    <td>${tl("job", job.status)}${job.error ? html`<br /><small class="field-error">${job.error}</small>` : ""}</td>
    <td class="num">${fmtNumber(job.imported)} / ${fmtNumber(job.unchanged)} / ${fmtNumber(job.rejected)}</td>
    <td>${job.rejected > 0 && html`<button type="button" onClick=${() => download(`/v1/imports/${job.id}/rejections`, `${job.filename}.rejected.csv`)}>${t("download_rejected")}</button>`}</td></tr>`;
}

export function ImportsPage({ user }) {
  const [file, setFile] = useState(null);
  const [form, setForm] = useState({ kind: "", dry_run: false, timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
  const [progress, setProgress] = useState(null);
  const [job, setJob] = useState(null);
  const [error, setError] = useState(null);
  const jobs = useLoad(() => get("/v1/imports", { limit: 20 }), [user.id]);
  const set = (name) => (event) => setForm({ ...form, [name]: event.target.type === "checkbox" ? event.target.checked : event.target.value });
  useEffect(() => {
    // poll the job until it is done or failed
    if (!job || ["done", "failed"].includes(job.status) || job.status === "awaiting_file") return undefined;
    const timer = setTimeout(() => get(`/v1/imports/${job.id}`).then(setJob).catch(setError), 800);
    return () => clearTimeout(timer);
  }, [job]);
  useEffect(() => { if (job && ["done", "failed"].includes(job.status)) jobs.reload(); }, [job?.status]);
  const start = async (event) => {
    event.preventDefault();
    setError(null);
    setJob(null);
    try {
      const created = await post("/v1/imports", { kind: form.kind || null, filename: file.name, dry_run: form.dry_run, timezone: form.timezone });
      setJob(created);
      setProgress(0);
      setJob(await upload(`/v1/imports/${created.id}/file`, file, setProgress));
      setProgress(1);
    } catch (err) {
      setError(err);
    }
  };
  const total = job?.rows_total;
  return html`<h1>${t("imports_title")}</h1>
    <form class="card" onSubmit=${start}>
      <div class="row">
        <${Field} label=${t("file")} name="file" errors=${error?.fields}>${(p) => html`<input ...${p} type="file" required accept=".csv,.txt,.tsv,.xlsx" onChange=${(e) => setFile(e.target.files[0] || null)} />`}<//>
        <${Field} label=${t("kind")} name="kind" errors=${error?.fields}>${(p) => html`<select ...${p} onChange=${set("kind")}><option value="">${t("detect")}</option>${options(["customers", "purchases", "interactions"], (v) => v, form.kind)}</select>`}<//>
        <${Field} label=${t("timezone")} name="timezone" errors=${error?.fields}>${(p) => html`<input ...${p} value=${form.timezone} onInput=${set("timezone")} />`}<//>
        <div class="field"><label><input type="checkbox" name="dry_run" checked=${form.dry_run} onChange=${set("dry_run")} /> ${t("dry_run")}</label></div>
      </div>
      <${ErrorBox} error=${error} />
      <button type="submit" disabled=${!file}>${t("start_import")}</button>
    </form>
    ${job && html`<section class="card" aria-labelledby="job-h" data-testid="import-job" data-status=${job.status}>
      <h2 id="job-h">${job.filename} · ${tl("job", job.status)}</h2>
      ${progress !== null && progress < 1 && html`<p><label for="upload-progress">${t("uploading", { p: Math.round(progress * 100) })}</label> <progress id="upload-progress" max="1" value=${progress}></progress></p>`}
      <p><label for="rows-progress">${t("rows", { done: fmtNumber(job.rows_processed), total: total == null ? "?" : fmtNumber(total) })}</label>
        <progress id="rows-progress" max=${total || 1} value=${total ? job.rows_processed : undefined}></progress></p>
      <p>${t("imported")}: <strong data-testid="imported">${fmtNumber(job.imported)}</strong> · ${t("unchanged")}: ${fmtNumber(job.unchanged)} · ${t("rejected")}: <strong data-testid="rejected">${fmtNumber(job.rejected)}</strong></p>
      ${job.error && html`<p class="error" role="alert">${job.error}</p>`}
      ${job.rejected > 0 && ["done", "failed"].includes(job.status) && html`<button type="button" onClick=${() => download(`/v1/imports/${job.id}/rejections`, `${job.filename}.rejected.csv`).catch(setError)}>${t("download_rejected")}</button>`}
    </section>`}
    <h2>${t("recent_imports")}</h2>
    <${Loaded} state=${jobs}>${(data) => html`<${Table} head=${[t("created"), t("file"), t("kind"), "", `${t("imported")} / ${t("unchanged")} / ${t("rejected")}`, ""]}
      rows=${data.items.map((j) => html`<${JobRow} job=${j} />`)} />`}<//>`;
}
