// The account on the page: create an account, verify the email address (the emailed link opens
// this page at #verify=<token>), recover a forgotten password (#reset=<token>), list and end
// sessions, change the password, delete the account. Uses app.js's $, api, say, errorText and
// refreshAccount; follows who is signed in through app.js's "account" event.
"use strict";

const SIGNED_IN_FLAG = "cryptocast.signedIn";

function when(iso) {
  return iso ? new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC" : "—";
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function refreshSessions() {
  const r = await api("GET", "/api/auth/sessions");
  if (!r.ok) return;
  $("sessions").querySelector("tbody").replaceChildren(...r.body.sessions.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.session = s.id;
    tr.append(cell(when(s.created_at)), cell(when(s.last_used_at)), cell(s.client || "—"), cell(s.user_agent || "—"));
    const action = document.createElement("td");
    if (s.current) {
      action.textContent = "this browser";
    } else {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "quiet";
      b.textContent = "Sign out";
      b.addEventListener("click", async () => {
        const ended = await api("DELETE", `/api/auth/sessions/${s.id}`);
        if (!ended.ok) say(errorText(ended), "error", false);
        refreshSessions();
      });
      action.append(b);
    }
    tr.append(action);
    return tr;
  }));
}

function signedOutHere() {
  localStorage.removeItem(SIGNED_IN_FLAG);
  $("account-panel").hidden = true;
  refreshAccount();
}

document.addEventListener("account", (e) => {
  const me = e.detail;
  $("verify-banner").hidden = !me || me.user.email_verified;
  if (!me) $("account-panel").hidden = true;
  $("account-open").setAttribute("aria-expanded", String(!$("account-panel").hidden));
});

$("account-open").addEventListener("click", () => {
  $("account-panel").hidden = !$("account-panel").hidden;
  $("account-open").setAttribute("aria-expanded", String(!$("account-panel").hidden));
  if (!$("account-panel").hidden) refreshSessions();
});

$("register").addEventListener("click", async () => {
  const email = $("email").value, password = $("password").value;
  const made = await api("POST", "/api/auth/register", { email, password });
  if (!made.ok) return say(errorText(made), "error", false);
  const r = await api("POST", "/api/auth/login", { email, password });
  $("password").value = "";
  if (!r.ok) return say(errorText(r), "error", false);
  localStorage.setItem(SIGNED_IN_FLAG, "1");
  say(`Account created. We emailed a link to ${email} to verify the address.`, "", false);
  refreshAccount();
});

$("verify-resend").addEventListener("click", async () => {
  const r = await api("POST", "/api/auth/verify/resend");
  say(r.ok ? r.body.message : errorText(r), r.ok ? "" : "error", false);
});

$("forgot").addEventListener("click", () => {
  $("forgot-form").hidden = false;
  $("forgot-email").value = $("email").value;
  $("forgot-email").focus();
});

$("forgot-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await api("POST", "/api/auth/password/forgot", { email: $("forgot-email").value });
  if (r.ok) $("forgot-form").hidden = true;
  say(r.ok ? r.body.message : errorText(r), r.ok ? "" : "error", false);
});

let resetToken = null;
$("reset-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await api("POST", "/api/auth/password/reset", { token: resetToken, password: $("reset-password").value });
  $("reset-password").value = "";
  if (r.ok || r.status === 400) { $("reset-form").hidden = true; resetToken = null; }  // 400: the link is spent
  say(r.ok ? r.body.message : errorText(r), r.ok ? "" : "error", false);
  if (r.ok) signedOutHere();
});

$("logout-all").addEventListener("click", async () => {
  const r = await api("POST", "/api/auth/logout-all");
  if (!r.ok) return say(errorText(r), "error", false);
  say("Signed out everywhere.", "", false);
  signedOutHere();
});

$("change-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await api("POST", "/api/auth/password/change", { current: $("change-current").value, new: $("change-new").value });
  $("change-current").value = ""; $("change-new").value = "";
  say(r.ok ? r.body.message : errorText(r), r.ok ? "" : "error", false);
  if (r.ok) refreshSessions();
});

$("delete-form").addEventListener("submit", (e) => {  // first ask; the second button deletes
  e.preventDefault();
  $("delete-confirm").hidden = false;
  $("delete-ask").hidden = true;
});
$("delete-no").addEventListener("click", () => {
  $("delete-confirm").hidden = true;
  $("delete-ask").hidden = false;
  $("delete-password").value = "";
});
$("delete-yes").addEventListener("click", async () => {
  const r = await api("DELETE", "/api/me", { password: $("delete-password").value });
  $("delete-password").value = "";
  $("delete-confirm").hidden = true;
  $("delete-ask").hidden = false;
  if (!r.ok) return say(errorText(r), "error", false);
  say("Your account is deleted.", "", false);
  signedOutHere();
});

// An emailed link opens the page at #verify=<token> or #reset=<token>. The fragment never
// reaches a server; it is taken off the address bar at once so it is not bookmarked or shared.
async function followEmailedLink() {
  const link = /^#(verify|reset)=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!link) return;
  window.history.replaceState(null, "", location.pathname + location.search);
  if (link[1] === "reset") {
    resetToken = link[2];
    $("reset-form").hidden = false;
    $("reset-password").focus();
    return;
  }
  const r = await api("POST", "/api/auth/verify", { token: link[2] });
  say(r.ok ? "Your email address is verified." : errorText(r), r.ok ? "" : "error", false);
  refreshAccount();
}
window.addEventListener("hashchange", followEmailedLink);  // a link pasted into an open page
followEmailedLink();
