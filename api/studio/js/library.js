// Library: search your sounds or the public library; play, rename, tag, share, delete.
import { api, ApiError, blobUrl, el, fmtSeconds } from "./api.js";

const $ = (id) => document.getElementById(id);
let nextCursor = null;
let categoriesLoaded = false;
let playingUrl = null;

export function initLibrary() {
  $("lib-form").addEventListener("submit", (e) => { e.preventDefault(); search(false); });
  $("lib-more").addEventListener("click", () => search(true));
}

export async function openLibrary() {
  if (!categoriesLoaded) loadCategories();
  if (!$("lib-results").children.length) search(false);
}

async function loadCategories() {
  try {
    const { categories } = await api("/v1/categories");
    categoriesLoaded = true;
    const groups = new Map();
    for (const c of categories) {
      if (!groups.has(c.group)) groups.set(c.group, []);
      groups.get(c.group).push(c);
    }
    const select = $("lib-category");
    for (const [group, items] of groups) {
      const og = el("optgroup", { label: group || "other" });
      for (const c of items) og.append(el("option", { value: c.name }, `${c.name} (${c.count})`));
      select.append(og);
    }
  } catch (err) {
    if (err instanceof ApiError && err.missing) { $("lib-category").disabled = true; categoriesLoaded = true; }
  }
}

function query(cursor) {
  const p = new URLSearchParams();
  const add = (name, value) => { if (value !== "" && value !== null && value !== undefined) p.set(name, value); };
  add("q", $("lib-q").value.trim());
  add("model", $("lib-model").value);
  add("category", $("lib-category").value);
  add("tag", $("lib-tag").value.trim());
  add("min_duration", $("lib-min").value);
  add("max_duration", $("lib-max").value);
  if ($("lib-loop").checked) p.set("loopable", "true");
  add("sort", $("lib-sort").value);
  p.set("limit", "20");
  add("cursor", cursor);
  return p.toString();
}

async function search(more) {
  $("lib-error").textContent = "";
  const scope = $("lib-scope").value === "public" ? "/v1/library" : "/v1/sounds";
  $("lib-status").textContent = "Searching…";
  try {
    const page = await api(`${scope}?${query(more ? nextCursor : null)}`);
    nextCursor = page.next_cursor;
    const items = page.items.map((s) => card(s, scope === "/v1/sounds"));
    if (more) $("lib-results").append(...items);
    else $("lib-results").replaceChildren(...items);
    const count = $("lib-results").children.length;
    $("lib-status").textContent = count ? `${count} sound${count === 1 ? "" : "s"}${nextCursor ? " (more available)" : ""}`
      : "No sounds match.";
    $("lib-more").hidden = !nextCursor;
  } catch (err) {
    $("lib-status").textContent = "";
    if (err instanceof ApiError && err.missing) {
      $("lib-error").textContent = "This server has no library search yet: here are the results of your recent jobs "
        + "(no search, filters or editing).";
      recentResults();
    } else {
      $("lib-error").textContent = err.message;
    }
  }
}

// Without the library routes: the sounds of the caller's recent succeeded jobs, to play.
async function recentResults() {
  try {
    const page = await api("/v1/jobs?status=succeeded&limit=20");
    const sounds = page.items.filter((j) => j.result).map((j) => ({
      id: j.result.sound_id, prompt: j.params?.prompt || "", model: j.model, duration: j.result.duration,
      loopable: !!j.params?.loopable, quality: j.result.quality, created_at: j.finished_at || j.created_at }));
    $("lib-results").replaceChildren(...sounds.map((s) => card(s, false)));
    $("lib-more").hidden = true;
    $("lib-status").textContent = `${sounds.length} recent sound${sounds.length === 1 ? "" : "s"}`;
  } catch (err) {
    $("lib-status").textContent = err.message;
  }
}

function card(sound, mine) {
  const title = sound.title || sound.prompt;
  const li = el("li", { "data-sound-id": sound.id });
  const heading = el("div", { class: "title" }, title);
  const meta = el("div", { class: "meta" }, `${sound.model} · ${fmtSeconds(sound.duration)}`,
    sound.loopable ? " · loops" : "", ` · quality ${Number(sound.quality?.score ?? 0).toFixed(0)}`,
    sound.visibility ? ` · ${sound.visibility}` : "", ` · ${new Date(sound.created_at).toLocaleString()}`);
  const chips = el("ul", { class: "chips", "aria-label": "categories and tags" },
    (sound.categories || []).map((c) => el("li", {}, c.name)),
    (sound.tags || []).map((t) => el("li", { class: "tag" }, `#${t}`)));
  const play = el("button", { type: "button", class: "play", "aria-label": `Play ${title}`, onclick: () => playSound(sound.id) }, "▶ Play");
  li.append(heading, meta, chips, el("div", { class: "actions" }, play));
  if (mine) li.append(editor(sound, li));
  return li;
}

function editor(sound, li) {
  const uid = sound.id.slice(0, 8);
  const title = el("input", { id: `title-${uid}`, type: "text", value: sound.title || "", placeholder: sound.prompt });
  const tags = el("input", { id: `tags-${uid}`, type: "text", value: (sound.tags || []).join(", "), placeholder: "rain, calm" });
  const vis = el("select", { id: `vis-${uid}` }, ["private", "unlisted", "public"].map((v) =>
    el("option", { value: v, selected: (sound.visibility || "private") === v }, v)));
  const status = el("span", { class: "muted small", role: "status" });
  const save = el("button", { type: "button", class: "save", onclick: async () => {
    status.textContent = "Saving…";
    try {
      const body = { title: title.value.trim() || null,
        tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean), visibility: vis.value };
      const updated = await api(`/v1/sounds/${sound.id}`, { method: "PATCH", body });
      li.replaceWith(card(updated, true));
    } catch (err) {
      status.textContent = err instanceof ApiError && err.missing ? "Editing is not available on this server." : err.message;
    }
  } }, "Save");
  const del = el("button", { type: "button", class: "danger delete", onclick: async () => {
    if (!window.confirm(`Delete “${sound.title || sound.prompt}”? This cannot be undone.`)) return;
    try {
      await api(`/v1/sounds/${sound.id}`, { method: "DELETE" });
      li.remove();
    } catch (err) {
      status.textContent = err.message;
    }
  } }, "Delete");
  const field = (label, input) => el("div", { class: "field" }, el("label", { for: input.id }, label), input);
  return el("div", { class: "edit-row" }, field("Title", title), field("Tags (comma-separated)", tags),
    field("Visibility", vis), save, del, status);
}

async function playSound(id) {
  $("lib-error").textContent = "";
  try {
    const url = await blobUrl(`/v1/sounds/${id}/audio?format=wav`);
    if (playingUrl) URL.revokeObjectURL(playingUrl);
    playingUrl = url;
    const audio = $("lib-audio");
    audio.hidden = false;
    audio.dataset.soundId = id;
    audio.src = url;
    await audio.play().catch(() => {});
  } catch (err) {
    $("lib-error").textContent = err.message;
  }
}
