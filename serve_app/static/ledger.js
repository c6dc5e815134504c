// The forecast on screen, checked in this browser against the public log: its leaf is the SHA-256
// of the canonical JSON the log holds (whose closes are the ones shown), the RFC 9162 inclusion
// proof leads from that leaf to the root of a checkpoint, and the checkpoint's Ed25519 signature
// verifies under the log's key (WebCrypto; where a browser lacks Ed25519 the page says so).
"use strict";

const logCheck = (() => {
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const join = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const sha256 = async (data) => new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  const node = (left, right) => sha256(join(Uint8Array.of(1), left, right));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const utf8 = (text) => new TextEncoder().encode(text);

  // RFC 9162 section 2.1.3.2: the root an inclusion path implies
  async function rootOf(index, size, leaf, path) {
    let fn = index, sn = size - 1, r = leaf;
    for (const p of path) {
      if (sn === 0) return null;
      if ((fn & 1) === 1 || fn === sn) {
        r = await node(p, r);
        while ((fn & 1) === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await node(r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // a C2SP signed note: its text, and whether the log key's signature verifies (null: no Ed25519 here)
  async function signedBy(note, vkey) {
    const first = vkey.indexOf("+"), second = vkey.indexOf("+", first + 1);  // a name has no "+"; base64 may
    const name = vkey.slice(0, first), keyId = vkey.slice(first + 1, second), key = vkey.slice(second + 1);
    const cut = note.indexOf("\n\n");
    const text = note.slice(0, cut + 1);
    const raw = bytes(key);
    let publicKey;
    try {
      publicKey = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
    } catch (e) {
      return { text, ok: null };
    }
    for (const line of note.slice(cut + 2).split("\n")) {
      const [dash, who, sig] = line.split(" ");
      if (dash !== "\u2014" || who !== name || !sig) continue;
      const blob = bytes(sig);
      const id = Array.from(blob.slice(0, 4), (b) => b.toString(16).padStart(2, "0")).join("");
      if (id !== keyId || blob.length !== 68) continue;
      if (await crypto.subtle.verify({ name: "Ed25519" }, publicKey, blob.slice(4), utf8(text))) return { text, ok: true };
    }
    return { text, ok: false };
  }

  async function get(path, asText) {
    const r = await fetch(path, { credentials: "same-origin" });
    if (!r.ok) throw new Error(`${path} answered ${r.status}`);
    return asText ? r.text() : r.json();
  }

  // what the check found: {state: verified | unsigned | pending | failed | absent, text}
  async function check(p) {
    if (!p.ledger) {
      return { state: "absent", text: p.replay ? "A replay of the past: never entered in the public log."
                                              : "This forecast is not in the public log." };
    }
    const seq = p.ledger.index + 1;
    const leaf = bytes(p.ledger.leaf_hash);
    const entry = await get(`/api/ledger/${seq}`);
    if (!entry.canonical_json || !same(await sha256(join(Uint8Array.of(0), utf8(entry.canonical_json))), leaf)) {
      return { state: "failed", text: `Log entry #${seq} does not hash to this forecast's leaf.` };
    }
    const logged = JSON.parse(entry.canonical_json).steps.map((s) => s.close);
    if (p.steps.some((s, i) => s.close !== logged[i])) {
      return { state: "failed", text: `Log entry #${seq} holds other closes than the ones shown.` };
    }
    const key = await get("/api/ledger/key");
    const note = await signedBy(await get("/api/ledger/checkpoint", true), key.vkey);
    const [, size, root] = note.text.split("\n");
    if (note.ok === false) return { state: "failed", text: "The log's checkpoint is not signed by its key." };
    if (Number(size) <= p.ledger.index) {
      return { state: "pending", text: `Entered in the public log as #${seq}; the next checkpoint will hold it.` };
    }
    const proof = await get(`/api/ledger/proof/inclusion?index=${p.ledger.index}&tree_size=${size}`);
    const implied = await rootOf(p.ledger.index, Number(size), leaf, proof.hashes.map(bytes));
    if (implied === null || !same(implied, bytes(root))) {
      return { state: "failed", text: `The log's proof does not lead from entry #${seq} to its checkpoint of size ${size}.` };
    }
    if (note.ok === null) {
      return { state: "unsigned", text: `In the public log at #${seq}, checkpoint of size ${size}; this browser cannot ` +
        `check Ed25519 signatures, so the checkpoint's signature by ${key.name} was not checked here.` };
    }
    return { state: "verified", text: `In the public log at #${seq}, checkpoint of size ${size}, signed by ${key.name} ` +
      "(proof and signature checked in this browser).", vkey: key.vkey };
  }

  // check `p` and show the outcome in `el`, trying again while the next checkpoint is due
  async function show(p, el, stillShown) {
    el.hidden = false;
    el.dataset.state = "checking";
    el.textContent = "Checking this forecast in the public log...";
    for (let attempt = 0; attempt < 12; attempt++) {
      let found;
      try {
        found = await check(p);
      } catch (e) {
        found = { state: "failed", text: `The public log could not be checked: ${e.message}.` };
      }
      if (!stillShown()) return;
      el.dataset.state = found.state;
      el.textContent = found.text;
      el.title = found.vkey ? `the log's key: ${found.vkey}` : "";
      if (found.state !== "pending") return;
      await new Promise((done) => setTimeout(done, 2500));
    }
  }

  return { show, check };
})();
