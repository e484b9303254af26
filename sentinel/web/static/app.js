/* sentinel dashboard: one page fed by /api/status, /api/history, /api/timeline and the
 * /events stream. Plain JS, no build step. Every string from the server goes into the page
 * as textContent (sensor names and reasons come from config files and devices), never as
 * markup. */
"use strict";

// ---------------------------------------------------------------------------------------
// Words. Every string the page shows is here, in both languages (tests/web/test_static.py
// checks that the two have the same keys). {0}, {1} are filled in by t().
const I18N = {
  ko: {
    title: "전산실 상황판",
    state_OK: "정상",
    state_WARNING: "주의",
    state_CRITICAL: "위험",
    state_UNKNOWN: "알 수 없음",
    all_normal: "모두 정상",
    site_unnamed: "(이름 없는 현장)",
    generated: "{0} 기준",
    daemon: "데몬: {0}",
    daemon_up: "동작 중",
    daemon_down: "멈춤(비정상 종료)",
    daemon_stale: "응답 없음",
    daemon_stopped: "정지됨",
    "daemon_never-started": "한 번도 실행 안 됨",
    daemon_unknown: "알 수 없음",
    live_connecting: "연결 중…",
    live_open: "실시간",
    live_lost: "연결 끊김: {0}부터 화면이 갱신되지 않습니다. 다시 연결하는 중…",
    live_lost_short: "연결 끊김",
    alarms: "경보",
    no_alarms: "활성 경보 없음",
    silences: "알림 중지",
    no_silences: "알림 중지 없음",
    sensors: "센서",
    no_sensors: "설정된 센서 없음",
    timeline: "경보 기록",
    no_timeline: "기록 없음",
    timeline_error: "기록을 불러오지 못했습니다: {0}",
    replication: "복제",
    no_replication: "설정된 복제 없음",
    channels: "알림 채널",
    no_channels: "알림 채널 없음",
    ack: "확인(ACK)",
    acked_by: "{0} 확인함",
    end: "중지 해제",
    reason: "사유",
    silence_sensor: "대상",
    silence_all: "전체",
    silence_duration: "기간",
    silence_start: "알림 중지",
    silence_until: "{0}까지",
    silence_by: "설정: {0}",
    silenced: "알림 중지 중 ({0}까지)",
    user: "사용자",
    password: "비밀번호",
    login: "로그인",
    logout: "로그아웃",
    logged_in_as: "{0} 로그인",
    login_to_act: "확인·알림 중지는 로그인 후 할 수 있습니다.",
    login_needed: "보려면 로그인하세요.",
    login_failed: "로그인 실패: 사용자 또는 비밀번호가 틀렸습니다.",
    login_limited: "로그인 시도가 너무 많습니다. {0} 뒤에 다시 하세요.",
    done: "완료: {0}",
    failed: "실패: {0}",
    request_failed: "요청 실패 ({0})",
    value: "값",
    age: "{0} 전",
    never_seen: "수신 기록 없음",
    sensor_ok: "정상",
    sensor_alarm: "경보",
    sensor_lost: "신호 끊김",
    sensor_fault: "고장",
    "sensor_never-seen": "미수신",
    sev_critical: "위험",
    sev_warning: "주의",
    sev_info: "정보",
    alarm_normal: "정상",
    alarm_pending: "대기",
    alarm_firing: "발생",
    alarm_acknowledged: "확인됨",
    alarm_resolved: "해소",
    alarm_cancelled: "취소",
    latched: "래치(수동 해제 필요)",
    since: "{0}부터",
    leak_yes: "누수 감지",
    leak_no: "누수 없음",
    smoke_yes: "연기 감지",
    smoke_no: "연기 없음",
    door_yes: "열림",
    door_no: "닫힘",
    bool_yes: "켜짐",
    bool_no: "꺼짐",
    range_1h: "1시간",
    range_24h: "24시간",
    range_7d: "7일",
    range_30d: "30일",
    chart_loading: "불러오는 중…",
    chart_empty: "이 기간의 기록 없음",
    chart_error: "그래프를 불러오지 못했습니다: {0}",
    legend_avg: "평균",
    legend_band: "최소–최대",
    warn_high: "주의 상한",
    crit_high: "위험 상한",
    warn_low: "주의 하한",
    crit_low: "위험 하한",
    rpo: "RPO(복구 시점 지연)",
    pending: "대기 변경",
    last_success: "마지막 성공",
    last_failure: "마지막 실패",
    last_error: "마지막 오류",
    failures: "연속 실패",
    last_verify: "마지막 검증",
    verify_none: "검증 안 됨",
    verify_ok: "일치",
    verify_mismatch: "불일치 {0}건",
    guard: "보호 장치",
    guard_ok: "정상",
    guard_tripped: "작동함: {0}",
    keeper_safe: "자료 안전 시점(보관소 {0})",
    keeper_problem: "보관소 문제",
    quarantine: "격리된 파일",
    outbox: "발송 대기 {0}건",
    outbox_oldest: "가장 오래된 대기 {0}",
    all_failing: "모든 알림 채널이 {0}부터 실패 중",
    sent: "보낸 알림",
    never: "없음",
    yes: "예",
    no: "아니오",
    tl_time: "시각",
    tl_alarm: "경보",
    tl_change: "변화",
    tl_severity: "등급",
    tl_who: "누가",
    cmd_ack: "확인",
    cmd_silence: "알림 중지",
    cmd_unsilence: "알림 중지 해제",
    from_address: "{0} ({1})",
    seconds: "{0}초",
    minutes: "{0}분",
    hours: "{0}시간",
    days: "{0}일",
    version: "sentinel {0}",
  },
  en: {
    title: "Server room",
    state_OK: "OK",
    state_WARNING: "WARNING",
    state_CRITICAL: "CRITICAL",
    state_UNKNOWN: "UNKNOWN",
    all_normal: "all normal",
    site_unnamed: "(unnamed site)",
    generated: "as of {0}",
    daemon: "daemon: {0}",
    daemon_up: "up",
    daemon_down: "down (crashed)",
    daemon_stale: "not answering",
    daemon_stopped: "stopped",
    "daemon_never-started": "never started",
    daemon_unknown: "unknown",
    live_connecting: "connecting…",
    live_open: "live",
    live_lost: "Connection lost: this page has not updated since {0}. Reconnecting…",
    live_lost_short: "connection lost",
    alarms: "Alarms",
    no_alarms: "no active alarms",
    silences: "Silences",
    no_silences: "no silences",
    sensors: "Sensors",
    no_sensors: "no sensors configured",
    timeline: "Alarm timeline",
    no_timeline: "nothing recorded yet",
    timeline_error: "cannot load the timeline: {0}",
    replication: "Replication",
    no_replication: "no replication configured",
    channels: "Alert channels",
    no_channels: "no alert channels",
    ack: "Acknowledge",
    acked_by: "acknowledged by {0}",
    end: "End",
    reason: "Reason",
    silence_sensor: "Sensor",
    silence_all: "all",
    silence_duration: "For",
    silence_start: "Silence",
    silence_until: "until {0}",
    silence_by: "by {0}",
    silenced: "silenced until {0}",
    user: "User",
    password: "Password",
    login: "Log in",
    logout: "Log out",
    logged_in_as: "logged in as {0}",
    login_to_act: "Log in to acknowledge or silence.",
    login_needed: "Log in to view.",
    login_failed: "Login failed: wrong user or password.",
    login_limited: "Too many login attempts. Try again in {0}.",
    done: "done: {0}",
    failed: "failed: {0}",
    request_failed: "request failed ({0})",
    value: "value",
    age: "{0} ago",
    never_seen: "never heard from",
    sensor_ok: "ok",
    sensor_alarm: "ALARM",
    sensor_lost: "LOST",
    sensor_fault: "FAULT",
    "sensor_never-seen": "never seen",
    sev_critical: "critical",
    sev_warning: "warning",
    sev_info: "info",
    alarm_normal: "normal",
    alarm_pending: "pending",
    alarm_firing: "firing",
    alarm_acknowledged: "acknowledged",
    alarm_resolved: "resolved",
    alarm_cancelled: "cancelled",
    latched: "latched (clear by hand)",
    since: "since {0}",
    leak_yes: "LEAK",
    leak_no: "dry",
    smoke_yes: "SMOKE",
    smoke_no: "clear",
    door_yes: "OPEN",
    door_no: "closed",
    bool_yes: "on",
    bool_no: "off",
    range_1h: "1 h",
    range_24h: "24 h",
    range_7d: "7 d",
    range_30d: "30 d",
    chart_loading: "loading…",
    chart_empty: "no readings in this range",
    chart_error: "cannot load the chart: {0}",
    legend_avg: "average",
    legend_band: "min–max",
    warn_high: "warn high",
    crit_high: "crit high",
    warn_low: "warn low",
    crit_low: "crit low",
    rpo: "RPO",
    pending: "pending changes",
    last_success: "last success",
    last_failure: "last failure",
    last_error: "last error",
    failures: "consecutive failures",
    last_verify: "last verify",
    verify_none: "never verified",
    verify_ok: "match",
    verify_mismatch: "MISMATCH ({0})",
    guard: "guard",
    guard_ok: "normal",
    guard_tripped: "TRIPPED: {0}",
    keeper_safe: "data safe at keeper {0} as of",
    keeper_problem: "keeper problem",
    quarantine: "set-aside files",
    outbox: "outbox: {0} pending",
    outbox_oldest: "oldest pending {0}",
    all_failing: "every alert channel failing since {0}",
    sent: "sent",
    never: "never",
    yes: "yes",
    no: "no",
    tl_time: "time",
    tl_alarm: "alarm",
    tl_change: "change",
    tl_severity: "severity",
    tl_who: "who",
    cmd_ack: "acknowledge",
    cmd_silence: "silence",
    cmd_unsilence: "end silence",
    from_address: "{0} ({1})",
    seconds: "{0} s",
    minutes: "{0} min",
    hours: "{0} h",
    days: "{0} d",
    version: "sentinel {0}",
  },
};

const RANGES = ["1h", "24h", "7d", "30d"];
// On/off kinds chart as a 0/1 step line; the server sends them as 0/1 (max over a bucket).
const BOOLEAN_KINDS = new Set([
  "water_leak", "smoke", "tamper", "battery_low", "availability", "door",
  "ups_battery_low", "ups_replace_battery", "ups_overload", "ups_bypass", "ups_output_off",
]);
const REFRESH_MS = 30000;
const DEFAULT_RANGE = "24h";
// The history is queried again at most this often when the page comes back into view; in
// between, each report's current value is drawn as the chart's newest point.
const MIN_REDRAW_MS = 5000;
const STATES = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];

let lang = "ko";
let report = null;
let web = { language: "ko", user: null, csrf: null, can_act: false, view: "open" };
let lastUpdate = null;
const charts = new Map(); // chart key -> Chart
let chartsMarked = false;

function t(key, ...args) {
  const words = I18N[lang] || I18N.ko;
  const text = key in words ? words[key] : key in I18N.ko ? I18N.ko[key] : key;
  return text.replace(/\{(\d)\}/g, (_, i) => (args[i] === undefined ? "" : String(args[i])));
}

function has(key) {
  return key in I18N.ko;
}

// ---------------------------------------------------------------------------------------
// DOM helpers: text only, never markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function $(id) {
  return document.getElementById(id);
}

function fill(node, children) {
  node.replaceChildren(...children.filter((c) => c));
}

// ---------------------------------------------------------------------------------------
// Times: local, 24 h.
const clockFmt = () =>
  new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "ko-KR", {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
const dayFmt = () =>
  new Intl.DateTimeFormat(lang === "en" ? "en-GB" : "ko-KR", {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });

function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

// A time today reads as 14:32:05, an older one with its date.
function when(ts) {
  if (!isNum(ts)) return t("never");
  const d = new Date(ts * 1000);
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay ? clockFmt().format(d) : dayFmt().format(d);
}

function duration(seconds) {
  if (!isNum(seconds)) return "?";
  const s = Math.max(0, seconds);
  if (s < 10) return t("seconds", s.toFixed(1));
  if (s < 120) return t("seconds", Math.round(s));
  if (s < 7200) return t("minutes", Math.round(s / 60));
  if (s < 172800) return t("hours", (s / 3600).toFixed(1));
  return t("days", (s / 86400).toFixed(1));
}

// ---------------------------------------------------------------------------------------
// Talking to the server.
class HttpError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

async function getJSON(url) {
  let res;
  try {
    res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (err) {
    noteFailure();
    throw err;
  }
  if (!res.ok) throw new HttpError(res.status, await errorText(res));
  noteSuccess();
  return res.json();
}

async function errorText(res) {
  try {
    const body = await res.clone().json();
    if (body && body.error) return String(body.error);
  } catch (_) { /* not JSON: the status line says it */ }
  try {
    const text = (await res.text()).trim();
    if (text && text.length < 300) return text;
  } catch (_) { /* nothing readable */ }
  return `HTTP ${res.status}`;
}

async function post(url, body) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (web.csrf) headers["X-CSRF-Token"] = web.csrf;
  const res = await fetch(url, {
    method: "POST", credentials: "same-origin", headers, body: JSON.stringify(body || {}),
  });
  let data = null;
  try { data = await res.json(); } catch (_) { /* an error page, not JSON */ }
  if (!res.ok || !data || data.ok === false) {
    throw new HttpError(res.status, (data && data.error) || t("request_failed", res.status));
  }
  return data;
}

async function act(url, body) {
  try {
    const data = await post(url, body);
    say(t("done", data.result || "ok"), "ok");
    loadTimeline();
    return true;
  } catch (err) {
    if (err.status === 401) await loadStatus();
    say(t("failed", err.message), "error");
    return false;
  }
}

let messageTimer = null;
function say(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(messageTimer);
  if (kind === "ok") messageTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

// ---------------------------------------------------------------------------------------
// Live connection. The stream carries every report; a fetch that fails also counts as a
// lost connection, so a page that silently stopped updating always says so.
let source = null;
let streamOpen = false;
let fetchFailing = false;
let reconnectTimer = null;
let streamTried = false; // the stream has opened or failed at least once

function noteFailure() { fetchFailing = true; showLive(); }
function noteSuccess() { if (fetchFailing) { fetchFailing = false; showLive(); } }

function showLive() {
  const box = $("live");
  const lost = fetchFailing || (!streamOpen && streamTried);
  if (!lost && !streamOpen) {
    box.dataset.state = "connecting";
    box.textContent = t("live_connecting");
    return;
  }
  if (lost) {
    box.dataset.state = "lost";
    box.textContent = t("live_lost", lastUpdate ? clockFmt().format(lastUpdate) : "?");
    document.body.classList.add("stale");
  } else {
    box.dataset.state = "open";
    box.textContent = t("live_open");
    document.body.classList.remove("stale");
  }
}

function connect() {
  clearTimeout(reconnectTimer);
  if (source) source.close();
  source = null;
  if (web.view === "login" && !web.user) return; // the stream needs a login too
  const stream = new EventSource("/events");
  source = stream;
  stream.onopen = () => {
    if (source !== stream) return;
    streamOpen = true;
    streamTried = true;
    showLive();
  };
  stream.addEventListener("status", (ev) => {
    if (source !== stream) return;
    streamOpen = true;
    fetchFailing = false; // a report just came through: the connection works
    let data;
    try { data = JSON.parse(ev.data); } catch (_) { return; }
    if (statusKnown) render(data);
    showLive();
  });
  stream.onerror = () => {
    if (source !== stream) return;
    streamOpen = false;
    streamTried = true;
    showLive();
    // The browser retries by itself while the state is CONNECTING; a refused answer
    // (server restarting, 5xx) closes the stream for good, so try again ourselves.
    if (stream.readyState === EventSource.CLOSED) {
      reconnectTimer = setTimeout(async () => {
        await loadStatus();
        connect();
      }, 3000);
    }
  };
}

// ---------------------------------------------------------------------------------------
// The status report.
async function loadStatus() {
  try {
    const data = await getJSON("/api/status");
    render(data);
    return true;
  } catch (err) {
    if (err.status === 401) {
      // view = "login": nothing to see until logged in
      web = { ...web, user: null, csrf: null, can_act: false, view: "login" };
      renderAccount(true);
      return false;
    }
    showLive();
    return false;
  }
}

function render(data) {
  if (!data || typeof data !== "object") return;
  // status events may come without the "web" key: keep what /api/status said
  if (data.web) web = data.web;
  data.web = web;
  const previous = report;
  // A report the server could not build is only {"overall": UNKNOWN + why}: the banner
  // says so, and the rest keeps what was last known, dimmed, rather than going blank.
  const degraded = !Array.isArray(data.sensors) && previous !== null;
  document.body.classList.toggle("degraded", degraded);
  if (degraded) data = { ...previous, overall: data.overall, generated: data.generated, web };
  report = data;
  // for bench/: the page is usable once the first report is on it
  if (!previous && performance.mark) performance.mark("sentinel-first-report");
  lastUpdate = new Date();
  const newLang = web.language === "en" ? "en" : "ko";
  const langChanged = newLang !== lang;
  lang = newLang;
  document.documentElement.lang = lang;
  document.title = `${t("title")} · ${siteName()}`;
  if (langChanged || !previous) translateStatic();
  renderOverall();
  renderAccount(false);
  // Reports come about every second; rows with buttons are rebuilt only when what they
  // show changed, or a tap landing between two reports would hit a button already gone.
  if (changedSince("alarms", report.alarms)) renderAlarms();
  if (changedSince("silences", [report.silences, [...sensorNames()]])) renderSilences();
  renderTiles(langChanged);
  renderReplication();
  renderChannels();
  renderFooter();
  if (alarmSignature(previous) !== alarmSignature(report)) loadTimeline();
}

const shown = new Map();
function changedSince(name, inputs) {
  const key = JSON.stringify([lang, web.can_act, inputs]);
  if (shown.get(name) === key) return false;
  shown.set(name, key);
  return true;
}

function siteName() {
  const configured = report && report.daemon && report.daemon.config && report.daemon.config.site;
  return (report && report.site) || configured || t("site_unnamed");
}

function translateStatic() {
  for (const node of document.querySelectorAll("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n);
  }
  for (const opt of $("silence-duration").options) {
    opt.textContent = durationLabel(opt.value);
  }
}

function durationLabel(text) {
  const m = /^(\d+)([mhd])$/.exec(text);
  if (!m) return text;
  return t({ m: "minutes", h: "hours", d: "days" }[m[2]], m[1]);
}

function renderOverall() {
  const overall = report.overall || {};
  const state = STATES.includes(overall.state) ? overall.state : "UNKNOWN";
  const box = $("overall");
  box.dataset.state = state;
  box.dataset.generated = isNum(report.generated) ? String(report.generated) : "";
  $("overall-word").textContent = t(`state_${state}`);
  $("site").textContent = siteName();
  const reasons = Array.isArray(overall.reasons) ? overall.reasons : [];
  fill($("overall-reasons"), reasons.map((r) => el("li", { text: r === "all normal" ? t("all_normal") : r })));
  const daemon = report.daemon || {};
  const dkey = `daemon_${daemon.state}`;
  $("overall-meta").textContent = [
    t("daemon", has(dkey) ? t(dkey) : String(daemon.state || "?")),
    isNum(report.generated) ? t("generated", when(report.generated)) : null,
  ].filter(Boolean).join(" · ");
}

let accountShown = null;
function renderAccount(loginNeeded) {
  const box = $("account");
  $("silence-form").hidden = !web.can_act;
  // rebuilt only when who is logged in changes: a report arriving while someone types
  // their password must not wipe the form
  const key = `${web.user}|${loginNeeded}|${lang}`;
  if (key === accountShown) return;
  accountShown = key;
  if (web.user) {
    fill(box, [
      el("span", { class: "who", text: t("logged_in_as", web.user) }),
      el("button", { class: "btn secondary", type: "button", "data-testid": "logout", onclick: logout, text: t("logout") }),
    ]);
  } else {
    const form = $("login-template").content.firstElementChild.cloneNode(true);
    for (const node of form.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    form.addEventListener("submit", login);
    fill(box, [
      el("p", { class: "hint", text: loginNeeded ? t("login_needed") : t("login_to_act") }),
      form,
    ]);
  }
}

async function login(ev) {
  ev.preventDefault();
  const form = new FormData(ev.target);
  let res;
  try {
    // JSON, so a refusal comes back as {"error"} rather than as the no-script login page
    res = await fetch("/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ user: form.get("user") || "", password: form.get("password") || "" }),
    });
  } catch (err) {
    say(t("failed", err.message), "error");
    return;
  }
  if (res.status === 429) {
    const wait = Number(res.headers.get("Retry-After"));
    say(t("login_limited", isNum(wait) && wait > 0 ? duration(wait) : "?"), "error");
    return;
  }
  if (res.status === 401) { say(t("login_failed"), "error"); return; }
  if (!res.ok) { say(t("failed", await errorText(res)), "error"); return; }
  await loadStatus();
  if (web.user) {
    $("message").hidden = true;
    loadTimeline();
    connect();
  } else {
    say(t("login_failed"), "error");
  }
}

async function logout() {
  try {
    await fetch("/logout", {
      method: "POST", credentials: "same-origin",
      headers: web.csrf ? { "X-CSRF-Token": web.csrf } : {},
    });
  } catch (err) {
    say(t("failed", err.message), "error");
  }
  // view = "login": what is on the page is not for someone logged out; the server's
  // answer to "/" is its login page
  if (web.view === "login") {
    location.assign("/");
    return;
  }
  await loadStatus();
}

// ---------------------------------------------------------------------------------------
// Alarms and silences.
function alarmLabel(alarm) {
  return alarm.location || alarm.sensor || alarm.subject || alarm.id;
}

function renderAlarms() {
  const alarms = Array.isArray(report.alarms) ? report.alarms : [];
  if (!alarms.length) {
    fill($("alarms"), [el("li", { class: "empty", text: t("no_alarms") })]);
    return;
  }
  fill($("alarms"), alarms.map((a) => {
    const sev = a.severity === "critical" ? "CRITICAL" : "WARNING";
    const stateKey = `alarm_${a.state}`;
    const value = isNum(a.value) || typeof a.value === "boolean" ? formatValue(a.kind, a.value, a.unit) : null;
    return el("li", { class: "row alarm", "data-testid": `alarm-${a.id}`, "data-state": sev, "data-alarm-state": a.state },
      el("div", { class: "row-main" },
        el("span", { class: "badge", "data-state": sev, text: has(`sev_${a.severity}`) ? t(`sev_${a.severity}`) : String(a.severity) }),
        el("strong", { class: "alarm-id", text: a.id }),
        el("span", { class: "alarm-where", text: alarmLabel(a) }),
        el("div", { class: "alarm-reason", text: [a.reason, value].filter(Boolean).join(" · ") }),
        el("div", { class: "meta", text: [
          has(stateKey) ? t(stateKey) : a.state,
          isNum(a.since) ? t("since", when(a.since)) : null,
          a.acked_by ? t("acked_by", a.acked_by) : null,
          a.latched ? t("latched") : null,
        ].filter(Boolean).join(" · ") })),
      web.can_act && a.state !== "acknowledged"
        ? el("button", {
          class: "btn", type: "button", "data-testid": `ack-${a.id}`, text: t("ack"),
          onclick: (ev) => ackAlarm(ev.currentTarget, a.id),
        })
        : null);
  }));
}

async function ackAlarm(button, id) {
  button.disabled = true;
  const ok = await act(`/api/alarms/${encodeURIComponent(id)}/ack`, { reason: "" });
  if (!ok) button.disabled = false;
}

function renderSilences() {
  const silences = Array.isArray(report.silences) ? report.silences : [];
  const names = sensorNames();
  fill($("silences"), silences.length ? silences.map((s) =>
    el("li", { class: "row", "data-testid": `silence-${s.id}` },
      el("div", { class: "row-main" },
        el("strong", { text: s.sensor === "all" || !s.sensor ? t("silence_all") : names.get(s.sensor) || s.sensor }),
        el("span", { class: "meta", text: [
          t("silence_until", when(s.until)), s.by ? t("silence_by", s.by) : null,
        ].filter(Boolean).join(" · ") }),
        s.reason ? el("div", { class: "alarm-reason", text: s.reason }) : null),
      web.can_act
        ? el("button", {
          class: "btn secondary", type: "button", "data-testid": `unsilence-${s.id}`, text: t("end"),
          onclick: async (ev) => {
            ev.currentTarget.disabled = true;
            await act(`/api/silences/${encodeURIComponent(s.id)}/end`, { reason: "" });
          },
        })
        : null)) : [el("li", { class: "empty", text: t("no_silences") })]);
  // the sensor choice follows the configured sensors; keep what the person picked
  const select = $("silence-sensor");
  const shape = `${lang}|${[...names].join("|")}`;
  if (select.dataset.shape === shape) return; // an open drop-down is not rebuilt under a finger
  select.dataset.shape = shape;
  const picked = select.value;
  const options = [el("option", { value: "", text: t("silence_all") })];
  for (const [id, name] of names) options.push(el("option", { value: id, text: name === id ? id : `${name} (${id})` }));
  fill(select, options);
  select.value = [...names.keys()].includes(picked) ? picked : "";
}

function sensorNames() {
  const names = new Map();
  for (const s of report.sensors || []) if (!names.has(s.id)) names.set(s.id, s.location || s.id);
  return names;
}

$("silence-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const button = ev.target.querySelector("button[type=submit]");
  button.disabled = true;
  const sensor = $("silence-sensor").value || null;
  const ok = await act("/api/silences", {
    sensor, duration: $("silence-duration").value, reason: $("silence-reason").value.trim(),
  });
  if (ok) $("silence-reason").value = "";
  button.disabled = false;
});

// ---------------------------------------------------------------------------------------
// Sensor tiles. A tile is made once and updated in place, so its chart survives a report.
function formatValue(kind, value, unit) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "boolean" || BOOLEAN_KINDS.has(kind)) {
    const on = value === true || value === 1;
    if (kind === "water_leak") return t(on ? "leak_yes" : "leak_no");
    if (kind === "smoke") return t(on ? "smoke_yes" : "smoke_no");
    if (kind === "door") return t(on ? "door_yes" : "door_no");
    return t(on ? "bool_yes" : "bool_no");
  }
  if (isNum(value)) {
    const digits = Math.abs(value) >= 100 ? 0 : 1;
    return `${value.toFixed(digits)}${unit ? ` ${unit}` : ""}`;
  }
  return String(value);
}

// A tile's colour: its sensor's worst active alarm, else grey when nothing is heard from it.
function tileState(rows, alarms) {
  const own = alarms.filter((a) => a.sensor === rows[0].id);
  if (own.some((a) => a.severity === "critical")) return "CRITICAL";
  if (own.length) return "WARNING";
  if (rows.some((r) => r.state === "lost" || r.state === "fault" || r.state === "never-seen")) return "UNKNOWN";
  return "OK";
}

// [[sensors]] entries have one kind each, but the engine keys its rows by (id, kind):
// group them, the physical kind first.
function sensorGroups() {
  const groups = new Map();
  for (const s of report.sensors || []) {
    if (!groups.has(s.id)) groups.set(s.id, []);
    groups.get(s.id).push(s);
  }
  for (const rows of groups.values()) rows.sort((a, b) => (a.kind === "availability") - (b.kind === "availability"));
  return groups;
}

function renderTiles(langChanged) {
  const container = $("tiles");
  const groups = sensorGroups();
  const alarms = Array.isArray(report.alarms) ? report.alarms : [];
  if (!groups.size) {
    for (const key of [...charts.keys()]) if (!key.startsWith("replication:")) dropChart(key);
    fill(container, [el("p", { class: "empty", text: t("no_sensors") })]);
    return;
  }
  container.querySelector(":scope > .empty")?.remove();
  const wanted = new Set(groups.keys());
  for (const tile of [...container.querySelectorAll(":scope > .tile")]) {
    if (!wanted.has(tile.dataset.sensor)) {
      dropChart(tile.dataset.sensor);
      tile.remove();
    }
  }
  let position = 0;
  for (const [id, rows] of groups) {
    let tile = container.querySelector(`:scope > .tile[data-sensor="${CSS.escape(id)}"]`);
    const primary = rows[0];
    if (!tile) {
      tile = makeTile(id, primary.kind);
    }
    // keep the configured order
    if (container.children[position] !== tile) container.insertBefore(tile, container.children[position] || null);
    position += 1;
    updateTile(tile, rows, alarms);
    const chart = charts.get(id);
    if (chart) {
      if (langChanged) chart.relabel();
      const current = newestValue(primary, alarms);
      chart.setLive(current.ts, current.value);
    }
  }
}

function sinceReport() {
  return lastUpdate ? Math.max(0, (Date.now() - lastUpdate.getTime()) / 1000) : 0;
}

// ages tick on a quiet page, where no report arrives for minutes
setInterval(() => {
  if (!report || document.hidden) return;
  const alarms = Array.isArray(report.alarms) ? report.alarms : [];
  for (const [id, rows] of sensorGroups()) {
    const tile = $("tiles").querySelector(`:scope > .tile[data-sensor="${CSS.escape(id)}"]`);
    if (tile) updateTile(tile, rows, alarms);
  }
}, 5000);

function makeTile(id, kind) {
  const tile = el("article", { class: "tile", "data-testid": `tile-${id}`, "data-sensor": id, "data-state": "UNKNOWN" },
    el("header", { class: "tile-head" },
      el("h3", { class: "tile-where" }),
      el("span", { class: "badge tile-badge" })),
    el("div", { class: "tile-value" }),
    el("div", { class: "tile-meta meta" }),
    el("div", { class: "tile-extra meta" }),
    el("div", { class: "chart-box" }));
  const chart = new Chart(tile.querySelector(".chart-box"), id, kind, `chart-${id}`);
  charts.set(id, chart);
  return tile;
}

// The engine writes an alarm at once but a sensor's latest value in batches, so for a few
// seconds a report can say "dry" next to a leak alarm: the newer of the two is shown.
function newestValue(sensor, alarms) {
  const seen = isNum(report.generated) && isNum(sensor.age) ? report.generated - sensor.age : null;
  let best = { value: sensor.value, ts: seen };
  for (const a of alarms) {
    if (a.sensor !== sensor.id || a.kind !== sensor.kind || !isNum(a.since)) continue;
    if (a.value === null || a.value === undefined) continue;
    if (best.ts === null || a.since > best.ts) best = { value: a.value, ts: a.since };
  }
  return best;
}

function updateTile(tile, rows, alarms) {
  const primary = rows[0];
  const state = tileState(rows, alarms);
  tile.dataset.state = state;
  tile.querySelector(".tile-where").textContent = primary.location || primary.id;
  const badge = tile.querySelector(".tile-badge");
  badge.dataset.state = state;
  const skey = `sensor_${primary.state}`;
  badge.textContent = has(skey) ? t(skey) : String(primary.state || "?");
  const current = newestValue(primary, alarms);
  tile.querySelector(".tile-value").textContent = formatValue(primary.kind, current.value, primary.unit);
  tile.querySelector(".tile-meta").textContent = [
    primary.id,
    // the report's age was right when it was made; between reports it keeps counting
    isNum(primary.age) ? t("age", duration(primary.age + sinceReport())) : t("never_seen"),
    primary.silenced ? t("silenced", when(primary.silenced.until)) : null,
  ].filter(Boolean).join(" · ");
  const extra = rows.slice(1).map((r) => `${r.kind}: ${formatValue(r.kind, r.value, r.unit)}`);
  tile.querySelector(".tile-extra").textContent = extra.join(" · ");
}

// ---------------------------------------------------------------------------------------
// History requests made in the same turn of the event loop go out as one /api/histories
// request: the first paint asks for every tile's chart at once (one request, one database
// connection on the server), not twenty.
const historyBatch = { items: [], timer: null };

// Every configured chart at the default range, asked for by index.html beside /api/status:
// each chart's first load takes its data from here, so the page does not wait for the
// status to know its tiles before asking for their history.
let firstCharts = null;

function prefetched(sensor, kind, range) {
  if (range !== DEFAULT_RANGE) return Promise.resolve(null);
  if (firstCharts === null) {
    firstCharts = getJSON(`/api/histories?all=${DEFAULT_RANGE}`)
      .then((data) => new Map((data.charts || []).map((c) => [`${c.sensor}\u0000${c.kind}`, c])))
      .catch(() => new Map());
  }
  return firstCharts.then((charts) => {
    const key = `${sensor}\u0000${kind}`;
    const chart = charts.get(key);
    charts.delete(key); // only the first load: later ones want fresh data
    return chart || null;
  });
}

async function fetchHistory(sensor, kind, range) {
  const early = await prefetched(sensor, kind, range);
  if (early) return early;
  return batchedHistory(sensor, kind, range);
}

function batchedHistory(sensor, kind, range) {
  return new Promise((resolve, reject) => {
    historyBatch.items.push({ sensor, kind, range, resolve, reject });
    if (!historyBatch.timer) historyBatch.timer = setTimeout(flushHistory, 0);
  });
}

async function flushHistory() {
  // the server answers at most 100 charts per request
  const items = historyBatch.items.splice(0, 50);
  historyBatch.timer = historyBatch.items.length ? setTimeout(flushHistory, 0) : null;
  const query = new URLSearchParams();
  for (const i of items) {
    query.append("sensor", i.sensor);
    query.append("kind", i.kind);
    query.append("range", i.range);
  }
  try {
    const data = await getJSON(`/api/histories?${query}`);
    items.forEach((item, n) => item.resolve(data.charts[n]));
  } catch (err) {
    for (const item of items) item.reject(err);
  }
}

// ---------------------------------------------------------------------------------------
// Charts (uPlot): min-max band, average line, thresholds as flat lines; on/off as a step.
const COLORS = {
  avg: "#0b57d0", band: "rgba(11, 87, 208, 0.18)", warn: "#b26a00", crit: "#c62828", step: "#c62828",
};
const THRESHOLDS = [
  ["crit_high", COLORS.crit], ["warn_high", COLORS.warn], ["warn_low", COLORS.warn], ["crit_low", COLORS.crit],
];

class Chart {
  constructor(box, sensor, kind, testid) {
    this.box = box;
    this.sensor = sensor;
    this.kind = kind;
    this.range = DEFAULT_RANGE;
    this.plot = null;
    this.history = null;
    this.live = null;
    this.drawn = false;
    this.xrange = null;
    this.shape = null;
    this.loading = null;
    this.lastLoad = 0;
    this.pendingTimer = null;
    this.boolean = BOOLEAN_KINDS.has(kind);
    this.buttons = el("div", { class: "ranges", role: "group" }, RANGES.map((r) =>
      el("button", {
        class: "range", type: "button", "data-range": r, "aria-pressed": String(r === this.range),
        "data-testid": `range-${sensor}-${r}`, text: t(`range_${r}`), onclick: () => this.setRange(r),
      })));
    this.area = el("div", { class: "chart", "data-testid": testid, "data-points": "0", "data-range": this.range, role: "img" });
    this.note = el("div", { class: "chart-note meta" });
    box.replaceChildren(this.buttons, this.area, this.note);
    // The width comes from the observer, so drawing never forces a layout of the page
    // (twenty charts each reading clientWidth after the last one's canvas went in).
    this.knownWidth = 0;
    this.resizer = new ResizeObserver((entries) => {
      this.knownWidth = Math.floor(entries[entries.length - 1].contentRect.width);
      this.fit();
    });
    this.resizer.observe(this.area);
    this.load();
  }

  setRange(range) {
    this.range = range;
    for (const b of this.buttons.children) b.setAttribute("aria-pressed", String(b.dataset.range === range));
    this.area.dataset.range = range;
    this.load();
  }

  relabel() {
    for (const b of this.buttons.children) b.textContent = t(`range_${b.dataset.range}`);
    this.load();
  }

  // The report's current value as the newest point: the history holds what the engine
  // stored (every history_interval), the report what the sensor said last.
  setLive(ts, value) {
    const v = typeof value === "boolean" ? Number(value) : value;
    const live = isNum(ts) && isNum(v) ? { ts, value: v } : null;
    const same = live && this.live ? live.ts === this.live.ts && live.value === this.live.value : live === this.live;
    if (same) return;
    this.live = live;
    if (this.history) drawSoon(this);
  }

  // The history again when a new bucket can have filled: a 7-day chart's buckets are 14
  // minutes wide, and the live point covers the newest value in between.
  refresh() {
    const step = this.history && isNum(this.history.step) ? this.history.step * 1000 : 0;
    if (Date.now() - this.lastLoad >= Math.max(REFRESH_MS, step) - 1000) this.load();
  }

  // the history again soon, at most every MIN_REDRAW_MS
  soon() {
    if (this.pendingTimer) return;
    const wait = Math.max(0, this.lastLoad + MIN_REDRAW_MS - Date.now());
    this.pendingTimer = setTimeout(() => { this.pendingTimer = null; this.load(); }, wait);
  }

  async load() {
    const token = {};
    this.loading = token;
    this.lastLoad = Date.now();
    if (!this.plot) this.note.textContent = t("chart_loading");
    let data;
    try {
      data = await fetchHistory(this.sensor, this.kind, this.range);
    } catch (err) {
      if (this.loading === token) this.note.textContent = t("chart_error", err.message);
      return;
    }
    if (this.loading !== token || !this.box.isConnected) return; // a newer range was asked for
    this.history = data;
    drawSoon(this);
  }

  draw(h) {
    const num = (arr) => (Array.isArray(arr) ? arr : []).map((v) => (isNum(v) ? v : typeof v === "boolean" ? Number(v) : null));
    const ts = Array.isArray(h.t) ? [...h.t] : [];
    const cols = { min: num(h.min), avg: num(h.avg), max: num(h.max) };
    let end = isNum(h.to) ? h.to : null;
    const live = this.live;
    if (live && (!ts.length || live.ts > ts[ts.length - 1]) && (!isNum(h.from) || live.ts >= h.from)) {
      ts.push(live.ts);
      for (const col of Object.values(cols)) col.push(live.value);
      if (end !== null) end = Math.max(end, live.ts);
    }
    this.xrange = isNum(h.from) && end !== null && end > h.from ? [h.from, end] : null;
    const series = [{}];
    const data = [ts];
    const bands = [];
    let points = 0;
    if (this.boolean) {
      const max = cols.max;
      data.push(max);
      series.push({
        label: this.kind, stroke: COLORS.step, width: 2, fill: "rgba(198, 40, 40, 0.15)",
        paths: uPlot.paths.stepped({ align: 1 }),
        // a leak that began a minute ago is a hair's width on a 24-hour chart: every "on"
        // bucket also gets a dot, so it cannot go unseen
        points: { show: false, size: 7, fill: COLORS.step, filter: onPoints },
      });
      points = max.filter((v) => v !== null).length;
    } else {
      const { min, avg, max } = cols;
      data.push(min, avg, max);
      series.push(
        { label: "min", stroke: COLORS.band, width: 1, points: { show: false } },
        // points: uPlot shows them by itself when there are few (one reading is no line)
        { label: t("legend_avg"), stroke: COLORS.avg, width: 2 },
        { label: "max", stroke: COLORS.band, width: 1, points: { show: false } });
      bands.push({ series: [3, 1], fill: COLORS.band });
      points = avg.filter((v) => v !== null).length;
      const limits = h.thresholds || {};
      for (const [key, color] of THRESHOLDS) {
        if (!isNum(limits[key])) continue;
        data.push(ts.map(() => limits[key]));
        series.push({ label: t(key), stroke: color, width: 1.5, dash: [6, 4], points: { show: false } });
      }
    }
    const shape = `${this.boolean}|${series.map((s) => s.label).join(",")}|${lang}`;
    if (this.plot && this.shape === shape) {
      this.plot.setData(data);
    } else {
      if (this.plot) this.plot.destroy();
      this.shape = shape;
      this.plot = new uPlot(this.options(series, bands, h.unit), data, this.area);
    }
    this.area.dataset.points = String(points);
    this.drawn = true;
    if (!chartsMarked && [...charts.values()].every((c) => c.drawn) && performance.mark) {
      chartsMarked = true;
      performance.mark("sentinel-charts-drawn"); // for bench/: every chart has its points
    }
    this.area.dataset.range = this.range;
    this.area.setAttribute("aria-label", `${this.sensor} ${t(`range_${this.range}`)}`);
    const unit = h.unit || "";
    const limitsNote = THRESHOLDS.filter(([k]) => h.thresholds && isNum(h.thresholds[k]))
      .map(([k]) => `${t(k)} ${h.thresholds[k]}${unit}`);
    this.restNote = points ? limitsNote.join(" · ") : t("chart_empty");
    this.unit = unit;
    this.showReading();
  }

  options(series, bands, unit) {
    const boolean = this.boolean;
    return {
      width: this.width(),
      height: 170,
      series,
      bands,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      // no legend (it would crowd a phone): the reading under the finger or pointer goes
      // where the thresholds are named
      hooks: { setCursor: [(u) => this.showReading(u.cursor.idx)] },
      scales: {
        // the whole range asked for, not just where readings are: a sensor that went
        // quiet an hour ago shows an empty hour, and every chart of a range lines up
        x: { time: true, range: (u, lo, hi) => this.xrange || [lo, hi] },
        ...(boolean ? { y: { range: [0, 1.05] } } : {}),
      },
      axes: [
        { values: (u, splits, ax, space, incr) => splits.map((s) => axisTime(s, incr)), size: 30 },
        boolean
          ? {
            size: 48,
            splits: () => [0, 1],
            values: (u, splits) => splits.map((v) => (v === 1 ? t("bool_yes") : t("bool_no"))),
          }
          : { size: 48, label: unit || undefined, labelSize: unit ? 16 : 0 },
      ],
    };
  }

  showReading(idx) {
    const data = this.plot && this.plot.data;
    if (idx === null || idx === undefined || !data || !isNum(data[0][idx])) {
      this.note.textContent = this.restNote || "";
      return;
    }
    const at = when(data[0][idx]);
    if (this.boolean) {
      const v = data[1][idx];
      this.note.textContent = `${at} · ${isNum(v) ? formatValue(this.kind, v, "") : "–"}`;
      return;
    }
    const [lo, avg, hi] = [data[1][idx], data[2][idx], data[3][idx]];
    const num = (v) => (isNum(v) ? v.toFixed(Math.abs(v) >= 100 ? 0 : 1) : "–");
    this.note.textContent = isNum(avg)
      ? `${at} · ${t("legend_avg")} ${num(avg)}${this.unit || ""} (${num(lo)}–${num(hi)})`
      : `${at} · –`;
  }

  width() {
    return Math.max(200, this.knownWidth || Math.floor(this.area.clientWidth || 300));
  }

  fit() {
    if (this.plot) this.plot.setSize({ width: this.width(), height: 170 });
  }

  destroy() {
    clearTimeout(this.pendingTimer);
    this.resizer.disconnect();
    if (this.plot) this.plot.destroy();
    this.loading = null;
  }
}

function onPoints(u, seriesIdx) {
  const values = u.data[seriesIdx];
  const on = [];
  for (let i = 0; i < values.length; i++) if (values[i] === 1) on.push(i);
  return on.length ? on : null;
}

// Charts whose data came in are drawn together in the next frame: one layout and paint
// for all of them instead of one per chart.
const toDraw = new Set();
function drawSoon(chart) {
  if (!toDraw.size) requestAnimationFrame(drawAll);
  toDraw.add(chart);
}
function drawAll() {
  const charts = [...toDraw];
  toDraw.clear();
  for (const chart of charts) if (chart.history && chart.box.isConnected) chart.draw(chart.history);
}

// Axis labels in local 24 h time: a day or more apart by date, else by clock.
function axisTime(seconds, increment) {
  const d = new Date(seconds * 1000);
  const p = (n) => String(n).padStart(2, "0");
  if (increment >= 86400) return `${p(d.getMonth() + 1)}/${p(d.getDate())}`;
  return `${p(d.getHours())}:${p(d.getMinutes())}`;
}

function dropChart(key) {
  const chart = charts.get(key);
  if (chart) chart.destroy();
  charts.delete(key);
}

setInterval(() => {
  if (document.hidden) return; // a phone in a pocket need not poll
  for (const chart of charts.values()) chart.refresh();
  loadTimeline();
}, REFRESH_MS);
// A page nobody has looked at for a while (a phone in a pocket, a tab behind others)
// lets go of its stream, so the server does not build a report a second for it; it is
// back, with fresh charts, as soon as it is looked at.
const PAUSE_AFTER_MS = 120000;
let pauseTimer = null;
let paused = false;
document.addEventListener("visibilitychange", () => {
  clearTimeout(pauseTimer);
  if (document.hidden) {
    pauseTimer = setTimeout(() => {
      if (!source) return;
      source.close();
      source = null;
      streamOpen = false;
      streamTried = false; // on return it says "connecting", not "lost"
      paused = true;
    }, PAUSE_AFTER_MS);
    return;
  }
  if (paused) {
    paused = false;
    showLive();
    connect();
    loadTimeline();
  }
  for (const chart of charts.values()) chart.soon();
});

// ---------------------------------------------------------------------------------------
// Replication.
function renderReplication() {
  const rows = Array.isArray(report.replication) ? report.replication : [];
  const container = $("replication");
  if (!rows.length) {
    for (const key of [...charts.keys()]) if (key.startsWith("replication:")) dropChart(key);
    fill(container, [el("p", { class: "empty", text: t("no_replication") })]);
    return;
  }
  container.querySelector(":scope > .empty")?.remove();
  const wanted = new Set(rows.map((r) => String(r.name)));
  for (const card of [...container.querySelectorAll(":scope > .card")]) {
    if (!wanted.has(card.dataset.name)) { dropChart(`replication:${card.dataset.name}`); card.remove(); }
  }
  for (const [i, row] of rows.entries()) {
    const name = String(row.name);
    const key = `replication:${name}`;
    let card = container.querySelector(`:scope > .card[data-name="${CSS.escape(name)}"]`);
    if (!card) {
      card = el("article", { class: "card", "data-testid": `replication-${name}`, "data-name": name },
        el("h3", { text: name }), el("dl", { class: "facts" }), el("div", { class: "chart-box" }));
      charts.set(key, new Chart(card.querySelector(".chart-box"), key, "replication_lag", `chart-${key}`));
    }
    if (container.children[i] !== card) container.insertBefore(card, container.children[i] || null);
    const guard = row.guard || {};
    const verify = row.last_verify;
    const keeper = row.keeper;
    const bad = row.guard_tripped || (verify && verify.ok === false) || row.consecutive_failures > 0 || (keeper && keeper.problem);
    card.dataset.state = bad ? "WARNING" : "OK";
    const facts = [
      [t("rpo"), isNum(row.rpo_seconds) ? duration(row.rpo_seconds) : "?"],
      [t("pending"), isNum(row.pending) ? String(row.pending) : "?"],
      [t("last_success"), when(row.last_success)],
      [t("last_verify"), !verify ? t("verify_none")
        : `${verify.ok ? t("verify_ok") : t("verify_mismatch", verify.differences)} · ${when(verify.ts)}`],
      [t("guard"), row.guard_tripped ? t("guard_tripped", guard.reason || "") : t("guard_ok")],
    ];
    if (row.consecutive_failures) facts.push([t("failures"), String(row.consecutive_failures)]);
    if (row.last_error) facts.push([t("last_error"), String(row.last_error)]);
    const quarantined = row.quarantine && row.quarantine.count;
    if (quarantined) facts.push([t("quarantine"), String(quarantined)]);
    if (keeper) {
      facts.push([t("keeper_safe", keeper.room || ""), when(keeper.safe_as_of)]);
      if (keeper.problem) facts.push([t("keeper_problem"), String(keeper.problem)]);
    }
    fill(card.querySelector(".facts"), facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    const chart = charts.get(key);
    if (chart) chart.setLive(report.generated, row.rpo_seconds);
  }
}

// ---------------------------------------------------------------------------------------
// Alert channels.
function renderChannels() {
  const alerts = report.alerts || {};
  const channels = Array.isArray(alerts.channels) ? alerts.channels : [];
  const outbox = [t("outbox", isNum(alerts.outbox_pending) ? alerts.outbox_pending : "?")];
  if (isNum(alerts.oldest_pending_age)) outbox.push(t("outbox_oldest", duration(alerts.oldest_pending_age)));
  const failing = alerts.all_channels_failing_since;
  fill($("outbox"), [
    el("span", { "data-testid": "outbox", text: outbox.join(" · ") }),
    failing ? el("strong", { class: "alert-text", text: ` ${t("all_failing", when(failing))}` }) : null,
  ]);
  fill($("channels"), channels.length ? channels.map((c) => {
    const bad = c.consecutive_failures > 0;
    const facts = [
      [t("last_success"), when(c.last_success)],
      [t("last_failure"), when(c.last_failure)],
      [t("failures"), String(c.consecutive_failures || 0)],
    ];
    if (c.last_error) facts.push([t("last_error"), String(c.last_error)]);
    if (isNum(c.sent)) facts.push([t("sent"), String(c.sent)]);
    return el("article", { class: "card", "data-testid": `channel-${c.key || c.name}`, "data-state": bad ? "WARNING" : "OK" },
      el("h3", { class: "channel-name", text: c.name || c.service || "?" }),
      el("dl", { class: "facts" }, facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
  }) : [el("p", { class: "empty", text: t("no_channels") })]);
}

function renderFooter() {
  $("footer").textContent = t("version", report.version || "?");
}

// ---------------------------------------------------------------------------------------
// Timeline: fetched when an alarm or silence changes (and after acting), not every report.
function alarmSignature(r) {
  if (!r) return "";
  const a = (r.alarms || []).map((x) => `${x.id}:${x.state}:${x.severity}:${x.acked_by}`);
  const s = (r.silences || []).map((x) => `${x.id}:${x.until}`);
  return `${a.join(",")}|${s.join(",")}`;
}

let timelineToken = null;
async function loadTimeline() {
  const token = {};
  timelineToken = token;
  let data;
  try {
    data = await getJSON("/api/timeline?limit=100");
  } catch (err) {
    if (timelineToken === token && err.status !== 401) {
      fill($("timeline"), [el("li", { class: "empty", text: t("timeline_error", err.message) })]);
    }
    return;
  }
  if (timelineToken !== token) return;
  const items = Array.isArray(data.items) ? data.items : [];
  fill($("timeline"), items.length ? items.map(timelineRow) : [el("li", { class: "empty", text: t("no_timeline") })]);
}

function timelineRow(item) {
  let change;
  if (item.type === "action") {
    const ckey = `cmd_${item.command}`;
    change = [has(ckey) ? t(ckey) : item.command, item.result].filter(Boolean).join(": ");
  } else {
    const from = has(`alarm_${item.from}`) ? t(`alarm_${item.from}`) : item.from;
    const to = has(`alarm_${item.to}`) ? t(`alarm_${item.to}`) : item.to;
    change = `${from || "–"} → ${to || "–"}`;
  }
  const who = item.by && item.address ? t("from_address", item.by, item.address) : item.by || item.address || "";
  const sev = item.severity === "critical" ? "CRITICAL" : item.severity === "warning" ? "WARNING" : null;
  return el("li", { class: "tl-row", "data-type": item.type || "", "data-alarm": item.alarm_id || "" },
    el("time", { class: "tl-time", text: when(item.ts) }),
    // an action names what it acted on (an alarm id, a silence, a sensor) as its target
    el("span", { class: "tl-alarm", text: [item.alarm_id || item.target, item.location || item.sensor].filter(Boolean).join(" ") }),
    el("span", { class: "tl-change", text: change }),
    sev ? el("span", { class: "badge", "data-state": sev, text: t(`sev_${item.severity}`) }) : el("span"),
    el("span", { class: "tl-who", text: who }),
    item.reason ? el("span", { class: "tl-reason meta", text: item.reason }) : null);
}

// ---------------------------------------------------------------------------------------
// Start.
// The stream, the report and the timeline are asked for at once; the stream's reports are
// drawn once /api/status has said which language and who is logged in (its reports do
// not carry that), so an English page never flashes Korean first.
let statusKnown = false;
(async () => {
  translateStatic();
  showLive();
  connect();
  loadTimeline();
  await loadStatus();
  statusKnown = true;
})();
