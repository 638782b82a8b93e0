// Speech: voices with their samples; POST /v1/audio/speech played while it streams in
// (MediaSource for mp3 where the browser has it, otherwise the whole body as one blob).
import { api, blobUrl, errorOf, authHeaders } from "./api.js";

const $ = (id) => document.getElementById(id);
let voices = [];
let loaded = false;
let speechUrl = null;
let abort = null;

export function initSpeech() {
  $("speech-form").addEventListener("submit", (e) => { e.preventDefault(); speak(); });
  $("voice-sample").addEventListener("click", playSample);
  $("voice").addEventListener("change", describeVoice);
}

export async function loadVoices() {
  if (loaded) return;
  try {
    const list = await api("/v1/voices");
    voices = list.voices;
    $("voice").replaceChildren(...voices.map((v) => {
      const opt = document.createElement("option");
      opt.value = v.id;
      opt.textContent = `${v.name || v.id} (${v.language || "?"}, ${v.quality || "?"})`;
      opt.selected = v.id === list.default;
      return opt;
    }));
    loaded = true;
    describeVoice();
  } catch (err) {
    $("speech-error").textContent = err.message;
  }
}

function describeVoice() {
  const v = voices.find((x) => x.id === $("voice").value);
  $("voice-info").textContent = v ? `${v.id} · ${v.sample_rate} Hz · ${v.num_speakers} speaker(s)`
    + (v.license ? ` · license ${v.license}` : "") : "";
}

async function playSample() {
  const id = $("voice").value;
  if (!id) return;
  $("speech-error").textContent = "";
  try {
    setAudio(await blobUrl(`/v1/voices/${encodeURIComponent(id)}/sample`));
    $("speech-status").textContent = `Sample of ${id}`;
    await $("speech-audio").play().catch(() => {});
  } catch (err) {
    $("speech-error").textContent = err.message;
  }
}

function setAudio(url) {
  if (speechUrl) URL.revokeObjectURL(speechUrl);
  speechUrl = url;
  $("speech-audio").src = url;
}

const MIME = { mp3: "audio/mpeg", wav: "audio/wav", flac: "audio/flac", opus: "audio/ogg" };

async function speak() {
  const text = $("speech-text").value.trim();
  const format = $("speech-format").value;
  $("speech-error").textContent = "";
  $("speech-download").hidden = true;
  if (!text) { $("speech-error").textContent = "Please write something to say."; return; }
  abort?.abort();
  abort = new AbortController();
  const body = { model: "piper", input: text, voice: $("voice").value || undefined, response_format: format,
    speed: Number($("speech-speed").value || 1) };
  const started = performance.now();
  $("speak").disabled = true;
  $("speech-status").textContent = "Speaking…";
  try {
    const resp = await fetch("/v1/audio/speech", { method: "POST", body: JSON.stringify(body), signal: abort.signal,
      headers: authHeaders({ "Content-Type": "application/json" }) });
    if (!resp.ok) throw await errorOf(resp);
    const streaming = format === "mp3" && window.MediaSource && MediaSource.isTypeSupported("audio/mpeg");
    const chunks = streaming ? await streamInto(resp, started) : await collect(resp, started);
    const blob = new Blob(chunks, { type: MIME[format] });
    const link = $("speech-download");
    if (!streaming) setAudio(URL.createObjectURL(blob));
    if (!streaming) $("speech-audio").play().catch(() => {});
    link.href = URL.createObjectURL(blob);
    link.download = `speech.${format === "opus" ? "ogg" : format}`;
    link.hidden = false;
    $("speech-status").textContent += ` — done: ${(blob.size / 1024).toFixed(0)} KB in ${Math.round(performance.now() - started)} ms`;
    $("speech-status").dataset.done = "1";
  } catch (err) {
    if (err.name !== "AbortError") $("speech-error").textContent = err.status === undefined
      ? "The server cannot be reached. Is Sound Box running?" : err.message;
  } finally {
    $("speak").disabled = false;
  }
}

async function collect(resp, started) {
  const reader = resp.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    $("speech-status").textContent = `Receiving… ${(size / 1024).toFixed(0)} KB`;
  }
  $("speech-status").textContent = `First byte after ${Math.round(performance.now() - started)} ms`;
  return chunks;
}

// Feed the mp3 stream into a MediaSource and start playing after the first sentence arrives.
async function streamInto(resp, started) {
  const media = new MediaSource();
  setAudio(URL.createObjectURL(media));
  const audio = $("speech-audio");
  await new Promise((resolve) => media.addEventListener("sourceopen", resolve, { once: true }));
  const buffer = media.addSourceBuffer("audio/mpeg");
  const append = (chunk) => new Promise((resolve, reject) => {
    buffer.addEventListener("updateend", resolve, { once: true });
    buffer.addEventListener("error", reject, { once: true });
    buffer.appendBuffer(chunk);
  });
  const reader = resp.body.getReader();
  const chunks = [];
  let first = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    await append(value);
    if (first === null) {
      first = Math.round(performance.now() - started);
      $("speech-status").textContent = `Playing while streaming: first audio after ${first} ms`;
      audio.dataset.streamed = "1";
      audio.play().catch(() => {});
    }
  }
  if (media.readyState === "open") media.endOfStream();
  return chunks;
}
