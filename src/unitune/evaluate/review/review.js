"use strict";
(function () {
  const el = (id) => document.getElementById(id);
  const LABELS = {left: "A is better", right: "B is better", tie: "Tie", both_bad: "Both bad"};
  let item = null;  // the example on screen; null on the end screen
  let total = 0;
  let busy = false;
  let referenceLoaded = false;

  async function api(path, body) {
    const options = {cache: "no-store", headers: {}};
    if (body !== undefined) {
      options.method = "POST";
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(response.status + " " + detail);
    }
    return response.json();
  }

  function say(text) { el("status").textContent = text; }

  function showProgress(progress) {
    total = progress.total;
    el("progress-bar").max = Math.max(progress.total, 1);
    el("progress-bar").value = progress.rated;
    el("progress-text").textContent = progress.rated + " / " + progress.total + " rated";
  }

  function showPrompt(messages) {
    const box = el("prompt");
    box.replaceChildren();
    for (const message of messages) {
      const row = document.createElement("div");
      row.className = "message";
      const role = document.createElement("div");
      role.className = "role";
      role.textContent = message.role;
      const text = document.createElement("div");
      text.className = "text";
      text.textContent = message.content;
      row.append(role, text);
      box.append(row);
    }
  }

  function showRating(rating) {
    el("item-rating").textContent = rating ? "Rated: " + LABELS[rating] : "Not rated yet";
    for (const choice of Object.keys(LABELS)) {
      el("rate-" + choice).classList.toggle("chosen", choice === rating);
    }
  }

  function showItem(data) {
    item = data;
    referenceLoaded = false;
    el("reference").textContent = "";
    el("reference-box").hidden = true;
    const where = data.line === null ? "" : ", line " + data.line;
    el("item-title").textContent =
      "Example " + (data.position + 1) + " of " + data.total + " (#" + data.index + where + ")";
    showPrompt(data.prompt);
    el("answer-left").textContent = data.answers.left;
    el("answer-right").textContent = data.answers.right;
    showRating(data.rating);
    showProgress(data.progress);
    el("item").dataset.position = String(data.position);
    el("done").hidden = true;
    el("item").hidden = false;
    // The position in the address: a reload shows this same example.
    history.replaceState(null, "", "#" + data.position);
  }

  function showDone(data) {
    item = null;
    showProgress(data.progress);
    const s = data.summary;
    const ties = s.ties + (s.ties === 1 ? " tie, " : " ties, ");
    el("done-summary").textContent = "All " + s.total + " examples rated (" + ties + s.both_bad + " both bad).";
    el("item").hidden = true;
    el("done").hidden = false;
    history.replaceState(null, "", "#done");
  }

  async function load(position) { showItem(await api("api/items/" + position)); }

  async function loadNext(after) {
    const data = await api("api/next" + (after === null ? "" : "?after=" + after));
    if (data.position === null) showDone(data); else await load(data.position);
  }

  async function rate(choice) {
    if (item === null) return;
    const position = item.position;
    const saved = await api("api/items/" + position + "/rating", {choice: choice});
    showProgress(saved.progress);
    say("Saved: " + LABELS[choice] + " for example " + (position + 1) + ".");
    await loadNext(position);
  }

  async function toggleReference() {
    if (item === null) return;
    const box = el("reference-box");
    if (!referenceLoaded) {
      el("reference").textContent = (await api("api/items/" + item.position + "/reference")).reference;
      referenceLoaded = true;
    }
    box.hidden = !box.hidden;
  }

  async function previous() {
    if (item === null) { if (total > 0) await load(total - 1); return; }
    if (item.position > 0) await load(item.position - 1);
  }

  async function next() {
    if (item === null) return;
    if (item.position + 1 < item.total) await load(item.position + 1); else await loadNext(item.position);
  }

  // One action at a time: a second key while a rating is being saved would rate the wrong example.
  function run(action) {
    if (busy) return;
    busy = true;
    document.body.dataset.busy = "1";
    action()
      .catch((error) => say("Error: " + error.message + ". Ratings already saved are safe; try again."))
      .finally(() => { busy = false; document.body.dataset.busy = "0"; });
  }

  const KEYS = new Map([
    ["a", () => rate("left")], ["b", () => rate("right")], ["t", () => rate("tie")],
    ["x", () => rate("both_bad")], ["r", toggleReference],
    ["k", previous], ["ArrowLeft", previous], ["j", next], ["ArrowRight", next],
  ]);
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;  // the browser's own shortcuts
    const action = KEYS.get(event.key.length === 1 ? event.key.toLowerCase() : event.key);
    if (action === undefined) return;
    event.preventDefault();
    if (event.repeat) return;  // a held key must not rate one example after another
    run(action);
  });
  for (const choice of Object.keys(LABELS)) {
    el("rate-" + choice).addEventListener("click", () => run(() => rate(choice)));
  }
  el("toggle-reference").addEventListener("click", () => run(toggleReference));
  el("prev").addEventListener("click", () => run(previous));
  el("next").addEventListener("click", () => run(next));
  el("back").addEventListener("click", () => run(previous));

  const start = /^#(\d+)$/.exec(location.hash);
  run(() => (start ? load(Number(start[1])).catch(() => loadNext(null)) : loadNext(null)));
})();
