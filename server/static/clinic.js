/*
 * Daozhen clinician page (clinic.html): sign in as clinician, the live list of pre-consultation
 * forms sent by families of this clinic (pushed over /ws/fever as {"type":"form","form"}), a form's
 * details with its FHIR R4 export, and the nurse callback queue ({"type":"callback","callback"})
 * with "mark handled". Uses the shared core from fever.js (loaded first).
 */
"use strict";

(() => {
  const core = window.daozhenFeverCore;
  if (!core) return;
  const { $, el, t, tf, text, local, api, fmtTime, showNotice, hideNotice, errorText } = core;
  const KEY_SESSION = "daozhen.clinic.session";

  const desk = {
    forms: new Map(), // form_id -> entry
    callbacks: new Map(), // callback id -> callback
    openFormId: null,
  };

  // ---- shapes -----------------------------------------------------------------------------
  // A form as listed or pushed: the record may wrap the form body or be the body itself.
  function formEntry(item) {
    if (!item || typeof item !== "object") return null;
    const body = item.form && typeof item.form === "object" ? item.form : item;
    const id = text(item.form_id ?? item.id ?? body.form_id ?? body.id);
    if (!id) return null;
    return {
      id,
      record: item,
      form: body,
      status: text(item.status ?? body.status),
      sentAt: item.sent_at ?? body.sent_at ?? item.created_at ?? body.created_at ?? null,
      colour: core.colourOf(item) || core.colourOf(body),
      summary: local(item.summary ?? body.summary) || core.formSummary(body),
      childName: text(item.child_name ?? body.child_name ?? (body.child && body.child.name) ?? item.name),
    };
  }

  function callbackId(cb) {
    return text(cb && (cb.id ?? cb.callback_id));
  }

  function callbackTime(cb) {
    return cb.created_at ?? cb.created ?? cb.requested_at ?? null;
  }

  function childName(obj) {
    const summary = obj.summary && typeof obj.summary === "object" ? obj.summary : {};
    return text(obj.child_name ?? summary.child_name ?? (obj.child && obj.child.name) ?? obj.name);
  }

  // The server's callback summary {age_text, weight_kg, label, latest_c, peak_c, features} as a line.
  function callbackSummary(summary) {
    if (!summary || typeof summary !== "object") return text(summary);
    if ("zh" in summary || "en" in summary) return local(summary);
    const parts = [local(summary.age_text)];
    if (summary.weight_kg) parts.push(`${summary.weight_kg} kg`);
    if (summary.label) parts.push(text(summary.label));
    if (typeof summary.latest_c === "number") parts.push(tf("latest_c", { value: summary.latest_c.toFixed(1) }));
    if (typeof summary.peak_c === "number") parts.push(tf("peak_c", { value: summary.peak_c.toFixed(1) }));
    if (typeof summary.fever_days === "number") parts.push(tf("fever_for", { d: core.feverDuration(summary.fever_days) }));
    const features = Array.isArray(summary.features) ? summary.features.map(local).filter(Boolean) : [];
    if (features.length) parts.push(features.join("、"));
    return parts.filter(Boolean).join(" · ");
  }

  // ---- forms ------------------------------------------------------------------------------
  function colourChip(colour) {
    const chip = el("span", { class: `colour-chip colour-${colour || "none"}`, "data-colour": colour || "none" });
    chip.textContent = colour ? t(`colour_${colour}`) : t("colour_unknown");
    return chip;
  }

  function sortedForms() {
    return [...desk.forms.values()].sort((a, b) => {
      const ta = new Date(a.sentAt || 0).getTime() || 0;
      const tb = new Date(b.sentAt || 0).getTime() || 0;
      return tb - ta;
    });
  }

  function renderForms() {
    const list = $("form-list");
    const entries = sortedForms();
    list.replaceChildren(
      ...entries.map((entry) => {
        const open = el("button", { type: "button", class: "ghost-btn open-form", i18n: "open" });
        open.addEventListener("click", () => openForm(entry.id));
        return el(
          "li",
          { class: `queue-item colour-${entry.colour || "none"}`, "data-form-id": entry.id, "data-colour": entry.colour || "none" },
          el(
            "div",
            { class: "queue-main" },
            el("p", { class: "queue-title" }, colourChip(entry.colour), " ", el("strong", null, entry.childName || t("child_heading"))),
            entry.summary ? el("p", { class: "queue-summary" }, entry.summary) : null,
            entry.sentAt ? el("p", { class: "muted" }, tf("sent_at", { time: fmtTime(entry.sentAt, true) })) : null,
          ),
          open,
        );
      }),
    );
    $("forms-empty").hidden = entries.length > 0;
    $("forms-count").textContent = entries.length ? String(entries.length) : "";
  }

  function addForm(item, { fresh } = { fresh: false }) {
    const entry = formEntry(item);
    if (!entry) return;
    desk.forms.set(entry.id, entry);
    renderForms();
    if (fresh) {
      const node = $("form-list").querySelector(`[data-form-id="${CSS.escape(entry.id)}"]`);
      if (node) node.classList.add("fresh");
      showNotice(tf("form_arrived", { name: entry.childName || "" }), "info");
    }
    if (desk.openFormId === entry.id) renderDetail(entry);
  }

  async function loadForms() {
    try {
      const data = await api("GET", "/forms?status=sent");
      const items = Array.isArray(data) ? data : Array.isArray(data && data.forms) ? data.forms : [];
      items.forEach((item) => {
        const entry = formEntry(item);
        if (entry) desk.forms.set(entry.id, entry);
      });
      renderForms();
    } catch (error) {
      if (error.status !== 401) showNotice(errorText(error), "error");
    }
  }

  function fhirUrl(id) {
    return `/api/fever/forms/${encodeURIComponent(id)}/fhir`;
  }

  // The export needs the bearer token, so it is fetched and handed over as a file.
  async function fetchFhir(id) {
    const response = await fetch(fhirUrl(id), {
      headers: { Accept: "application/fhir+json, application/json", Authorization: `Bearer ${core.state.token}` },
    });
    if (!response.ok) throw new core.ApiError(response.status, `http_${response.status}`, t("fhir_failed"), null);
    return response.text();
  }

  async function downloadFhir(event) {
    event.preventDefault();
    const id = desk.openFormId;
    if (!id) return;
    try {
      const body = await fetchFhir(id);
      const url = URL.createObjectURL(new Blob([body], { type: "application/fhir+json" }));
      const a = el("a", { href: url, download: `preconsultation-${id}.fhir.json`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      showNotice(errorText(error), "error");
    }
  }

  async function viewFhir() {
    const id = desk.openFormId;
    const pre = $("fhir-json");
    if (!id) return;
    if (!pre.hidden && pre.dataset.formId === id) {
      pre.hidden = true;
      return;
    }
    try {
      const body = await fetchFhir(id);
      let pretty = body;
      try {
        pretty = JSON.stringify(JSON.parse(body), null, 2);
      } catch {
        /* shown as it came */
      }
      pre.textContent = pretty;
      pre.dataset.formId = id;
      pre.hidden = false;
    } catch (error) {
      showNotice(errorText(error), "error");
    }
  }

  function renderDetail(entry) {
    $("detail-colour").replaceChildren(colourChip(entry.colour), entry.childName ? ` ${entry.childName}` : "");
    core.renderForm($("detail-fields"), entry.form);
    const link = $("fhir-link");
    link.href = fhirUrl(entry.id);
    link.dataset.formId = entry.id;
    const pre = $("fhir-json");
    if (pre.dataset.formId !== entry.id) {
      pre.hidden = true;
      pre.textContent = "";
    }
  }

  function openForm(id) {
    const entry = desk.forms.get(id);
    if (!entry) return;
    desk.openFormId = id;
    renderDetail(entry);
    $("form-detail").hidden = false;
    $("form-list")
      .querySelectorAll(".queue-item")
      .forEach((node) => node.classList.toggle("selected", node.dataset.formId === id));
    $("form-detail").scrollIntoView({ block: "start", behavior: "auto" });
  }

  function closeForm() {
    desk.openFormId = null;
    $("form-detail").hidden = true;
  }

  // ---- callbacks --------------------------------------------------------------------------
  function isHandled(cb) {
    return cb.status === "handled" || cb.handled === true || Boolean(cb.handled_at);
  }

  function renderCallbacks() {
    const list = $("callback-list");
    const items = [...desk.callbacks.values()].sort((a, b) => {
      if (isHandled(a) !== isHandled(b)) return isHandled(a) ? 1 : -1;
      return (new Date(callbackTime(a) || 0).getTime() || 0) - (new Date(callbackTime(b) || 0).getTime() || 0);
    });
    list.replaceChildren(
      ...items.map((cb) => {
        const id = callbackId(cb);
        const colour = core.colourOf(cb);
        const handled = isHandled(cb);
        const phone = text(cb.phone);
        const summary = callbackSummary(cb.summary);
        const button = el("button", { type: "button", class: "ghost-btn mark-handled", i18n: handled ? "handled" : "mark_handled" });
        button.disabled = handled;
        button.addEventListener("click", () => markHandled(id, button));
        const when = callbackTime(cb);
        return el(
          "li",
          { class: `queue-item colour-${colour || "none"}${handled ? " handled" : ""}`, "data-callback-id": id, "data-colour": colour || "none" },
          el(
            "div",
            { class: "queue-main" },
            el("p", { class: "queue-title" }, colourChip(colour), " ", el("strong", null, childName(cb) || t("child_heading"))),
            phone ? el("p", null, el("a", { href: `tel:${phone.replace(/[^\d+]/g, "")}`, class: "phone-link" }, phone)) : null,
            cb.note ? el("p", { class: "queue-note" }, text(cb.note)) : null,
            summary ? el("p", { class: "queue-summary" }, summary) : null,
            when ? el("p", { class: "muted" }, tf("requested_at", { time: fmtTime(when, true) })) : null,
          ),
          button,
        );
      }),
    );
    const pending = items.filter((cb) => !isHandled(cb)).length;
    $("callbacks-empty").hidden = items.length > 0;
    $("callbacks-count").textContent = pending ? String(pending) : "";
  }

  function addCallback(cb, { fresh } = { fresh: false }) {
    const id = callbackId(cb);
    if (!id) return;
    desk.callbacks.set(id, { ...(desk.callbacks.get(id) || {}), ...cb });
    renderCallbacks();
    if (fresh && !isHandled(cb)) showNotice(tf("callback_arrived", { name: childName(cb) }), "info");
  }

  async function loadCallbacks() {
    try {
      const data = await api("GET", "/callbacks");
      const items = Array.isArray(data) ? data : Array.isArray(data && data.callbacks) ? data.callbacks : [];
      items.forEach((cb) => {
        const id = callbackId(cb);
        if (id) desk.callbacks.set(id, cb);
      });
      renderCallbacks();
    } catch (error) {
      if (error.status !== 401) showNotice(errorText(error), "error");
    }
  }

  async function markHandled(id, button) {
    button.disabled = true;
    try {
      const data = await api("POST", `/callbacks/${encodeURIComponent(id)}/handled`, {});
      const cb = (data && (data.callback || data)) || {};
      addCallback({ ...desk.callbacks.get(id), ...cb, status: "handled" });
    } catch (error) {
      button.disabled = false;
      showNotice(errorText(error), "error");
    }
  }

  // ---- session ----------------------------------------------------------------------------
  function showSignedIn(signedIn) {
    $("auth-section").hidden = signedIn;
    $("workbench").hidden = !signedIn;
    $("logout-btn").hidden = !signedIn;
  }

  function onSignedIn(data) {
    if (text(data.role) && text(data.role) !== "clinician") {
      showNotice(t("wrong_role_clinician"), "error");
      return;
    }
    core.setSession(data, KEY_SESSION);
    $("login-password").value = "";
    $("signup-password").value = "";
    showSignedIn(true);
    core.connect();
    core.updateStatus();
    loadAll();
  }

  function loadAll() {
    loadForms();
    loadCallbacks();
  }

  function logout() {
    if (core.state.token) api("POST", "/logout", {}).catch(() => {}); // revoke; signed out here anyway
    core.setSession({}, KEY_SESSION);
    core.disconnect();
    desk.forms.clear();
    desk.callbacks.clear();
    closeForm();
    renderForms();
    renderCallbacks();
    showSignedIn(false);
  }

  function onMessage(msg) {
    switch (msg.type) {
      case "form":
        addForm(msg.form && typeof msg.form === "object" ? msg.form : msg, { fresh: true });
        break;
      case "callback":
        addCallback(msg.callback && typeof msg.callback === "object" ? msg.callback : msg, { fresh: true });
        break;
      case "error":
        showNotice(core.pickLang(text(msg.message)) || t("error_generic"), "error");
        break;
      default:
        break;
    }
  }

  function start() {
    core.state.titleKey = "clinic_page_title";
    core.setLang(core.state.lang);
    core.state.onMessage.push(onMessage);
    core.state.onOpen.push(() => {
      if (core.state.token) loadAll(); // catch up on what was sent while offline
    });
    core.state.onLang.push(() => {
      renderForms();
      renderCallbacks();
      const entry = desk.openFormId && desk.forms.get(desk.openFormId);
      if (entry) renderDetail(entry);
    });
    core.state.onUnauthorized = () => {
      if (!core.state.token) return;
      logout();
      showNotice(t("session_expired"), "error");
    };
    core.bindAuth({
      role: "clinician",
      onSignedIn,
      signupExtra: () => {
        const extra = { clinic_code: $("signup-clinic-code").value.trim() };
        const clinic = $("signup-clinic").value.trim();
        if (clinic) extra.clinic_id = clinic;
        return extra;
      },
    });
    $("logout-btn").addEventListener("click", logout);
    document.querySelectorAll(".lang-btn").forEach((btn) => btn.addEventListener("click", () => core.setLang(btn.dataset.lang)));
    $("detail-close").addEventListener("click", closeForm);
    $("fhir-link").addEventListener("click", downloadFhir);
    $("fhir-view").addEventListener("click", viewFhir);
    renderForms();
    renderCallbacks();

    if (core.restoreSession(KEY_SESSION) && core.state.role === "clinician") {
      showSignedIn(true);
      core.connect();
      loadAll();
    } else {
      core.setSession({}, KEY_SESSION);
      showSignedIn(false);
    }
    core.updateStatus();
  }

  window.daozhenClinic = { desk };
  core.ready.then(start);
})();
