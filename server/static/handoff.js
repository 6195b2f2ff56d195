/*
 * Daozhen handoff page (handoff.html), for clinicians: sign in with the fever clinician account
 * (POST /api/fever/login; the session is shared with clinic.html), the list of clinic flags raised
 * by follow-up answers (GET /api/handoff/flags, acknowledge), and the SBAR summary of any chat
 * session or follow-up conversation (GET /api/handoff/sessions/{id}) with its FHIR export; and a
 * second tab, the chronic-care worklist (GET /api/chronic/overdue: urgent first, then risk, then
 * days overdue, each with its reasons and latest reading) with a form to record a reading for a
 * listed patient (POST /api/chronic/patients/{id}/readings: the parsed value, unit-conversion
 * warnings, and an urgent banner). Open it directly with /handoff.html#overdue.
 * Self-contained: strings zh/en below, no other script needed. All server text goes in via
 * textContent, never innerHTML.
 */
"use strict";

(() => {
  const KEY_SESSION = "daozhen.clinic.session"; // same as clinic.html: one sign-in for both pages
  const KEY_LANG = "daozhen.lang";

  const STRINGS = {
    zh: {
      html_lang: "zh-CN",
      page_title: "交接摘要与随访提醒",
      skip_to_main: "跳到主要内容",
      lang_group: "界面语言",
      signed_out: "未登录",
      signed_in_as: "已登录：{name}",
      logout: "退出",
      auth_heading: "医护登录",
      auth_hint: "使用医护工作台（发热随访）的医护账号登录。",
      username: "用户名",
      password: "密码",
      login: "登录",
      flags_heading: "随访提醒",
      flags_empty: "没有待处理的随访提醒。",
      refresh: "刷新",
      open_heading: "查看会话交接摘要",
      session_id: "会话编号",
      open: "打开",
      open_sbar: "查看摘要",
      acknowledge: "已处理",
      sbar_heading: "SBAR 交接摘要",
      close: "关闭",
      sources: "依据",
      fhir_download: "下载 FHIR",
      fhir_view: "查看 FHIR",
      call_120: "已建议拨打120",
      escalation: "紧急升级",
      attention: "需关注",
      level: "分诊级别",
      red_flags: "危险信号",
      rule_ids: "规则",
      engine_version: "引擎版本",
      knowledge_version: "知识库版本",
      readings: "读数",
      none: "无",
      wrong_role: "只有医护账号可以使用本页面。",
      session_expired: "登录已失效，请重新登录。",
      error_network: "网络连接失败，请稍后重试。",
      error_generic: "出错了，请重试。",
      answer: "回答",
      question: "问题",
      level_emergency_ambulance: "立即拨打120",
      level_emergency: "立即去急诊",
      level_urgent: "24小时内就医",
      level_routine: "近期门诊就诊",
      level_self_care: "居家护理观察",
      nav_label: "页面",
      nav_clinic: "医护工作台",
      tabs_label: "工作区",
      tab_handoff: "交接与随访提醒",
      tab_overdue: "慢病随访",
      overdue_heading: "慢病随访：逾期与病情变化",
      overdue_hint: "紧急的排在最前，其次按风险高低和逾期天数。",
      overdue_empty: "没有逾期或读数变差的慢病患者。",
      chip_urgent: "紧急",
      chip_worsening: "读数变差",
      chip_overdue: "逾期",
      chip_uncontrolled: "未达标",
      overdue_days: "逾期 {days} 天",
      due_date: "应随访：{date}",
      due_never: "从未随访",
      last_visit: "上次随访：{date}",
      latest_reading: "最近读数：{value}（{date}）",
      latest_none: "最近读数：无",
      latest_loading: "最近读数：加载中…",
      risk: "风险分 {score}",
      record_for: "记录读数",
      reading_heading: "记录读数",
      reading_patient: "患者",
      reading_kind: "类型",
      kind_bp: "血压",
      kind_glucose: "血糖",
      kind_hba1c: "糖化血红蛋白",
      reading_context: "测量时间",
      context_auto: "按读数判断",
      context_fasting: "空腹",
      context_postprandial: "餐后2小时",
      context_random: "随机",
      reading_value: "读数（可带单位）",
      reading_placeholder: "150/95 · 12/8 kPa · 140 mg/dL",
      reading_symptoms: "伴随症状（可不填）",
      reading_visit: "本次是随访就诊时测的",
      reading_submit: "记录",
      reading_no_patient: "请先在列表里选择一位患者。",
      reading_parsed: "记录为",
      reading_level: "判断",
      reading_converted: "（由 {unit} 换算）",
      reading_urgent_title: "紧急读数：请立即处理",
      class_urgent: "紧急",
      class_poorly_controlled: "未达标",
      class_on_target: "达标",
      triage_says: "分诊：{label}。{advice}",
    },
    en: {
      html_lang: "en",
      page_title: "Handoff summaries and follow-up flags",
      skip_to_main: "Skip to main content",
      lang_group: "Language",
      signed_out: "Signed out",
      signed_in_as: "Signed in: {name}",
      logout: "Sign out",
      auth_heading: "Clinician sign-in",
      auth_hint: "Sign in with your clinician account of the clinic workbench (fever follow-up).",
      username: "Username",
      password: "Password",
      login: "Sign in",
      flags_heading: "Follow-up flags",
      flags_empty: "No open follow-up flags.",
      refresh: "Refresh",
      open_heading: "Open a conversation's handoff",
      session_id: "Conversation id",
      open: "Open",
      open_sbar: "Open summary",
      acknowledge: "Handled",
      sbar_heading: "SBAR handoff",
      close: "Close",
      sources: "Sources",
      fhir_download: "Download FHIR",
      fhir_view: "View FHIR",
      call_120: "Told to call 120",
      escalation: "Escalation",
      attention: "Attention",
      level: "Triage level",
      red_flags: "Red flags",
      rule_ids: "Rules",
      engine_version: "Engine version",
      knowledge_version: "Knowledge version",
      readings: "Readings",
      none: "none",
      wrong_role: "Only clinician accounts may use this page.",
      session_expired: "Your sign-in has expired; please sign in again.",
      error_network: "Network error; please try again.",
      error_generic: "Something went wrong; please try again.",
      answer: "Answer",
      question: "Question",
      level_emergency_ambulance: "Call 120 now",
      level_emergency: "Go to the emergency department now",
      level_urgent: "See a doctor within 24 hours",
      level_routine: "Book a clinic visit soon",
      level_self_care: "Home care",
      nav_label: "Pages",
      nav_clinic: "Clinic workbench",
      tabs_label: "Work areas",
      tab_handoff: "Handoffs and flags",
      tab_overdue: "Chronic follow-up",
      overdue_heading: "Chronic care: overdue or worsening",
      overdue_hint: "Urgent first, then by risk and days overdue.",
      overdue_empty: "No chronic-care patient is overdue or worsening.",
      chip_urgent: "Urgent",
      chip_worsening: "Worsening",
      chip_overdue: "Overdue",
      chip_uncontrolled: "Off target",
      overdue_days: "{days} days overdue",
      due_date: "Due: {date}",
      due_never: "Never followed up",
      last_visit: "Last visit: {date}",
      latest_reading: "Latest reading: {value} ({date})",
      latest_none: "Latest reading: none",
      latest_loading: "Latest reading: loading…",
      risk: "Risk score {score}",
      record_for: "Record a reading",
      reading_heading: "Record a reading",
      reading_patient: "Patient",
      reading_kind: "Kind",
      kind_bp: "Blood pressure",
      kind_glucose: "Blood glucose",
      kind_hba1c: "HbA1c",
      reading_context: "When measured",
      context_auto: "From the reading",
      context_fasting: "Fasting",
      context_postprandial: "2 h after a meal",
      context_random: "Random",
      reading_value: "Reading (units allowed)",
      reading_placeholder: "150/95 · 12/8 kPa · 140 mg/dL",
      reading_symptoms: "Symptoms (optional)",
      reading_visit: "Taken at a follow-up visit",
      reading_submit: "Record",
      reading_no_patient: "Choose a patient from the list first.",
      reading_parsed: "Recorded as",
      reading_level: "Assessment",
      reading_converted: " (converted from {unit})",
      reading_urgent_title: "Urgent reading: act now",
      class_urgent: "Urgent",
      class_poorly_controlled: "Off target",
      class_on_target: "On target",
      triage_says: "Triage: {label}. {advice}",
    },
  };

  const state = {
    lang: "zh",
    token: null,
    role: null,
    name: "",
    flags: [],
    sbar: null,
    sessionId: null,
    tab: "handoff",
    overdue: [], // GET /api/chronic/overdue patients, in the server's order (most pressing first)
    overdueLoaded: false,
    overdueGeneration: 0, // a newer load wins over a slower older one
    latest: {}, // patient_id -> latest reading {display, taken_on} | null (none on file)
  };

  // ---- small helpers ----------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);

  function load(key) {
    try {
      return window.localStorage.getItem(key);
    } catch {
      return null;
    }
  }

  function save(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch {
      /* private browsing: forget on reload */
    }
  }

  function t(key, params) {
    let s = (STRINGS[state.lang] && STRINGS[state.lang][key]) || STRINGS.zh[key] || key;
    for (const [name, value] of Object.entries(params || {})) s = s.replace(`{${name}}`, String(value));
    return s;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fmtTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    return d.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "short", timeStyle: "short" });
  }

  function showNotice(message, kind) {
    const box = $("notice");
    box.textContent = message;
    box.dataset.kind = kind || "info";
    box.hidden = false;
  }

  function hideNotice() {
    $("notice").hidden = true;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json", "Accept-Language": state.lang };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network", t("error_network"));
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      if (response.status === 401 && state.token && /^\/api\/(handoff|chronic)\//.test(path)) expire();
      throw new ApiError(response.status, err.code || `http_${response.status}`, err.message || t("error_generic"));
    }
    return data;
  }

  // ---- language -----------------------------------------------------------------------------
  function applyStrings() {
    document.documentElement.lang = t("html_lang");
    document.title = `${t("page_title")} · Daozhen`;
    document.querySelectorAll("[data-i18n]").forEach((node) => {
      node.textContent = t(node.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-aria-label]").forEach((node) => {
      node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((node) => {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    });
    document.querySelectorAll(".lang-btn").forEach((btn) => {
      btn.setAttribute("aria-pressed", String(btn.dataset.lang === state.lang));
    });
    updateWho();
  }

  function setLang(lang) {
    if (lang !== "zh" && lang !== "en") return;
    state.lang = lang;
    save(KEY_LANG, lang);
    applyStrings();
    renderFlags();
    renderOverdue();
    if (state.sessionId && state.token) openSbar(state.sessionId); // labels come from the server
    if (state.tab === "overdue" && state.token) loadOverdue(); // so do the reasons
  }

  // ---- session ------------------------------------------------------------------------------
  function updateWho() {
    const who = $("who");
    who.textContent = state.token ? t("signed_in_as", { name: state.name || "" }) : t("signed_out");
    who.dataset.state = state.token ? "online" : "offline";
  }

  function setSession(data) {
    state.token = data && data.token ? String(data.token) : null;
    state.role = data && data.role ? String(data.role) : null;
    state.name = data && (data.display_name || data.username) ? String(data.display_name || data.username) : "";
    save(
      KEY_SESSION,
      state.token ? JSON.stringify({ token: state.token, role: state.role, account_id: data.account_id, display_name: state.name }) : null,
    );
  }

  function showSignedIn(signedIn) {
    $("auth-section").hidden = signedIn;
    $("workbench").hidden = !signedIn;
    $("logout-btn").hidden = !signedIn;
    updateWho();
  }

  function expire() {
    setSession(null);
    closeSbar();
    state.flags = [];
    renderFlags();
    clearOverdue();
    showSignedIn(false);
    showNotice(t("session_expired"), "error");
  }

  async function login(event) {
    event.preventDefault();
    hideNotice();
    const button = $("login-form").querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const data = await api("POST", "/api/fever/login", {
        username: $("login-username").value.trim(),
        password: $("login-password").value,
      });
      if (data.role !== "clinician") {
        showNotice(t("wrong_role"), "error");
        return;
      }
      setSession(data);
      $("login-password").value = "";
      showSignedIn(true);
      loadFlags();
      if (state.tab === "overdue") loadOverdue();
      openFromHash();
    } catch (error) {
      showNotice(error.message || t("error_generic"), "error");
    } finally {
      button.disabled = false;
    }
  }

  function logout() {
    if (state.token) api("POST", "/api/fever/logout", {}).catch(() => {});
    setSession(null);
    closeSbar();
    state.flags = [];
    renderFlags();
    clearOverdue();
    showSignedIn(false);
  }

  // ---- flags --------------------------------------------------------------------------------
  // Levels on the existing colour scale of the clinician pages (fever.css).
  const LEVEL_COLOUR = {
    emergency_ambulance: "red",
    emergency: "red",
    urgent: "orange",
    routine: "green",
    self_care: "green",
  };

  function levelChip(level, label) {
    const colour = LEVEL_COLOUR[level] || "none";
    return el("span", {
      class: `colour-chip colour-${colour}`,
      "data-level": level || "none",
      text: label || (level ? t(`level_${level}`) : t("none")),
    });
  }

  function badge120() {
    return el("span", { class: "colour-chip colour-red badge-120", text: t("call_120") });
  }

  function renderFlags() {
    const list = $("flag-list");
    list.replaceChildren(
      ...state.flags.map((flag) => {
        const open = el("button", { type: "button", class: "ghost-btn open-sbar", text: t("open_sbar") });
        open.addEventListener("click", () => openSbar(flag.conversation_id));
        const ack = el("button", { type: "button", class: "ghost-btn acknowledge", text: t("acknowledge") });
        ack.addEventListener("click", () => acknowledge(flag.flag_id, ack));
        const flags = (flag.red_flags || []).map((f) => f.name).filter(Boolean);
        return el(
          "li",
          { class: `queue-item colour-${LEVEL_COLOUR[flag.level] || "none"}`, "data-flag-id": flag.flag_id, "data-level": flag.level },
          el(
            "div",
            { class: "queue-main" },
            el(
              "p",
              { class: "queue-title" },
              levelChip(flag.level),
              " ",
              el("strong", { text: t(flag.kind === "escalation" ? "escalation" : "attention") }),
              flag.call_120 ? " " : null,
              flag.call_120 ? badge120() : null,
            ),
            el("p", { class: "queue-summary", text: `${t("answer")}: ${flag.answer_text}` }),
            flags.length ? el("p", { class: "queue-note", text: `${t("red_flags")}: ${flags.join(state.lang === "zh" ? "、" : ", ")}` }) : null,
            el("p", { class: "muted", text: `${flag.plan_id} · ${flag.question_id} · ${fmtTime(flag.created_at)}` }),
          ),
          el("div", { class: "row" }, open, ack),
        );
      }),
    );
    $("flags-empty").hidden = state.flags.length > 0;
    $("flags-count").textContent = state.flags.length ? String(state.flags.length) : "";
  }

  async function loadFlags() {
    try {
      const data = await api("GET", "/api/handoff/flags");
      state.flags = Array.isArray(data && data.flags) ? data.flags : [];
      renderFlags();
    } catch (error) {
      if (error.status !== 401) showNotice(error.message, "error");
    }
  }

  async function acknowledge(flagId, button) {
    button.disabled = true;
    try {
      await api("POST", `/api/handoff/flags/${encodeURIComponent(flagId)}/acknowledge`, {});
      state.flags = state.flags.filter((f) => f.flag_id !== flagId);
      renderFlags();
    } catch (error) {
      button.disabled = false;
      showNotice(error.message, "error");
    }
  }

  // ---- SBAR ---------------------------------------------------------------------------------
  function renderSbar(sbar) {
    const a = sbar.assessment;
    const chip = $("sbar-level");
    chip.replaceChildren(levelChip(a.level, a.level_label));
    chip.dataset.level = a.level || "none";
    if (sbar.recommendation && sbar.recommendation.call_120) chip.append(" ", badge120());
    $("sbar-sections").replaceChildren(
      ...sbar.sections.map((section) =>
        el(
          "section",
          { class: "sbar-section", "data-sbar": section.code },
          el("h3", { text: section.title }),
          el("p", { class: "sbar-text", text: section.text }),
        ),
      ),
    );
    const none = t("none");
    const rows = [
      ["level", `${a.level_label}${a.level ? ` (${a.level})` : ""}`],
      ["red_flags", (a.red_flags || []).map((f) => `${f.name} [${f.rule_id}]`).join("; ") || none],
      ["rule_ids", (a.rule_ids || []).join(", ") || none],
      ["engine_version", a.engine_version || none],
      ["knowledge_version", a.knowledge_version || none],
    ];
    const readings = (sbar.background.readings || []).map((r) =>
      r.kind === "bp" ? `${r.systolic}/${r.diastolic} mmHg` : `${Number(r.mmol_l).toFixed(1)} mmol/L`,
    );
    if (readings.length) rows.push(["readings", readings.join("; ")]);
    $("sbar-audit").replaceChildren(
      ...rows.flatMap(([key, value]) => [el("dt", { text: t(key) }), el("dd", { "data-field": key, text: value })]),
    );
    $("sbar-sources").replaceChildren(...(sbar.sources || []).map((c) => el("li", { text: `${c.doc_id}#${c.section}` })));
    $("sbar-disclaimer").textContent = sbar.disclaimer || "";
  }

  async function openSbar(sessionId) {
    hideNotice();
    try {
      const data = await api("GET", `/api/handoff/sessions/${encodeURIComponent(sessionId)}?lang=${state.lang}`);
      state.sbar = data.sbar;
      state.sessionId = sessionId;
      $("session-id").value = sessionId;
      renderSbar(data.sbar);
      const link = $("fhir-link");
      link.href = fhirUrl(sessionId);
      link.dataset.sessionId = sessionId;
      if ($("fhir-json").dataset.sessionId !== sessionId) $("fhir-json").hidden = true;
      $("sbar").hidden = false;
      $("sbar").scrollIntoView({ block: "start", behavior: "auto" });
    } catch (error) {
      showNotice(error.message, "error");
    }
  }

  function closeSbar() {
    state.sbar = null;
    state.sessionId = null;
    $("sbar").hidden = true;
    $("fhir-json").hidden = true;
  }

  function fhirUrl(id) {
    return `/api/handoff/sessions/${encodeURIComponent(id)}/fhir?lang=${state.lang}`;
  }

  // The export needs the bearer token: fetched, then handed over as a file.
  async function fetchFhir(id) {
    const response = await fetch(fhirUrl(id), {
      headers: { Accept: "application/fhir+json, application/json", Authorization: `Bearer ${state.token}` },
    });
    if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, t("error_generic"));
    return response.text();
  }

  async function downloadFhir(event) {
    event.preventDefault();
    const id = state.sessionId;
    if (!id) return;
    try {
      const body = await fetchFhir(id);
      const url = URL.createObjectURL(new Blob([body], { type: "application/fhir+json" }));
      const a = el("a", { href: url, download: `handoff-${id}.fhir.json`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      showNotice(error.message, "error");
    }
  }

  async function viewFhir() {
    const id = state.sessionId;
    const pre = $("fhir-json");
    if (!id) return;
    if (!pre.hidden && pre.dataset.sessionId === id) {
      pre.hidden = true;
      return;
    }
    try {
      const body = await fetchFhir(id);
      pre.textContent = JSON.stringify(JSON.parse(body), null, 2);
      pre.dataset.sessionId = id;
      pre.hidden = false;
    } catch (error) {
      showNotice(error.message, "error");
    }
  }

  function openFromHash() {
    const match = /(?:^#|&)session=([^&]+)/.exec(window.location.hash);
    if (match && state.token) {
      selectTab("handoff");
      openSbar(decodeURIComponent(match[1]));
    } else if (/^#overdue\b/.test(window.location.hash) && state.token) {
      selectTab("overdue");
    }
  }

  // ---- tabs ---------------------------------------------------------------------------------
  function selectTab(name) {
    if (name !== "handoff" && name !== "overdue") return;
    state.tab = name;
    document.querySelectorAll(".tabs .tab").forEach((tab) => {
      const selected = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
    });
    $("panel-handoff").hidden = name !== "handoff";
    $("panel-overdue").hidden = name !== "overdue";
    if (name === "overdue" && state.token) loadOverdue();
  }

  // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
  function tabKeys(event) {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const tabs = Array.from(document.querySelectorAll(".tabs .tab"));
    const at = tabs.indexOf(event.target);
    if (at < 0) return;
    const next = tabs[(at + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    selectTab(next.dataset.tab);
  }

  // ---- chronic-care worklist ------------------------------------------------------------------
  function clearOverdue() {
    state.overdue = [];
    state.overdueLoaded = false;
    state.overdueGeneration += 1;
    state.latest = {};
    $("overdue-error").hidden = true;
    $("reading-result").hidden = true;
    $("reading-error").hidden = true;
    renderOverdue();
  }

  function showOverdueError(message) {
    const box = $("overdue-error");
    box.textContent = message;
    box.hidden = !message;
  }

  function chip(colour, key) {
    return el("span", { class: `colour-chip colour-${colour}`, "data-chip": key, text: t(`chip_${key}`) });
  }

  function latestText(patientId) {
    if (!(patientId in state.latest)) return t("latest_loading");
    const reading = state.latest[patientId];
    if (!reading) return t("latest_none");
    return t("latest_reading", { value: reading.display, date: reading.taken_on });
  }

  function renderOverdue() {
    const list = $("overdue-list");
    list.replaceChildren(
      ...state.overdue.map((p) => {
        const colour = p.urgent ? "red" : p.worsening || p.overdue ? "orange" : "none";
        const record = el("button", { type: "button", class: "ghost-btn record-reading", text: t("record_for") });
        record.addEventListener("click", () => chooseForReading(p.patient_id));
        const conditions = (p.condition_names || []).join(state.lang === "zh" ? "、" : ", ");
        const facts = [
          p.overdue ? el("span", { class: "overdue-days", text: t("overdue_days", { days: p.overdue_days }) }) : null,
          el("span", { class: "due-date", text: p.due_date ? t("due_date", { date: p.due_date }) : t("due_never") }),
          p.last_visit ? el("span", { text: t("last_visit", { date: p.last_visit }) }) : null,
          el("span", { class: "risk", text: t("risk", { score: p.risk_score }) }),
        ].filter(Boolean);
        return el(
          "li",
          {
            class: `queue-item overdue-item colour-${colour}`,
            "data-patient-id": p.patient_id,
            "data-urgent": String(Boolean(p.urgent)),
            "data-risk": p.risk_score,
          },
          el(
            "div",
            { class: "queue-main" },
            el(
              "p",
              { class: "queue-title" },
              el("strong", { class: "patient-name", text: p.name }),
              conditions ? el("span", { class: "muted", text: conditions }) : null,
              p.urgent ? chip("red", "urgent") : null,
              p.worsening ? chip("orange", "worsening") : null,
              p.overdue ? chip("orange", "overdue") : null,
              !p.urgent && !p.worsening && (p.reasons || []).some((r) => r.code === "uncontrolled")
                ? chip("none", "uncontrolled")
                : null,
            ),
            el(
              "ul",
              { class: "reason-list" },
              ...(p.reasons || []).map((r) => el("li", { "data-code": r.code, "data-rule": r.rule_id, text: r.message })),
            ),
            el("p", { class: "overdue-facts" }, ...facts),
            el("p", { class: "latest-reading muted", text: latestText(p.patient_id) }),
          ),
          record,
        );
      }),
    );
    $("overdue-empty").hidden = !state.overdueLoaded || state.overdue.length > 0;
    $("overdue-count").textContent = state.overdue.length ? String(state.overdue.length) : "";
    fillPatientChoices();
  }

  function fillPatientChoices() {
    const select = $("reading-patient");
    const chosen = select.value;
    select.replaceChildren(
      ...state.overdue.map((p) => el("option", { value: p.patient_id, text: `${p.name}${p.village ? ` · ${p.village}` : ""}` })),
    );
    if (state.overdue.some((p) => p.patient_id === chosen)) select.value = chosen;
  }

  function chooseForReading(patientId) {
    $("reading-patient").value = patientId;
    $("reading-section").scrollIntoView({ block: "start", behavior: "auto" });
    $("reading-text").focus();
  }

  async function loadOverdue() {
    const generation = ++state.overdueGeneration;
    try {
      const data = await api("GET", `/api/chronic/overdue?lang=${state.lang}`);
      if (generation !== state.overdueGeneration) return;
      state.overdue = Array.isArray(data && data.patients) ? data.patients : [];
      state.overdueLoaded = true;
      state.latest = {}; // fetched again: someone else may have recorded a reading
      for (const p of state.overdue) {
        if (p && "latest_reading" in p) state.latest[p.patient_id] = p.latest_reading || null; // when the server sends it
      }
      showOverdueError("");
      renderOverdue();
      loadLatestReadings(generation);
    } catch (error) {
      if (generation !== state.overdueGeneration) return;
      state.overdue = [];
      state.overdueLoaded = false;
      renderOverdue();
      if (error.status !== 401) {
        showOverdueError(error.message);
        showNotice(error.message, "error");
      }
    }
  }

  // The worklist entry (server/chronic status_view) has no reading values: each patient's record
  // gives the latest one (three requests at a time; a failure just shows "none"). Skipped for
  // entries that carry latest_reading {display, taken_on} themselves.
  async function loadLatestReadings(generation) {
    const queue = state.overdue.map((p) => p.patient_id).filter((id) => !(id in state.latest));
    const worker = async () => {
      while (queue.length && generation === state.overdueGeneration) {
        const id = queue.shift();
        let latest = null;
        try {
          const data = await api("GET", `/api/chronic/patients/${encodeURIComponent(id)}?lang=${state.lang}`);
          for (const reading of (data && data.readings) || []) {
            if (!latest || String(reading.taken_on) >= String(latest.taken_on)) latest = reading;
          }
        } catch {
          latest = null;
        }
        if (generation !== state.overdueGeneration) return;
        state.latest[id] = latest;
        const node = document.querySelector(`.overdue-item[data-patient-id="${CSS.escape(id)}"] .latest-reading`);
        if (node) node.textContent = latestText(id);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  }

  function toggleContext() {
    $("reading-context-label").hidden = $("reading-kind").value !== "glucose";
  }

  function renderReading(data) {
    const reading = data.reading || {};
    const parsed = $("reading-parsed");
    parsed.textContent = reading.display || "";
    if (reading.converted && reading.unit_given) parsed.append(t("reading_converted", { unit: reading.unit_given }));
    const klass = data.classification || {};
    $("reading-level").replaceChildren(
      el("span", {
        class: `colour-chip colour-${klass.level === "urgent" ? "red" : klass.level === "on_target" ? "green" : "orange"}`,
        "data-level": klass.level || "none",
        text: t(`class_${klass.level}`),
      }),
    );
    $("reading-warnings").replaceChildren(
      ...(reading.warnings || []).map((w) => el("li", { "data-code": w.code, text: w.message })),
    );
    $("reading-reasons").replaceChildren(...(klass.reasons || []).map((r) => el("li", { text: r })));
    const urgent = $("reading-urgent");
    urgent.hidden = !data.urgent;
    $("reading-urgent-rules").replaceChildren(
      ...(data.urgent_rules || []).map((r) => el("li", { "data-rule": r.rule_id, text: r.message })),
    );
    const triage = data.triage;
    $("reading-triage").textContent = triage ? t("triage_says", { label: triage.level_label, advice: triage.advice }) : "";
    $("reading-result").hidden = false;
  }

  async function recordReading(event) {
    event.preventDefault();
    const patientId = $("reading-patient").value;
    const errorBox = $("reading-error");
    errorBox.hidden = true;
    if (!patientId) {
      errorBox.textContent = t("reading_no_patient");
      errorBox.hidden = false;
      return;
    }
    const kind = $("reading-kind").value;
    const body = { kind, text: $("reading-text").value.trim(), visit: $("reading-visit").checked };
    if (kind === "glucose" && $("reading-context").value) body.context = $("reading-context").value;
    const symptoms = $("reading-symptoms").value.trim();
    if (symptoms) body.symptoms = symptoms;
    const button = $("reading-form").querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const data = await api("POST", `/api/chronic/patients/${encodeURIComponent(patientId)}/readings?lang=${state.lang}`, body);
      renderReading(data);
      loadOverdue(); // the new reading may change the order, the reasons and the latest reading
    } catch (error) {
      $("reading-result").hidden = true;
      errorBox.textContent = error.message;
      errorBox.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  // ---- start --------------------------------------------------------------------------------
  function start() {
    const stored = load(KEY_LANG);
    state.lang = stored === "en" || stored === "zh" ? stored : (navigator.language || "").toLowerCase().startsWith("en") ? "en" : "zh";
    document.querySelectorAll(".lang-btn").forEach((btn) => btn.addEventListener("click", () => setLang(btn.dataset.lang)));
    $("login-form").addEventListener("submit", login);
    $("logout-btn").addEventListener("click", logout);
    $("flags-refresh").addEventListener("click", loadFlags);
    $("open-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("session-id").value.trim();
      if (id) openSbar(id);
    });
    $("sbar-close").addEventListener("click", closeSbar);
    document.querySelectorAll(".tabs .tab").forEach((tab) => {
      tab.addEventListener("click", () => selectTab(tab.dataset.tab));
      tab.addEventListener("keydown", tabKeys);
    });
    $("overdue-refresh").addEventListener("click", loadOverdue);
    $("reading-kind").addEventListener("change", toggleContext);
    $("reading-form").addEventListener("submit", recordReading);
    $("fhir-link").addEventListener("click", downloadFhir);
    $("fhir-view").addEventListener("click", viewFhir);
    window.addEventListener("hashchange", openFromHash);
    applyStrings();
    toggleContext();
    selectTab("handoff");
    let restored = null;
    try {
      restored = JSON.parse(load(KEY_SESSION) || "null");
    } catch {
      restored = null;
    }
    if (restored && typeof restored.token === "string" && restored.role === "clinician") {
      setSession(restored);
      showSignedIn(true);
      loadFlags();
      openFromHash();
    } else {
      showSignedIn(false);
    }
    renderFlags();
    renderOverdue();
  }

  window.daozhenHandoff = { state };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
