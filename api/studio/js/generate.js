// Generate: prompt guidance as you type, submit, live progress over SSE, the result.
import { api, ApiError, blobUrl, download, el, events, fmtSeconds } from "./api.js";

const $ = (id) => document.getElementById(id);
const FORMATS = ["wav", "flac", "mp3", "ogg", "opus"];
let checkTimer = null;
let checkSeq = 0;
let checkAvailable = true;
let current = null; // {id, abort}
let resultUrls = [];

export function initGenerate() {
  $("prompt").addEventListener("input", scheduleCheck);
  $("model").addEventListener("change", scheduleCheck);
  $("gen-form").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  $("gen-cancel").addEventListener("click", cancel);
  loadModels();
}

async function loadModels() {
  try {
    const { models } = await api("/v1/models");
    for (const opt of $("model").options) {
      const m = models.find((x) => x.id === opt.value);
      if (m) opt.textContent = `${m.id} (≤ ${m.max_duration} s)${m.state === "missing" ? ", missing" : ""}`;
    }
  } catch { /* the key may be missing yet: labels stay plain */ }
  try { // does this server give prompt guidance (and the "auto" model)?
    await api("/v1/prompts/check", { method: "POST", body: { prompt: "soft rain on a window", model: "auto" } });
  } catch (err) {
    if (err instanceof ApiError && err.missing) dropGuidance();
  }
}

function dropGuidance() {
  checkAvailable = false; // this server has no prompt guidance (and no "auto" model)
  $("model").querySelector('option[value="auto"]')?.remove();
  $("prompt-advice").replaceChildren();
}

function scheduleCheck() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(checkPrompt, 350);
}

async function checkPrompt() {
  const prompt = $("prompt").value.trim();
  const box = $("prompt-advice");
  const seq = ++checkSeq;
  if (!checkAvailable || prompt.length < 3) { box.replaceChildren(); return; }
  try {
    const advice = await api("/v1/prompts/check", { method: "POST", body: { prompt, model: $("model").value } });
    if (seq === checkSeq) renderAdvice(advice);
  } catch (err) {
    if (err instanceof ApiError && err.missing) {
      dropGuidance();
    } else if (seq === checkSeq) {
      box.replaceChildren(el("p", { class: "small" }, err.message));
    }
  }
}

function renderAdvice(advice) {
  const box = $("prompt-advice");
  const items = [];
  for (const w of advice.warnings || []) {
    items.push(el("li", { class: "warning", "data-code": w.code }, el("strong", {}, w.message), " ",
      w.explanation || "", w.example ? el("span", { class: "example" }, ` e.g. “${w.example}”`) : null));
  }
  for (const s of advice.suggestions || []) {
    items.push(el("li", { class: "suggestion", "data-missing": s.missing }, s.message,
      s.example ? el("span", { class: "example" }, ` e.g. “${s.example}”`) : null));
  }
  const children = [];
  if (advice.model) children.push(el("p", { class: "small", id: "prompt-model" }, `Model: ${advice.model.chosen} — ${advice.model.reason}`));
  if (items.length) children.unshift(el("p", { class: "small" }, "Prompt tips:"), el("ul", { id: "prompt-warnings" }, items));
  box.replaceChildren(...children);
}

function params() {
  const body = { model: $("model").value, prompt: $("prompt").value.trim(), loopable: $("loop").checked,
    priority: Number($("priority").value || 5) };
  if ($("duration").value) body.duration = Number($("duration").value);
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  return body;
}

async function submit() {
  $("gen-error").textContent = "";
  const body = params();
  if (body.prompt.length < 3) {
    $("gen-error").textContent = "Please write a prompt of at least 3 characters.";
    $("prompt").focus();
    return;
  }
  current?.abort.abort();
  $("gen-submit").disabled = true;
  try {
    const job = await api("/v1/generations", { method: "POST", body });
    follow(job);
  } catch (err) {
    $("gen-error").textContent = err.message;
  } finally {
    $("gen-submit").disabled = false;
  }
}

async function follow(job) {
  const abort = new AbortController();
  current = { id: job.id, abort };
  $("job-panel").hidden = false;
  $("result").hidden = true;
  $("job-id").textContent = job.id;
  $("job-log").replaceChildren();
  $("gen-cancel").hidden = false;
  show(job, null);
  queuePosition(job);
  try {
    for await (const ev of events(`/v1/jobs/${job.id}/events`, { signal: abort.signal })) {
      const data = ev.data?.data;
      if (!data) continue;
      show(data, ev.type, ev.data.attempt);
      if (ev.type === "job.succeeded") await showResult(data);
    }
  } catch (err) {
    if (err.name !== "AbortError") $("gen-error").textContent = err.message;
  } finally {
    if (current?.id === job.id) $("gen-cancel").hidden = true;
  }
  if (current?.id === job.id && !abort.signal.aborted) { // the stream ended: the job row is the truth
    try {
      const last = await api(`/v1/jobs/${job.id}`);
      show(last, null);
      if (last.status === "succeeded" && $("result").hidden) await showResult(last);
    } catch { /* keep what we showed */ }
  }
}

async function queuePosition(job) {
  // The API tells no global queue position; this counts the caller's own older queued jobs.
  try {
    const page = await api("/v1/jobs?status=queued&limit=100");
    const ahead = page.items.filter((j) => j.id !== job.id && j.created_at <= job.created_at).length;
    if ($("job-status").textContent === "queued") {
      $("job-queue").textContent = ahead ? `${ahead} of your jobs ahead in the queue` : "next of your jobs in the queue";
    }
  } catch { /* informational only */ }
}

function show(job, type, attempt) {
  const status = $("job-status");
  status.textContent = job.status;
  status.className = `badge ${job.status}`;
  if (job.status !== "queued") $("job-queue").textContent = job.status === "running" ? `attempt ${job.attempts || 1}` : "";
  const progress = Number(job.progress || 0);
  $("job-progress").value = progress;
  $("job-progress").dataset.value = progress;
  $("job-progress-text").textContent = `${Math.round(progress * 100)} %`;
  let note = `${type}: ${job.status} ${Math.round(progress * 100)} %`;
  if (attempt) note = `attempt ${attempt.attempt}: score ${Number(attempt.score).toFixed(0)}${attempt.is_good ? "" : " (retrying)"}`;
  if (job.error) note += ` — ${job.error}`;
  if (type) $("job-log").append(el("li", {}, note));
  if (job.status === "failed" || job.status === "canceled") {
    $("gen-error").textContent = job.error ? `Job ${job.status}: ${job.error}` : `Job ${job.status}.`;
  }
}

async function cancel() {
  if (!current) return;
  try {
    await api(`/v1/jobs/${current.id}/cancel`, { method: "POST" });
  } catch (err) {
    $("gen-error").textContent = err.message;
  }
}

async function showResult(job) {
  const result = job.result;
  if (!result) return;
  resultUrls.forEach((u) => URL.revokeObjectURL(u));
  resultUrls = [];
  const id = result.sound_id;
  const q = result.quality || {};
  $("result").hidden = false;
  $("result").dataset.soundId = id;
  $("result-summary").textContent = `${fmtSeconds(result.duration)} at ${result.sample_rate} Hz · ${job.model} · `
    + `“${job.params?.prompt ?? ""}”`;
  const audioUrl = await blobUrl(`/v1/sounds/${id}/audio?format=wav`);
  resultUrls.push(audioUrl);
  $("result-audio").src = audioUrl;
  blobUrl(`/v1/sounds/${id}/spectrogram.png`).then((u) => { resultUrls.push(u); $("result-spectrogram").src = u; })
    .catch(() => { $("result-spectrogram").alt = "spectrogram unavailable"; });
  drawWaveform(id);
  const issues = (q.issues || []).map((i) => el("li", {}, `[${i.severity}] ${i.code}: ${i.message}`));
  $("result-quality").replaceChildren(
    el("p", { id: "quality-score" }, `Score ${Number(q.score ?? 0).toFixed(0)} / 100 — `,
      q.is_good ? "passed the quality check" : "did not pass the quality check",
      q.accepted_anyway ? " (no attempt passed; the best one was kept)" : ""),
    issues.length ? el("ul", { class: "issues" }, issues) : el("p", { class: "muted small" }, "No issues found."),
    q.note ? el("p", { class: "muted small" }, q.note) : null);
  const rows = (job.attempt_history || []).map((a) => el("tr", { class: a.kept ? "kept" : "" },
    el("td", {}, a.attempt), el("td", {}, a.seed ?? "–"), el("td", {}, Number(a.score).toFixed(0)),
    el("td", {}, (a.issues || []).map((i) => i.code).join(", ") || "none"),
    el("td", {}, a.kept ? "✓ kept" : "")));
  $("result-attempts").tBodies[0].replaceChildren(...rows);
  $("result-downloads").replaceChildren(...FORMATS.map((fmt) => el("button", {
    type: "button", class: "dl", "data-format": fmt, "aria-label": `Download ${fmt.toUpperCase()}`,
    onclick: async (e) => {
      e.target.disabled = true;
      try { await download(`/v1/sounds/${id}/audio?format=${fmt}`, `soundbox-${id.slice(0, 8)}.${fmt}`); }
      catch (err) { $("gen-error").textContent = err.message; }
      finally { e.target.disabled = false; }
    },
  }, fmt.toUpperCase())));
}

export async function drawWaveform(soundId, canvas = $("waveform")) {
  const width = canvas.width;
  const height = canvas.height;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#1a1a2e";
  ctx.fillRect(0, 0, width, height);
  let data;
  try {
    data = await api(`/v1/sounds/${soundId}/peaks?points=${width}`);
  } catch {
    return;
  }
  const grad = ctx.createLinearGradient(0, 0, 0, height);
  grad.addColorStop(0, "#fcfdbf");
  grad.addColorStop(0.35, "#fc8961");
  grad.addColorStop(0.5, "#b73779");
  grad.addColorStop(0.65, "#fc8961");
  grad.addColorStop(1, "#fcfdbf");
  ctx.fillStyle = grad;
  const mid = height / 2;
  const step = width / data.peaks.length;
  data.peaks.forEach(([lo, hi], i) => {
    const top = mid - Math.max(0, hi) * mid;
    const bottom = mid - Math.min(0, lo) * mid;
    ctx.fillRect(i * step, top, Math.max(1, step), Math.max(1, bottom - top));
  });
  canvas.dataset.points = data.peaks.length;
}
