// The console's shell: sign-in, the header (user, role, team, language, sign-out), navigation and routes.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, get, request, saveSession, session, whenUnauthorized } from "./api.js";
import { LANGS, lang, setLang, t, tl } from "./i18n.js";
import { ErrorBox, Field, Link, html, navigate, useLocation } from "./ui.js";
import { CustomerPage, CustomersPage, TodayPage } from "./rep.js";
import { AlertQueuePage, DashboardPage, HandoverPage, ImportsPage } from "./manager.js";
import { AuditPage, CadencePage, ClassificationPage, RepsPage, RulesPage } from "./admin.js";

const HOME = { rep: "/today", manager: "/dashboard", admin: "/admin/reps" };

// [path pattern, page, roles allowed, nav label]; the API enforces scope, this only keeps menus honest
const ROUTES = [
  [/^\/today$/, TodayPage, ["rep", "manager", "admin"], "nav_today"],
  [/^\/customers$/, CustomersPage, ["rep", "manager", "admin"], "nav_customers"],
  [/^\/customers\/([^/]+)$/, CustomerPage, ["rep", "manager", "admin"], null],
  [/^\/dashboard$/, DashboardPage, ["manager", "admin"], "nav_dashboard"],
  [/^\/alerts$/, AlertQueuePage, ["rep", "manager", "admin"], "nav_alerts"],
  [/^\/handover$/, HandoverPage, ["manager", "admin"], "nav_handover"],
  [/^\/imports$/, ImportsPage, ["manager", "admin"], "nav_imports"],
  [/^\/admin\/reps$/, RepsPage, ["admin"], "nav_reps"],
  [/^\/admin\/rules$/, RulesPage, ["admin"], "nav_rules"],
  [/^\/admin\/cadence$/, CadencePage, ["admin"], "nav_cadence"],
  [/^\/admin\/classification$/, ClassificationPage, ["admin"], "nav_classification"],
  [/^\/admin\/audit$/, AuditPage, ["admin"], "nav_audit"],
];
const NAV_PATHS = {
  nav_today: "/today", nav_customers: "/customers", nav_dashboard: "/dashboard", nav_alerts: "/alerts",
  nav_handover: "/handover", nav_imports: "/imports", nav_reps: "/admin/reps", nav_rules: "/admin/rules",
  nav_cadence: "/admin/cadence", nav_classification: "/admin/classification", nav_audit: "/admin/audit",
};

function signInPath() {
  const next = location.pathname + location.search;
  return next.startsWith("/signin") || next === "/" ? "/signin" : `/signin?next=${encodeURIComponent(next)}`;
}

whenUnauthorized(() => {
  saveSession(null);
  if (!location.pathname.startsWith("/signin")) navigate(signInPath(), { replace: true });
});

// who the token belongs to, as the directory has them now
async function whoAmI() {
  try {
    return await get("/v1/auth/me");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
    // a back end without the sign-in routes: the token's own claims (development fallback only)
    const claims = JSON.parse(atob(session().token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return { id: claims.sub, name: claims.sub, email: null, role: claims.role, team: claims.team };
  }
}

function SignIn({ onSignedIn }) {
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [token, setToken] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const finish = async (data) => {
    saveSession({ token: data.access_token, user: data.user || null });
    try {
      const me = await whoAmI();
      saveSession({ token: data.access_token, user: me });
      onSignedIn(me);
    } catch (err) {
      saveSession(null);
      setError(err);
    }
  };
  const login = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const data = await request("POST", "/v1/auth/login", { body: { user: user.trim(), password }, anonymous: true });
      await finish(data);
    } catch (err) {
      if (err.status === 401) err.message = t("signin_failed");
      if (err.status === 429) err.message = t("too_many", { s: err.retryAfter || 60 });
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const useToken = async (event) => {
    event.preventDefault();
    setError(null);
    await finish({ access_token: token.trim() });
  };
  return html`<main id="main" class="signin">
    <h1>${t("app")}</h1>
    <form onSubmit=${login} aria-labelledby="signin-h">
      <h2 id="signin-h">${t("signin")}</h2>
      <p>${t("signin_hint")}</p>
      <${Field} label=${t("user_or_email")} name="user">${(p) => html`<input ...${p} autocomplete="username" required value=${user} onInput=${(e) => setUser(e.target.value)} />`}<//>
      <${Field} label=${t("password")} name="password">${(p) => html`<input ...${p} type="password" autocomplete="current-password" required value=${password} onInput=${(e) => setPassword(e.target.value)} />`}<//>
      <${ErrorBox} error=${error} />
      <button type="submit" disabled=${busy}>${t("signin")}</button>
    </form>
    <details>
      <summary>${t("token_option")}</summary>
      <form onSubmit=${useToken}>
        <${Field} label=${t("token")} name="token">${(p) => html`<textarea ...${p} rows="3" required value=${token} onInput=${(e) => setToken(e.target.value)} />`}<//>
        <button type="submit">${t("use_token")}</button>
      </form>
    </details>
    <${LangSwitch} />
  </main>`;
}

function LangSwitch() {
  const [, redraw] = useState(0);
  const change = (event) => {
    setLang(event.target.value);
    redraw((n) => n + 1);
    rerender();
  };
  return html`<div class="lang"><label for="lang-switch">${t("language")}</label>
    <select id="lang-switch" onChange=${change}>${LANGS.map(([code, name]) => html`<option value=${code} selected=${code === lang}>${name}</option>`)}</select></div>`;
}

function Header({ user, onSignOut }) {
  const here = location.pathname;
  const items = ROUTES.filter(([, , roles, label]) => label && roles.includes(user.role));
  return html`<header class="top">
    <a class="skip" href="#main">${t("skip")}</a>
    <span class="brand">${t("app")}</span>
    <nav aria-label="main"><ul>
      ${items.map(([, , , label]) => html`<li><${Link} href=${NAV_PATHS[label]} aria-current=${here.startsWith(NAV_PATHS[label]) ? "page" : undefined}>${t(label)}<//></li>`)}
    </ul></nav>
    <div class="who" data-testid="who">
      <span class="user">${user.name || user.id}</span>
      <span class="role">${tl("role", user.role)}</span>
      <span class="team">${user.team || t("no_team")}</span>
    </div>
    <${LangSwitch} />
    <button type="button" onClick=${onSignOut}>${t("signout")}</button>
  </header>`;
}

// a redirect after this render (the location listeners are not all subscribed during one)
function Redirect({ to }) {
  useEffect(() => {
    const timer = setTimeout(() => navigate(to, { replace: true }), 0);
    return () => clearTimeout(timer);
  }, [to]);
  return null;
}

function App() {
  const { path } = useLocation();
  const [user, setUser] = useState(() => session()?.user || null);

  useEffect(() => {
    // refresh who we are on load: role and team are the directory's now, not what was stored
    if (session()) whoAmI().then((me) => { saveSession({ ...session(), user: me }); setUser(me); }).catch(() => {});
  }, []);

  if (!session() || !user) {
    if (!path.startsWith("/signin")) return html`<${Redirect} to=${signInPath()} />`;
    return html`<${SignIn} onSignedIn=${(me) => {
      setUser(me);
      const next = new URLSearchParams(location.search).get("next");
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : HOME[me.role] || "/customers", { replace: true });
    }} />`;
  }
  if (path === "/" || path.startsWith("/signin")) return html`<${Redirect} to=${HOME[user.role] || "/customers"} />`;
  const signOut = () => {
    // the API has no route revoking one token (POST /v1/reps/{id}/sign-out ends every session of the user):
    // the browser forgets it, and it expires within the hour
    saveSession(null);
    setUser(null);
    navigate("/signin", { replace: true });
  };
  let page = html`<p class="error" role="alert">${t("page_missing")}</p>`;
  for (const [pattern, Page, roles] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    page = roles.includes(user.role)
      ? html`<${Page} user=${user} params=${match.slice(1).map(decodeURIComponent)} />`
      : html`<p class="error" role="alert">${t("forbidden")}</p>`;
    break;
  }
  return html`<${Header} user=${user} onSignOut=${signOut} /><main id="main" tabindex="-1">${page}</main>`;
}

const root = document.getElementById("app");
function rerender() {
  render(null, root);
  render(html`<${App} />`, root);
}
render(html`<${App} />`, root);
