// An admin's pages: the reps directory, churn rules and health-score settings, the cadence policy.
import { useState } from "preact/hooks";
import { get, patch, post, put } from "./api.js";
import { fmtDateTime, t, tl } from "./i18n.js";
import { ErrorBox, Field, Loaded, Notice, Table, html, options, useLoad } from "./ui.js";

const ROLES = ["rep", "manager", "admin"];

function PasswordForm({ rep, onDone }) {
  const [password, setPassword] = useState("");
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    setError(null);
    try {
      await put(`/v1/reps/${encodeURIComponent(rep.id)}/password`, { password });
      onDone(t("password_set"));
    } catch (err) {
      setError(err);
    }
  };
  return html`<form class="inline-form" onSubmit=${submit} aria-label=${`${t("set_password")} ${rep.id}`}>
    <${Field} label=${`${t("new_password")} (${rep.id})`} name="password" errors=${error?.fields}>${(p) => html`<input ...${p} type="password" autocomplete="new-password" required value=${password} onInput=${(e) => setPassword(e.target.value)} />`}<//>
    <${ErrorBox} error=${error} />
    <button type="submit">${t("set_password")}</button> <button type="button" onClick=${() => onDone("")}>${t("cancel")}</button>
  </form>`;
}

export function RepsPage() {
  const blank = { id: "", name: "", email: "", team: "", role: "rep", manager_id: "" };
  const [form, setForm] = useState(blank);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const [passwordFor, setPasswordFor] = useState(null);
  const reps = useLoad(() => get("/v1/reps"), []);
  const set = (name) => (event) => setForm({ ...form, [name]: event.target.value });
  const register = async (event) => {
    event.preventDefault();
    setError(null);
    const body = Object.fromEntries(Object.entries(form).map(([k, v]) => [k, v === "" && k !== "id" && k !== "name" ? null : v]));
    try {
      const rep = await post("/v1/reps", body);
      setForm(blank);
      setNotice(`${t("saved")} ${rep.id}`);
      reps.reload();
    } catch (err) {
      setError(err);
    }
  };
  const setActive = async (rep, active) => {
    try {
      await patch(`/v1/reps/${encodeURIComponent(rep.id)}`, { active });
      setNotice(`${t("saved")} ${rep.id}`);
      reps.reload();
    } catch (err) {
      setError(err);
    }
  };
  const errors = error?.fields;
  return html`<h1>${t("reps_title")}</h1>
    <${Notice} text=${notice} />
    <form class="card" onSubmit=${register} aria-labelledby="register-h">
      <h2 id="register-h">${t("register")}</h2>
      <div class="row">
        <${Field} label=${t("id")} name="id" errors=${errors}>${(p) => html`<input ...${p} required value=${form.id} onInput=${set("id")} />`}<//>
        <${Field} label=${t("name")} name="name" errors=${errors}>${(p) => html`<input ...${p} required value=${form.name} onInput=${set("name")} />`}<//>
        <${Field} label=${t("email")} name="email" errors=${errors}>${(p) => html`<input ...${p} type="email" value=${form.email} onInput=${set("email")} />`}<//>
        <${Field} label=${t("team")} name="team" errors=${errors}>${(p) => html`<input ...${p} value=${form.team} onInput=${set("team")} />`}<//>
        <${Field} label=${t("role")} name="role" errors=${errors}>${(p) => html`<select ...${p} onChange=${set("role")}>${options(ROLES, (v) => tl("role", v), form.role)}</select>`}<//>
        <${Field} label=${t("manager_id")} name="manager_id" errors=${errors}>${(p) => html`<input ...${p} value=${form.manager_id} onInput=${set("manager_id")} />`}<//>
      </div>
      <${ErrorBox} error=${error} />
      <button type="submit">${t("register")}</button>
    </form>
    <${Loaded} state=${reps}>${(data) => html`<${Table} className="reps" caption=${t("reps_title")}
      head=${[t("id"), t("name"), t("email"), t("team"), t("role"), t("manager_id"), t("active"), t("actions")]}
      rows=${data.items.map((r) => html`<tr data-rep=${r.id} class=${r.active ? "" : "inactive"}>
        <td>${r.id}</td><td>${r.name}</td><td>${r.email || "–"}</td><td>${r.team || "–"}</td><td>${tl("role", r.role)}</td><td>${r.manager_id || "–"}</td>
        <td>${r.active ? "✓" : t("inactive")}</td>
        <td>${r.active
          ? html`<button type="button" onClick=${() => setActive(r, false)}>${t("deactivate_btn")}</button>`
          : html`<button type="button" onClick=${() => setActive(r, true)}>${t("activate_btn")}</button>`}
          <button type="button" onClick=${() => setPasswordFor(r)}>${t("set_password")}</button>
          ${passwordFor?.id === r.id && html`<${PasswordForm} rep=${r} onDone=${(m) => { setPasswordFor(null); setNotice(m); }} />`}</td>
      </tr>`)} />`}<//>`;
}

// the settings tree as dotted paths and leaf values
function leaves(tree, prefix = "") {
  return Object.entries(tree).flatMap(([key, value]) => (value && typeof value === "object" && !Array.isArray(value)
    ? leaves(value, `${prefix}${key}.`) : [[`${prefix}${key}`, value]]));
}

function pathGet(tree, path) {
  return path.split(".").reduce((node, key) => (node && typeof node === "object" ? node[key] : undefined), tree);
}

function pathSet(tree, path, value) {
  const keys = path.split(".");
  let node = tree;
  keys.slice(0, -1).forEach((key) => { node = node[key] ||= {}; });
  node[keys[keys.length - 1]] = value;
}

// what was typed, as the JSON value the API expects; anything unreadable goes as typed so the API names it
function parseLeaf(text, original) {
  if (typeof original === "boolean") return text;
  const trimmed = String(text).trim();
  if (trimmed !== "" && !Number.isNaN(Number(trimmed))) return Number(trimmed);
  return trimmed;
}

function SettingsTree({ tree, prefix, values, setValue, errors, overrides }) {
  return Object.entries(tree).map(([key, value]) => {
    const path = `${prefix}${key}`;
    if (value && typeof value === "object" && !Array.isArray(value)) {
      return html`<fieldset data-path=${path}><legend>${key}</legend>
        <${SettingsTree} tree=${value} prefix=${`${path}.`} values=${values} setValue=${setValue} errors=${errors} overrides=${overrides} /></fieldset>`;
    }
    const marked = pathGet(overrides, path) !== undefined;
    if (typeof value === "boolean") {
      return html`<div class=${`field${errors?.[path] ? " invalid" : ""}`}><label><input type="checkbox" name=${path} checked=${values[path]} onChange=${(e) => setValue(path, e.target.checked)} /> ${key === "enabled" ? t("enabled") : key}</label>
        ${marked && html` <span class="overridden">${t("overridden")}</span>`}
        ${errors?.[path] && html`<small class="field-error" data-field=${path}>${errors[path].join("; ")}</small>`}</div>`;
    }
    return html`<${Field} label=${html`${key}${marked ? html` <span class="overridden">${t("overridden")}</span>` : ""}`} name=${path} errors=${errors}>${(p) => html`<input ...${p} inputmode="decimal" value=${values[path]} onInput=${(e) => setValue(path, e.target.value)} />`}<//>`;
  });
}

export function RulesPage() {
  const [values, setValues] = useState(null);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const rules = useLoad(async () => {
    const data = await get("/v1/alert-rules");
    setValues(Object.fromEntries(leaves(data.config).map(([path, value]) => [path, typeof value === "boolean" ? value : String(value)])));
    return data;
  }, []);
  const setValue = (path, value) => setValues({ ...values, [path]: value });
  const save = async (event) => {
    event.preventDefault();
    setError(null);
    setNotice("");
    // the stored overrides plus what was changed here, so settings from the environment stay theirs
    const body = structuredClone(rules.data.overrides || {});
    for (const [path, original] of leaves(rules.data.config)) {
      const typed = parseLeaf(values[path], original);
      if (typed !== original) pathSet(body, path, typed);
    }
    try {
      const stored = await put("/v1/alert-rules", body);
      setNotice(t("rules_saved", { v: stored.version }));
      rules.reload();
    } catch (err) {
      setError(err);
    }
  };
  const reset = async () => {
    setError(null);
    try {
      const stored = await put("/v1/alert-rules", {});
      setNotice(t("rules_saved", { v: stored.version }));
      rules.reload();
    } catch (err) {
      setError(err);
    }
  };
  return html`<h1>${t("rules_title")}</h1>
    <${Notice} text=${notice} />
    <${Loaded} state=${rules}>${(data) => values && html`<form onSubmit=${save} class="card settings">
      <p class="hint">v${data.version}${data.updated_at ? ` · ${fmtDateTime(data.updated_at)} · ${data.updated_by}` : ""}</p>
      ${error && html`<${ErrorBox} error=${error} />`}
      <${SettingsTree} tree=${data.config} prefix="" values=${values} setValue=${setValue} errors=${error?.fields} overrides=${data.overrides || {}} />
      <button type="submit">${t("save")}</button> <button type="button" onClick=${reset}>${t("reset_overrides")}</button>
    </form>`}<//>`;
}

export function CadencePage() {
  const [rows, setRows] = useState(null);
  const [keepDefaults, setKeepDefaults] = useState(true);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const policy = useLoad(async () => {
    const data = await get("/v1/cadence-policy");
    setRows(Object.entries(data.intervals).map(([key, days]) => ({ key, days: days === null ? "" : String(days) })));
    return data;
  }, []);
  const update = (index, name) => (event) => setRows(rows.map((row, i) => (i === index ? { ...row, [name]: event.target.value } : row)));
  const save = async (event) => {
    event.preventDefault();
    setError(null);
    setNotice("");
    const intervals = {};
    for (const row of rows) {
      if (!row.key.trim()) continue;
      const text = row.days.trim();
      intervals[row.key.trim()] = text === "" ? null : Number.isNaN(Number(text)) ? text : Number(text);
    }
    try {
      await put("/v1/cadence-policy", { intervals, keep_defaults: keepDefaults });
      setNotice(t("saved"));
      policy.reload();
    } catch (err) {
      setError(err);
    }
  };
  // the API names a bad key itself (fields: {"A/active": [...]}) or the body's field
  const fieldErrors = (key) => error?.fields?.[key] || error?.fields?.[`intervals.${key}`];
  return html`<h1>${t("cadence_title")}</h1>
    <${Notice} text=${notice} />
    <${Loaded} state=${policy}>${(data) => rows && html`<form class="card" onSubmit=${save}>
      <p class="hint">${t("cadence_help")} (${data.source}${data.updated_at ? ` · ${fmtDateTime(data.updated_at)} · ${data.updated_by}` : ""})</p>
      <${ErrorBox} error=${error} />
      <table class="cadence"><thead><tr><th scope="col">${t("key")}</th><th scope="col">${t("days")}</th><th scope="col"></th></tr></thead>
        <tbody>${rows.map((row, index) => {
          const messages = fieldErrors(row.key.trim());
          return html`<tr data-key=${row.key} class=${messages ? "invalid" : ""}>
            <td><label class="sr" for=${`ck${index}`}>${t("key")} ${index + 1}</label><input id=${`ck${index}`} name=${`key-${index}`} value=${row.key} onInput=${update(index, "key")} aria-invalid=${messages ? "true" : undefined} /></td>
            <td><label class="sr" for=${`cd${index}`}>${t("days")}: ${row.key}</label><input id=${`cd${index}`} name=${`days-${row.key}`} inputmode="numeric" value=${row.days} onInput=${update(index, "days")} aria-invalid=${messages ? "true" : undefined} aria-describedby=${messages ? `ce${index}` : undefined} />
              ${messages && html`<small id=${`ce${index}`} class="field-error" data-field=${row.key}>${messages.join("; ")}</small>`}</td>
            <td><button type="button" onClick=${() => setRows(rows.filter((_, i) => i !== index))}>${t("remove")} ${row.key}</button></td></tr>`;
        })}</tbody></table>
      <button type="button" onClick=${() => setRows([...rows, { key: "", days: "" }])}>${t("add_row")}</button>
      <div class="field"><label><input type="checkbox" checked=${keepDefaults} onChange=${(e) => setKeepDefaults(e.target.checked)} /> ${t("keep_defaults")}</label></div>
      <button type="submit">${t("save")}</button>
    </form>`}<//>`;
}

// each service keeps its own audit log (GET /v1/audit/<service>): the newest entries of the four, merged
const SERVICES = ["customers", "followups", "alerts", "reports"];

export function AuditPage() {
  const [filters, setFilters] = useState({ service: "", action: "", actor_id: "", entity_id: "" });
  const [applied, setApplied] = useState(filters);
  const log = useLoad(async () => {
    const params = Object.fromEntries(Object.entries({ action: applied.action, actor_id: applied.actor_id, entity_id: applied.entity_id, limit: 100 })
      .filter(([, value]) => value !== "" && value !== undefined));
    const services = applied.service ? [applied.service] : SERVICES;
    const pages = await Promise.all(services.map((service) => get(`/v1/audit/${service}`, params)
      .then((page) => page.items.map((entry) => ({ ...entry, service })))));
    return pages.flat().sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0)).slice(0, 200);
  }, [JSON.stringify(applied)]);
  const set = (name) => (event) => setFilters({ ...filters, [name]: event.target.value });
  const submit = (event) => {
    event.preventDefault();
    setApplied(filters);
  };
  return html`<h1>${t("audit_title")}</h1>
    <form class="card row" onSubmit=${submit} aria-label=${t("audit_title")}>
      <${Field} label=${t("audit_service")} name="service">${(p) => html`<select ...${p} onChange=${set("service")}><option value="">${t("all")}</option>${options(SERVICES, (v) => v, filters.service)}</select>`}<//>
      <${Field} label=${t("action")} name="action">${(p) => html`<input ...${p} value=${filters.action} onInput=${set("action")} placeholder="customer.updated" />`}<//>
      <${Field} label=${t("actor")} name="actor_id">${(p) => html`<input ...${p} value=${filters.actor_id} onInput=${set("actor_id")} />`}<//>
      <${Field} label=${t("audit_entity_id")} name="entity_id">${(p) => html`<input ...${p} value=${filters.entity_id} onInput=${set("entity_id")} />`}<//>
      <button type="submit">${t("filter")}</button>
    </form>
    <${Loaded} state=${log}>${(entries) => html`<${Table} className="audit" head=${[t("occurred_at"), t("audit_service"), t("actor"), t("action"), t("audit_entity"), t("changed")]}
      rows=${entries.map((e) => html`<tr data-audit=${`${e.service}-${e.id}`}><td>${fmtDateTime(e.at)}</td><td>${e.service}</td><td>${e.actor_id} (${tl("role", e.actor_role)})</td>
        <td><code>${e.action}</code></td><td>${e.entity} ${e.entity_id}</td><td><code class="changes">${JSON.stringify(e.changes)}</code></td></tr>`)} />`}<//>`;
}

// tier minimums and lifecycle day counts stored over the environment's (GET/PUT /v1/classification/settings)
const DAY_SETTINGS = ["new_days", "active_days", "at_risk_days", "churned_days", "churn_contact_days"];

export function ClassificationPage() {
  const [values, setValues] = useState(null);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const settings = useLoad(async () => {
    const data = await get("/v1/classification/settings");
    setValues({ A: data.policy.tier_minimums.A, B: data.policy.tier_minimums.B,
      ...Object.fromEntries(DAY_SETTINGS.map((name) => [name, String(data.policy[name])])) });
    return data;
  }, []);
  const set = (name) => (event) => setValues({ ...values, [name]: event.target.value });
  const save = async (event) => {
    event.preventDefault();
    setError(null);
    setNotice("");
    // only what differs from the environment is stored over it
    const env = settings.data.environment;
    const body = {};
    const minimums = Object.fromEntries(["A", "B"].filter((tier) => Number(values[tier]) !== Number(env.tier_minimums[tier]))
      .map((tier) => [tier, values[tier].trim() === "" || Number.isNaN(Number(values[tier])) ? values[tier] : Number(values[tier])]));
    if (Object.keys(minimums).length) body.tier_minimums = minimums;
    for (const name of DAY_SETTINGS) {
      const text = values[name].trim();
      if (Number(text) !== env[name]) body[name] = /^\d+$/.test(text) ? Number(text) : text;
    }
    try {
      await put("/v1/classification/settings", body);
      setNotice(t("saved"));
      settings.reload();
    } catch (err) {
      setError(err);
    }
  };
  // a rule across fields names one (tier_minimums.B, at_risk_days); a bad value its own field
  const errors = error?.fields && Object.fromEntries(Object.entries(error.fields).flatMap(([key, value]) =>
    key === "tier_minimums" && value && !Array.isArray(value)
      ? Object.entries(value).map(([tier, inner]) => [`tier_minimums.${tier}`, JSON.stringify(inner)]) : [[key, value]]));
  return html`<h1>${t("classification_title")}</h1>
    <${Notice} text=${notice} />
    <${Loaded} state=${settings}>${(data) => values && html`<form onSubmit=${save} class="card settings" aria-label=${t("classification_title")}>
      <p class="hint">${t("classification_help")}${data.updated_at ? ` · ${fmtDateTime(data.updated_at)} · ${data.updated_by}` : ""}</p>
      <${ErrorBox} error=${error} />
      <fieldset><legend>${t("tier_minimums")} (${data.policy.base_currency})</legend>
        ${["A", "B"].map((tier) => html`<${Field} label=${`${t("tier")} ${tier}`} name=${`tier_minimums.${tier}`} errors=${errors}>${(p) => html`<input ...${p} inputmode="decimal" value=${values[tier]} onInput=${set(tier)} />`}<//>`)}
        <p class="hint">${t("tier")} C: 0</p>
      </fieldset>
      <fieldset><legend>${t("lifecycle_days")}</legend>
        ${DAY_SETTINGS.map((name) => html`<${Field} label=${t(name)} name=${name} errors=${errors}>${(p) => html`<input ...${p} inputmode="numeric" value=${values[name]} onInput=${set(name)} />`}<//>`)}
      </fieldset>
      <button type="submit">${t("save")}</button> <button type="button" onClick=${async () => { await put("/v1/classification/settings", {}); setNotice(t("saved")); settings.reload(); }}>${t("reset_overrides")}</button>
    </form>`}<//>`;
}
