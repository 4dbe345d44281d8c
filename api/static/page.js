// The product page's one script (served from /static/page.js under script-src 'self'; the page
// reads fine without it): times in the viewer's own zone, and "check it yourself": the Merkle
// path from an event hash to its root recomputed with Web Crypto (RFC 9162: leaf
// SHA-256(0x00 || hash), node SHA-256(0x01 || left || right)) and the root read from the
// TraceAnchor through a JSON-RPC node the viewer picks. Nothing here asks tracefin's API.
"use strict";

(function () {
  // batch(uint64) of TraceAnchor: keccak256("batch(uint64)")[:4] (ledger/provenance.py).
  const BATCH_SELECTOR = "857553cc";
  const HASH_ID = /^ni:\/\/\/sha-256;([0-9a-f]{64})\?ver=CBV2\.0$/;
  const lang = document.documentElement.lang || undefined;

  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) {
      el.textContent = at.toLocaleString(lang, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", timeZoneName: "short",
      });
    }
  }

  const section = document.getElementById("check");
  if (!section || !window.crypto || !window.crypto.subtle) {
    return; // no secure context: the proof files and `tracefin verify` remain
  }
  const say = JSON.parse(section.dataset.messages || "{}");
  const trusted = (section.dataset.anchors || "").toLowerCase().split(" ").filter(Boolean);
  const steps = document.getElementById("check-steps");
  const verdict = document.getElementById("check-verdict");
  const rpcInput = document.getElementById("rpc");

  function bytes(hex) {
    const clean = String(hex).replace(/^0x/, "");
    if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error("not hex: " + hex);
    const out = new Uint8Array(clean.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(2 * i, 2), 16);
    return out;
  }

  function hex(buffer) {
    return "0x" + Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function sha256(prefix, ...parts) {
    const length = 1 + parts.reduce((n, p) => n + p.length, 0);
    const input = new Uint8Array(length);
    input[0] = prefix;
    let at = 1;
    for (const part of parts) { input.set(part, at); at += part.length; }
    return new Uint8Array(await crypto.subtle.digest("SHA-256", input));
  }

  // RFC 9162 section 2.1.3.2, as ledger/merkle.py's verify_leaf_inclusion (division, not
  // 32-bit shifts: positions may pass 2^31).
  async function pathToRoot(digest, index, size, path) {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
      return null;
    }
    let r = await sha256(0, digest);
    const trail = [["leaf", null, hex(r)]];
    let fn = index, sn = size - 1;
    for (const sibling of path) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(1, sibling, r);
        trail.push(["left", hex(sibling), hex(r)]);
        while (fn !== 0 && fn % 2 === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await sha256(1, r, sibling);
        trail.push(["right", hex(sibling), hex(r)]);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    return sn === 0 ? { root: hex(r), trail } : null;
  }

  async function rpc(url, method, params) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      referrerPolicy: "no-referrer",
      credentials: "omit",
    });
    const answer = await response.json();
    if (answer.error) throw new Error(answer.error.message || "RPC error");
    return answer.result;
  }

  function line(text, ok) {
    const item = document.createElement("li");
    item.textContent = text;
    if (ok === false) item.dataset.ok = "false";
    steps.appendChild(item);
  }

  function conclude(valid) {
    verdict.dataset.verdict = valid ? "valid" : "invalid";
    verdict.textContent = valid ? say.valid : say.invalid;
  }

  async function check(bundle) {
    steps.textContent = "";
    verdict.dataset.verdict = "checking";
    verdict.textContent = "…";
    let valid = true;
    const id = HASH_ID.exec(String(bundle.event_hash || ""));
    const path = Array.isArray(bundle.audit_path) ? bundle.audit_path.map(bytes) : null;
    const walked = id && path && path.every((p) => p.length === 32)
      ? await pathToRoot(bytes(id[1]), bundle.leaf_index, bundle.tree_size, path) : null;
    if (walked) {
      for (const [side, sibling, result] of walked.trail) {
        line(`${say[side]}${sibling ? " " + sibling : ""} → ${result}`);
      }
    }
    const leads = walked !== null && walked.root === String(bundle.root).toLowerCase();
    line(leads ? say.path_ok : say.path_bad, leads);
    valid = valid && leads;

    const contract = String(bundle.contract || "").toLowerCase();
    const anchor = `${bundle.chain_id}:${contract}`;
    const known = trusted.includes(anchor);
    line(`${say.contract}: ${bundle.contract} (${say.chain} ${bundle.chain_id})`, known);
    if (!known) { line(say.contract_bad, false); valid = false; }
    try {
      const url = rpcInput.value.trim();
      // Only a node's address: an empty field must not send the check to this very page.
      if (!/^https?:\/\/[^\s]+$/.test(url)) throw new Error(say.check_rpc_missing);
      const chainId = parseInt(await rpc(url, "eth_chainId", []), 16);
      if (chainId !== bundle.chain_id) { line(say.chain_bad, false); valid = false; }
      const batchId = BigInt(bundle.batch_id).toString(16).padStart(64, "0");
      const data = await rpc(url, "eth_call", [
        { to: bundle.contract, data: "0x" + BATCH_SELECTOR + batchId }, "latest"]);
      const words = String(data).replace(/^0x/, "").match(/.{64}/g) || [];
      const onChain = "0x" + (words[0] || "");
      line(`${say.call} ${bundle.batch_id}: ${onChain}`);
      const same = walked !== null && onChain === walked.root;
      line(same ? say.root_ok : say.root_bad, same);
      valid = valid && same;
      const range = words.length >= 4 && BigInt("0x" + words[1]) === BigInt(bundle.first_index) &&
        BigInt("0x" + words[2]) === BigInt(bundle.tree_size);
      if (!range) { line(say.range_bad, false); valid = false; }
      if (words.length >= 4) line(`${say.block} ${BigInt("0x" + words[3])}`);
    } catch (error) {
      line(`${say.error}: ${error.message}`, false);
      valid = false;
    }
    conclude(valid);
  }

  for (const button of document.querySelectorAll("button.check[data-bundle]")) {
    button.hidden = false;
    button.addEventListener("click", () => {
      let bundle;
      try {
        bundle = JSON.parse(button.dataset.bundle);
      } catch (error) {
        steps.textContent = "";
        line(String(error.message), false);
        conclude(false);
        return;
      }
      section.scrollIntoView();
      check(bundle).catch((error) => { line(String(error.message), false); conclude(false); });
    });
  }
})();
