#!/usr/bin/env node
// Compiles tracefin's contracts with the pinned solc-js (standard JSON) and writes one artifact
// per deployable contract: {contractName, abi, bytecode, deployedBytecode, compiler}.
//
//   node contracts/build.mjs [output-dir]      (default: contracts/artifacts)
//
// Output is deterministic: pinned compiler and settings, no metadata hash in the bytecode,
// source unit names relative to the repository root, JSON with sorted keys, 2-space indent
// and a trailing newline. Any compiler warning fails the build.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const CONTRACTS_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(CONTRACTS_DIR);
const DEPLOYABLE = ["TraceAnchor", "PledgeRegistry"];
const SETTINGS = {
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none" },
  optimizer: { enabled: true, runs: 10000 },
};

function solidityFiles(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.name !== "artifacts" && entry.name !== "node_modules")
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return solidityFiles(path);
      return entry.name.endsWith(".sol") ? [path] : [];
    })
    .sort();
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, sortKeys(value[key])]),
    );
  }
  return value;
}

function compile() {
  const sources = {};
  for (const path of solidityFiles(CONTRACTS_DIR)) {
    sources[relative(ROOT, path).split(sep).join("/")] = { content: readFileSync(path, "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      ...SETTINGS,
      outputSelection: {
        "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const problems = output.errors ?? [];
  for (const problem of problems) console.error(problem.formattedMessage ?? problem.message);
  if (problems.length > 0) {
    const errors = problems.filter((p) => p.severity === "error").length;
    throw new Error(`solc reported ${errors} error(s), ${problems.length - errors} warning(s)`);
  }
  return output.contracts;
}

function main() {
  const outDir = resolve(process.argv[2] ?? join(CONTRACTS_DIR, "artifacts"));
  const contracts = compile();
  mkdirSync(outDir, { recursive: true });
  for (const name of DEPLOYABLE) {
    const compiled = contracts[`contracts/${name}.sol`]?.[name];
    if (!compiled) throw new Error(`contracts/${name}.sol does not define contract ${name}`);
    const artifact = {
      contractName: name,
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
      compiler: { version: solc.version(), settings: SETTINGS },
    };
    const path = join(outDir, `${name}.json`);
    writeFileSync(path, `${JSON.stringify(sortKeys(artifact), null, 2)}\n`);
    console.log(`wrote ${relative(process.cwd(), path) || path}`);
  }
}

main();
