// The approval card's script: checks the manifest digest, gates Approve, imports the
// approver's key into WebCrypto (non-extractable) and signs the approval statement here.
// The private key never leaves this page; the server receives only the signature.
// docs/web-ui.md describes the flow. No dependencies, no build step.
"use strict";

// Domains are NUL-terminated (proto/src/sig.rs).
const APPROVAL_DOMAIN = "airlock/v1/approval\0";
const MANIFEST_DOMAIN = "airlock/v1/manifest\0";
// PKCS#8 PrivateKeyInfo for Ed25519 (RFC 8410) up to the 32-byte seed.
const PKCS8_ED25519_PREFIX = "302e020100300506032b657004220420";
// controller/src/keys.rs: one line, the tag and 64 hex digits.
const KEY_FILE_TAG = "airlock-ed25519-seed-v1";

// The golden vector proto/tests/vectors/approval.hex: alice (seed [0x21; 32]) approves the
// manifest of manifest_firmware.hex. controller/src/web/signing.rs checks these constants
// against that file; the self-test below checks this script against these constants.
const GOLDEN_SEED = "2121212121212121212121212121212121212121212121212121212121212121";
const GOLDEN_DIGEST = "bba6554c799d408d9dc80314a25b184b1856bceba4ebc3df59951d853d55d1ea";
const GOLDEN_APPROVER = "884b8857f4eaa1613c61504db34d4beaf346517a0e31de3cddd4d9b4201d9d0b";
const GOLDEN_MESSAGE =
  "6169726c6f636b2f76312f617070726f76616c00" +
  "bba6554c799d408d9dc80314a25b184b1856bceba4ebc3df59951d853d55d1ea" +
  "00" +
  "884b8857f4eaa1613c61504db34d4beaf346517a0e31de3cddd4d9b4201d9d0b";
const GOLDEN_SIGNATURE =
  "1941e7b7d848efb0ae7cce252fd0db68ba4658aed2ee43ac679a85f7dd9828e9" +
  "eae9530ce91e808b68e5e638c13e89e988563d17b2c87bae0865c14438509a02";

function hexToBytes(hex, what) {
  const h = hex.trim();
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) {
    throw new Error(what + " is not hex");
  }
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(h.substr(2 * i, 2), 16);
  }
  return out;
}

function bytesToHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// The exact bytes an approver signs: DOMAIN || postcard(ApprovalStatement). The statement is
// 65 fixed bytes: the 32-byte manifest digest, the decision as its postcard variant index
// (one byte: 0 approve, 1 reject), the approver's 32-byte public key.
function approvalMessage(digest, decision, approver) {
  if (digest.length !== 32) throw new Error("a manifest digest is 32 bytes");
  if (approver.length !== 32) throw new Error("an Ed25519 public key is 32 bytes");
  const index = { Approve: 0, Reject: 1 }[decision];
  if (index === undefined) throw new Error("decision must be Approve or Reject");
  return concat(new TextEncoder().encode(APPROVAL_DOMAIN), digest, [index], approver);
}

// SHA-256(MANIFEST_DOMAIN || manifest), as devices and the CLI compute it.
async function manifestDigest(manifest) {
  const bytes = concat(new TextEncoder().encode(MANIFEST_DOMAIN), manifest);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// The 32-byte seed from an Airlock key file, or an error that says what is wrong with it.
function parseKeyFile(text) {
  const line = text.trim();
  if (!line.startsWith(KEY_FILE_TAG)) {
    throw new Error("not an Airlock key file: it must be one line, " + KEY_FILE_TAG + " followed by 64 hex digits");
  }
  const hex = line.slice(KEY_FILE_TAG.length).trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error("malformed key file: after " + KEY_FILE_TAG + " come exactly 64 hex digits (found " + hex.length + " characters)");
  }
  return hexToBytes(hex, "the key");
}

// Imports a seed as a non-extractable Ed25519 signing key.
async function importSeed(seed) {
  const pkcs8 = concat(hexToBytes(PKCS8_ED25519_PREFIX, "prefix"), seed);
  try {
    return await crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
  } finally {
    pkcs8.fill(0);
  }
}

// Imports the key file and proves it is the key the controller knows for this user: a
// signature by it must verify under the registered public key.
async function importKeyFile(text, registeredHex) {
  const seed = parseKeyFile(text);
  const key = await importSeed(seed);
  seed.fill(0);
  const registered = await crypto.subtle.importKey("raw", hexToBytes(registeredHex, "the registered key"), { name: "Ed25519" }, false, ["verify"]);
  const challenge = crypto.getRandomValues(new Uint8Array(32));
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, key, challenge);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, registered, sig, challenge))) {
    throw new Error("this key file holds a different key from the one the controller has registered for you (" + registeredHex.slice(0, 16) + "…): use your own key file");
  }
  return key;
}

// The self-test: this script's message bytes and signature are the golden vector's.
async function selfTest() {
  const message = approvalMessage(hexToBytes(GOLDEN_DIGEST, "digest"), "Approve", hexToBytes(GOLDEN_APPROVER, "key"));
  if (bytesToHex(message) !== GOLDEN_MESSAGE) {
    return "the approval bytes built here differ from the golden vector";
  }
  const key = await importSeed(hexToBytes(GOLDEN_SEED, "seed"));
  const sig = await crypto.subtle.sign({ name: "Ed25519" }, key, message);
  if (bytesToHex(sig) !== GOLDEN_SIGNATURE) {
    return "the signature made here differs from the golden vector";
  }
  return null;
}

async function api(method, path, body) {
  const resp = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-airlock-web": "1" },
    body: JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (_) {
    // Not JSON: reported as text below.
  }
  if (!resp.ok) {
    throw new Error((json && json.error) || text || "HTTP " + resp.status);
  }
  return json;
}

function $(id) {
  return document.getElementById(id);
}

function say(id, text, ok) {
  const el = $(id);
  if (!el) return;
  el.textContent = text;
  el.className = ok === undefined ? "note" : ok ? "ok" : "bad";
}

function cardScript() {
  const card = $("card");
  if (!card) return;
  const d = card.dataset;
  const opened = performance.now();
  const state = { diffOpened: false, countOk: false, digestOk: false, selfTestOk: false, key: null, busy: false };
  window.airlockCard = state; // for people debugging in the console (and the browser test)

  function gate() {
    const approve = $("approve");
    if (!approve) return;
    const reason = ($("reason") && $("reason").value.trim()) || "";
    const missing = [];
    if (!state.selfTestOk) missing.push("the signing self-test must pass");
    if (!state.digestOk) missing.push("the manifest digest must match the manifest bytes");
    if (!state.diffOpened) missing.push("open the diff");
    if (!state.countOk) missing.push("type the number of affected devices shown above");
    if (!state.key) missing.push("import your key file");
    if (!reason) missing.push("give a reason");
    approve.disabled = missing.length > 0 || state.busy;
    const rejectMissing = missing.filter((m) => m === "import your key file" || m === "give a reason" || m.startsWith("the "));
    $("reject").disabled = rejectMissing.length > 0 || state.busy;
    say("gate", missing.length ? "Before you can approve: " + missing.join("; ") + "." : "Ready to sign.", missing.length === 0);
  }

  const diff = $("diff");
  if (diff) {
    diff.addEventListener("toggle", () => {
      if (diff.open) state.diffOpened = true;
      gate();
    });
  }

  const count = $("count");
  if (count) {
    count.addEventListener("input", () => {
      const typed = count.value.replace(/[\s,.']/g, "");
      state.countOk = typed !== "" && typed === d.count;
      say("count-state", typed === "" ? "" : state.countOk ? "✓ matches the card" : "does not match the number of devices on the card", state.countOk);
      gate();
    });
  }

  const reason = $("reason");
  if (reason) reason.addEventListener("input", gate);

  const keyFile = $("key-file");
  if (keyFile) {
    keyFile.addEventListener("change", async () => {
      state.key = null;
      gate();
      const file = keyFile.files[0];
      if (!file) return;
      try {
        if (!d.publicKey) throw new Error("the controller has no approver key registered for you");
        state.key = await importKeyFile(await file.text(), d.publicKey);
        say("key-state", "✓ key imported into this browser (non-extractable); it matches your registered key " + d.publicKey.slice(0, 16) + "…", true);
      } catch (e) {
        say("key-state", e.message, false);
      }
      gate();
    });
  }

  async function decide(decision) {
    state.busy = true;
    gate();
    say("decision-state", "Signing…");
    try {
      const digest = hexToBytes(d.digest, "the manifest digest");
      const message = approvalMessage(digest, decision, hexToBytes(d.publicKey, "your public key"));
      const sig = await crypto.subtle.sign({ name: "Ed25519" }, state.key, message);
      await api("POST", "/api/proposals/" + d.id + "/decisions", {
        revision: Number(d.revision),
        decision,
        signature: bytesToHex(sig),
        reason: $("reason").value.trim(),
        card_ms: Math.round(performance.now() - opened),
        diff_opened: state.diffOpened,
      });
      say("decision-state", "Signed and recorded. Reloading…", true);
      window.location.reload();
    } catch (e) {
      say("decision-state", "Not recorded: " + e.message, false);
      state.busy = false;
      gate();
    }
  }
  if ($("approve")) $("approve").addEventListener("click", () => decide("Approve"));
  if ($("reject")) $("reject").addEventListener("click", () => decide("Reject"));

  async function edit(spec, what) {
    say("edit-state", "Saving " + what + "…");
    try {
      await api("POST", "/api/proposals/" + d.id + "/revisions", spec);
      window.location.reload();
    } catch (e) {
      say("edit-state", "Not saved: " + e.message, false);
    }
  }
  for (const b of document.querySelectorAll("button.alternative")) {
    b.addEventListener("click", () => edit(JSON.parse(b.dataset.spec), "“" + b.textContent.trim() + "”"));
  }
  const save = $("save-edit");
  if (save) {
    save.addEventListener("click", () => {
      let spec;
      try {
        spec = JSON.parse($("spec-edit").value);
      } catch (e) {
        say("edit-state", "The edited proposal is not valid JSON: " + e.message, false);
        return;
      }
      edit(spec, "the edit");
    });
  }

  (async () => {
    const problem = await selfTest().catch((e) => "WebCrypto Ed25519 is not available here: " + e.message);
    state.selfTestOk = problem === null;
    say("selftest-state", problem === null ? "✓ signing self-test passed (golden vector)" : "Signing disabled: " + problem, problem === null);
    try {
      const computed = bytesToHex(await manifestDigest(hexToBytes(d.manifest, "the manifest")));
      state.digestOk = computed === d.digest.toLowerCase();
      say("digest-state", state.digestOk
        ? "✓ computed in this browser from the manifest bytes: " + computed + " (matches the server's)"
        : "Signing disabled: the digest of the manifest bytes is " + computed + ", not the server's " + d.digest, state.digestOk);
    } catch (e) {
      say("digest-state", "Signing disabled: " + e.message, false);
    }
    gate();
  })();
  gate();
}

document.addEventListener("DOMContentLoaded", cardScript);
