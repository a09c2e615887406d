// Shared pieces of every page: rendering, routing, loading and error display, labelled form fields.
import { h } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import htm from "htm";
import { t } from "./i18n.js";

export const html = htm.bind(h);

// --- routing: real paths (the server answers index.html for any page address) ---
const listeners = new Set();
export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  listeners.forEach((fn) => fn());
  window.scrollTo(0, 0);
}
window.addEventListener("popstate", () => listeners.forEach((fn) => fn()));

export function useLocation() {
  const [, setTick] = useState(0);
  useEffect(() => {
    const fn = () => setTick((n) => n + 1);
    listeners.add(fn);
    return () => listeners.delete(fn);
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

export function Link({ href, children, ...rest }) {
  const onClick = (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(href);
  };
  return html`<a href=${href} onClick=${onClick} ...${rest}>${children}</a>`;
}

// --- data loading ---
export function useLoad(load, deps) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const run = useCallback(() => {
    let live = true;
    setState((old) => ({ ...old, loading: true, error: null }));
    Promise.resolve()
      .then(load)
      .then((data) => live && setState({ loading: false, data, error: null }))
      .catch((error) => live && setState({ loading: false, data: null, error }));
    return () => { live = false; };
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

export function errorText(error) {
  if (!error) return "";
  if (error.status === 404) return t("not_found");
  if (error.status === 403) return `${t("forbidden")} (${error.message})`;
  return error.message || t("error");
}

export function ErrorBox({ error, onRetry }) {
  if (!error) return null;
  const fields = Object.entries(error.fields || {});
  return html`<div class="error" role="alert">
    <strong>${errorText(error)}</strong>
    ${fields.length > 0 && html`<ul>${fields.map(([name, msgs]) => html`<li><code>${name}</code>: ${[].concat(msgs).join("; ")}</li>`)}</ul>`}
    ${onRetry && html` <button type="button" onClick=${onRetry}>${t("retry")}</button>`}
  </div>`;
}

export function Loading() {
  return html`<p class="loading" role="status">${t("loading")}</p>`;
}

// renders the data, a loading line or the error; never a blank page
export function Loaded({ state, children }) {
  if (state.error) return html`<${ErrorBox} error=${state.error} onRetry=${state.reload} />`;
  if (state.loading && !state.data) return html`<${Loading} />`;
  return children(state.data);
}

export function Notice({ text }) {
  return html`<p class="notice" role="status" aria-live="polite">${text || ""}</p>`;
}

// a labelled field whose API error (fields[name]) shows right under it
let fieldSeq = 0;
export function Field({ label, name, errors, children, hint }) {
  const [id] = useState(() => `f${++fieldSeq}`);
  const messages = errors && errors[name];
  const describedBy = [messages && `${id}-err`, hint && `${id}-hint`].filter(Boolean).join(" ") || undefined;
  const control = children({ id, "aria-invalid": messages ? "true" : undefined, "aria-describedby": describedBy, name });
  return html`<div class=${`field${messages ? " invalid" : ""}`}>
    <label for=${id}>${label}</label>
    ${control}
    ${hint && html`<small id=${`${id}-hint`} class="hint">${hint}</small>`}
    ${messages && html`<small id=${`${id}-err`} class="field-error" data-field=${name}>${[].concat(messages).join("; ")}</small>`}
  </div>`;
}

// <select> options from values with their translated labels
export function options(values, label, selected) {
  return values.map((value) => html`<option value=${value} selected=${value === selected}>${label(value)}</option>`);
}

export function Table({ caption, head, rows, className }) {
  return html`<table class=${className || ""}>
    ${caption && html`<caption>${caption}</caption>`}
    <thead><tr>${head.map((cell) => html`<th scope="col">${cell}</th>`)}</tr></thead>
    <tbody>${rows}</tbody>
  </table>`;
}
