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

// The manifest vectors proto/tests/vectors/manifest_*.hex (bodies) and the one-line summary
// controller/src/web/manifest.rs builds from them; web/signing.rs checks both.
const GOLDEN_MANIFEST_FIRMWARE =
  "ef070207908ed7ca069083fcca06000c73746d333266342d6576616c010402038f272ca6d96caedf3d860ff34ed21868" +
  "f04ce18a2f41686f513c3c989146ca79c0b8028008a2b7370f6c0d929dd93772f3ed15eb4d170cf1ffbad654b53b1ee2" +
  "b707e55021051f014feb3e3009e4558c76e0050645e8898f3962fb50be4eedcb50f3d05ab756010100027787eb5fda6c" +
  "20b7817c1fa9dc08af833b88307032b3a0a96677fc730aef9a3f48075a597e721a156e2e0799de5cc0c5324dc6e7eaf1" +
  "cdd46250868ec53215dd";
const GOLDEN_SUMMARY_FIRMWARE =
  "proposal 1007 revision 2 sequence 7 | firmware 1.4.2 for stm32f4-eval | image 8f272ca6d96caedf3d" +
  "860ff34ed21868f04ce18a2f41686f513c3c989146ca79 of 40000 bytes in chunks of 1024 | security count" +
  "er 3 | cohort of 5 devices, root a2b7370f6c0d929dd93772f3ed15eb4d170cf1ffbad654b53b1ee2b707e5502" +
  "1 | tier two_person | rollback previous | security yes | break-glass no | issued 1767229200 expi" +
  "res 1767834000 | rollout plan 1f014feb3e3009e4558c76e0050645e8898f3962fb50be4eedcb50f3d05ab756 |" +
  " policy 7787eb5fda6c20b7817c1fa9dc08af833b88307032b3a0a96677fc730aef9a3f | requester 48075a597e7" +
  "21a156e2e0799de5cc0c5324dc6e7eaf1cdd46250868ec53215dd";
const GOLDEN_MANIFEST_CONFIG =
  "f0070108908ed7ca069083fcca060107197b227265706f72745f696e74657276616c5f73223a3330307da2b7370f6c0d" +
  "929dd93772f3ed15eb4d170cf1ffbad654b53b1ee2b707e55021051f014feb3e3009e4558c76e0050645e8898f3962fb" +
  "50be4eedcb50f3d05ab756010000017787eb5fda6c20b7817c1fa9dc08af833b88307032b3a0a96677fc730aef9a3f48" +
  "075a597e721a156e2e0799de5cc0c5324dc6e7eaf1cdd46250868ec53215dd";
const GOLDEN_SUMMARY_CONFIG =
  "proposal 1008 revision 1 sequence 8 | config version 7 | payload 7b227265706f72745f696e746572766" +
  "16c5f73223a3330307d | cohort of 5 devices, root a2b7370f6c0d929dd93772f3ed15eb4d170cf1ffbad654b5" +
  "3b1ee2b707e55021 | tier single | rollback previous | security no | break-glass no | issued 17672" +
  "29200 expires 1767834000 | rollout plan 1f014feb3e3009e4558c76e0050645e8898f3962fb50be4eedcb50f3" +
  "d05ab756 | policy 7787eb5fda6c20b7817c1fa9dc08af833b88307032b3a0a96677fc730aef9a3f | requester 4" +
  "8075a597e721a156e2e0799de5cc0c5324dc6e7eaf1cdd46250868ec53215dd";
const GOLDEN_MANIFEST_DECOMMISSION =
  "f1070109908ed7ca069083fcca0602882e941c3a1f41e805e06dbabbfb04a7111d7c91a023a4ffc10bc2dd45dd33e601" +
  "1f014feb3e3009e4558c76e0050645e8898f3962fb50be4eedcb50f3d05ab756000000037787eb5fda6c20b7817c1fa9" +
  "dc08af833b88307032b3a0a96677fc730aef9a3f48075a597e721a156e2e0799de5cc0c5324dc6e7eaf1cdd46250868e" +
  "c53215dd";
const GOLDEN_SUMMARY_DECOMMISSION =
  "proposal 1009 revision 1 sequence 9 | decommission | cohort of 1 devices, root 882e941c3a1f41e80" +
  "5e06dbabbfb04a7111d7c91a023a4ffc10bc2dd45dd33e6 | tier expert | rollback none | security no | br" +
  "eak-glass no | issued 1767229200 expires 1767834000 | rollout plan 1f014feb3e3009e4558c76e005064" +
  "5e8898f3962fb50be4eedcb50f3d05ab756 | policy 7787eb5fda6c20b7817c1fa9dc08af833b88307032b3a0a9667" +
  "7fc730aef9a3f | requester 48075a597e721a156e2e0799de5cc0c5324dc6e7eaf1cdd46250868ec53215dd";
// Not a vector: the firmware manifest with a roll-forward version, break-glass and the largest
// expiry, so the self-test covers what no vector does (web/signing.rs checks it with proto).
const CHECK_MANIFEST_ROLLFORWARD =
  "ef070207908ed7ca06ffffffffffffffffff01000c73746d333266342d6576616c010402038f272ca6d96caedf3d860f" +
  "f34ed21868f04ce18a2f41686f513c3c989146ca79c0b8028008a2b7370f6c0d929dd93772f3ed15eb4d170cf1ffbad6" +
  "54b53b1ee2b707e55021051f014feb3e3009e4558c76e0050645e8898f3962fb50be4eedcb50f3d05ab7560201040101" +
  "01027787eb5fda6c20b7817c1fa9dc08af833b88307032b3a0a96677fc730aef9a3f48075a597e721a156e2e0799de5c" +
  "c0c5324dc6e7eaf1cdd46250868ec53215dd";
const CHECK_SUMMARY_ROLLFORWARD =
  "proposal 1007 revision 2 sequence 7 | firmware 1.4.2 for stm32f4-eval | image 8f272ca6d96caedf3d" +
  "860ff34ed21868f04ce18a2f41686f513c3c989146ca79 of 40000 bytes in chunks of 1024 | security count" +
  "er 3 | cohort of 5 devices, root a2b7370f6c0d929dd93772f3ed15eb4d170cf1ffbad654b53b1ee2b707e5502" +
  "1 | tier two_person | rollback version 1.4.1 | security yes | break-glass yes | issued 176722920" +
  "0 expires 18446744073709551615 | rollout plan 1f014feb3e3009e4558c76e0050645e8898f3962fb50be4eed" +
  "cb50f3d05ab756 | policy 7787eb5fda6c20b7817c1fa9dc08af833b88307032b3a0a96677fc730aef9a3f | reque" +
  "ster 48075a597e721a156e2e0799de5cc0c5324dc6e7eaf1cdd46250868ec53215dd";

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

// A reader of postcard, the canonical encoding of every signed body (proto/src/codec.rs):
// unsigned integers as LEB128 varints, enums as their variant index (a varint), bools as one
// byte, strings and byte slices as a varint length then the bytes, 32-byte digests and keys raw.
function postcardReader(bytes) {
  let at = 0;
  const r = {
    byte() {
      if (at >= bytes.length) throw new Error("the manifest ends early, at byte " + at);
      return bytes[at++];
    },
    uint(bits, what) {
      let v = 0n;
      for (let shift = 0n; shift < 70n; shift += 7n) {
        const b = r.byte();
        v |= BigInt(b & 0x7f) << shift;
        if ((b & 0x80) === 0) {
          if (v >= 1n << BigInt(bits)) throw new Error(what + " does not fit in " + bits + " bits");
          return v;
        }
      }
      throw new Error(what + ": varint too long");
    },
    raw(n, what) {
      if (at + n > bytes.length) throw new Error("the manifest ends inside " + what);
      const out = bytes.slice(at, at + n);
      at += n;
      return out;
    },
    slice(what) {
      return r.raw(Number(r.uint(32, what + " length")), what);
    },
    str(what) {
      return new TextDecoder("utf-8", { fatal: true }).decode(r.slice(what));
    },
    bool(what) {
      const b = r.byte();
      if (b > 1) throw new Error(what + " is not a bool");
      return b === 1;
    },
    variant(names, what) {
      const i = Number(r.uint(32, what));
      if (i >= names.length) throw new Error(what + ": unknown variant " + i);
      return names[i];
    },
    end() {
      if (at !== bytes.length) throw new Error((bytes.length - at) + " trailing bytes after the manifest");
    },
  };
  return r;
}

// Decodes a Manifest body (proto/src/manifest.rs), field by field in declaration order.
function decodeManifest(bytes) {
  const r = postcardReader(bytes);
  const version = (what) => [r.uint(16, what), r.uint(16, what), r.uint(16, what)].join(".");
  const m = {
    proposal: r.uint(64, "proposal"),
    revision: r.uint(32, "revision"),
    sequence: r.uint(64, "sequence"),
    issuedAt: r.uint(64, "issued_at"),
    expiresAt: r.uint(64, "expires_at"),
  };
  m.kind = r.variant(["firmware", "config", "decommission"], "action");
  if (m.kind === "firmware") {
    m.hardware = r.str("hardware");
    m.version = version("firmware version");
    m.securityCounter = r.uint(32, "security_counter");
    m.imageDigest = bytesToHex(r.raw(32, "image_digest"));
    m.imageSize = r.uint(32, "image_size");
    m.chunkSize = r.uint(32, "chunk_size");
  } else if (m.kind === "config") {
    m.configVersion = r.uint(32, "config version");
    m.payload = bytesToHex(r.slice("config payload"));
  }
  m.cohortRoot = bytesToHex(r.raw(32, "cohort root"));
  m.cohortSize = r.uint(32, "cohort size");
  m.rolloutPlan = bytesToHex(r.raw(32, "rollout_plan"));
  m.rollback = r.variant(["none", "previous", "version"], "rollback");
  if (m.rollback === "version") m.rollback = "version " + version("rollback version");
  m.security = r.bool("security");
  m.breakGlass = r.bool("break_glass");
  m.tier = r.variant(["auto_pass", "single", "two_person", "expert", "blocked"], "tier");
  m.policy = bytesToHex(r.raw(32, "policy"));
  m.requester = bytesToHex(r.raw(32, "requester"));
  r.end();
  return m;
}

// The one-line summary controller/src/web/manifest.rs builds, from the decoded fields.
function manifestSummary(m) {
  const yes = (b) => (b ? "yes" : "no");
  let action = "decommission";
  if (m.kind === "firmware") {
    action = "firmware " + m.version + " for " + m.hardware + " | image " + m.imageDigest + " of " + m.imageSize +
      " bytes in chunks of " + m.chunkSize + " | security counter " + m.securityCounter;
  } else if (m.kind === "config") {
    action = "config version " + m.configVersion + " | payload " + m.payload;
  }
  return "proposal " + m.proposal + " revision " + m.revision + " sequence " + m.sequence + " | " + action +
    " | cohort of " + m.cohortSize + " devices, root " + m.cohortRoot + " | tier " + m.tier + " | rollback " + m.rollback +
    " | security " + yes(m.security) + " | break-glass " + yes(m.breakGlass) + " | issued " + m.issuedAt +
    " expires " + m.expiresAt + " | rollout plan " + m.rolloutPlan + " | policy " + m.policy + " | requester " + m.requester;
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

// The self-test: this script decodes the manifest vectors as proto does, computes the manifest
// digest alice approved, and builds and signs her approval bytes exactly as the golden vector.
async function selfTest() {
  const cases = [
    [GOLDEN_MANIFEST_FIRMWARE, GOLDEN_SUMMARY_FIRMWARE],
    [GOLDEN_MANIFEST_CONFIG, GOLDEN_SUMMARY_CONFIG],
    [GOLDEN_MANIFEST_DECOMMISSION, GOLDEN_SUMMARY_DECOMMISSION],
    [CHECK_MANIFEST_ROLLFORWARD, CHECK_SUMMARY_ROLLFORWARD],
  ];
  for (const [body, summary] of cases) {
    if (manifestSummary(decodeManifest(hexToBytes(body, "vector"))) !== summary) {
      return "a manifest vector decodes differently here than in proto";
    }
  }
  const firmware = hexToBytes(GOLDEN_MANIFEST_FIRMWARE, "vector");
  if (bytesToHex(await manifestDigest(firmware)) !== GOLDEN_DIGEST) {
    return "the manifest digest computed here differs from the golden vector";
  }
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
  const state = {
    diffOpened: false,
    countOk: false,
    digestOk: false,
    decodedCount: null,
    selfTestOk: false,
    key: null,
    busy: false,
  };
  window.airlockCard = state; // for people debugging in the console (and the browser test)

  function gate() {
    const approve = $("approve");
    if (!approve) return;
    const reason = ($("reason") && $("reason").value.trim()) || "";
    const missing = [];
    if (!state.selfTestOk) missing.push("the signing self-test must pass");
    if (!state.digestOk) missing.push("the manifest bytes must decode to what the card shows, with the server's digest");
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
      // Against the cohort size decoded here from the bytes to be signed, not the server's text.
      state.countOk = typed !== "" && state.decodedCount !== null && typed === state.decodedCount;
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
      const bytes = hexToBytes(d.manifest, "the manifest");
      const computed = bytesToHex(await manifestDigest(bytes));
      const m = decodeManifest(bytes);
      const summary = manifestSummary(m);
      say("decoded", summary);
      if (computed !== d.digest.toLowerCase()) {
        throw new Error("the digest of the manifest bytes is " + computed + ", not the server's " + d.digest);
      }
      if (summary !== d.summary) {
        throw new Error("the manifest bytes say “" + summary + "” but the card was rendered from “" + d.summary + "”");
      }
      if (String(m.cohortSize) !== d.count || String(m.proposal) !== d.id || String(m.revision) !== (d.manifestRevision || d.revision) ||
          Number(d.manifestRevision || d.revision) > Number(d.revision)) {
        throw new Error("the manifest bytes are for proposal " + m.proposal + " revision " + m.revision + " and " +
          m.cohortSize + " devices, not what the card shows");
      }
      state.decodedCount = String(m.cohortSize);
      state.digestOk = true;
      if (count) count.dispatchEvent(new Event("input"));
      say("digest-state", "✓ decoded in this browser from the bytes you sign (they match the card); manifest digest " +
        computed + " (matches the server's)", true);
    } catch (e) {
      say("digest-state", "Signing disabled: " + e.message, false);
    }
    gate();
  })();
  gate();
}

document.addEventListener("DOMContentLoaded", cardScript);
