// The studio: the API key field, the three pages (Generate, Speech, Library) by URL hash.
import { getKey, setKey } from "./api.js";
import { initGenerate } from "./generate.js";
import { initLibrary, openLibrary } from "./library.js";
import { initSpeech, loadVoices } from "./speech.js";

const $ = (id) => document.getElementById(id);
const PAGES = ["generate", "speech", "library"];

function keyState() {
  $("key-state").textContent = getKey() ? "key saved in this browser" : "no key: anonymous access";
}

function route() {
  const page = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : "generate";
  for (const name of PAGES) {
    $(name).hidden = name !== page;
    const link = $(`nav-${name}`);
    if (name === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (page === "speech") loadVoices();
  if (page === "library") openLibrary();
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · Sound Box studio`;
}

$("api-key").value = getKey();
keyState();
$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setKey($("api-key").value.trim());
  keyState();
  location.reload(); // every page starts again with the new key
});
window.addEventListener("hashchange", route);
initGenerate();
initSpeech();
initLibrary();
route();
document.body.dataset.ready = "1";
