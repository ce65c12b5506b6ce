// Runs the frontend's own API client (its TypeScript sources, transpiled on load) against a
// served Scribe, for the refusal tests. Usage:
//   NEXT_PUBLIC_API_BASE_URL=http://127.0.0.1:PORT node run_client.cjs FRONTEND_DIR < call.json
// call.json: {"token": "...", "function": "templateAPI.generateTemplate", "args": [...]}
// Prints one JSON line: {"fetches": n, "ok": bool, "error": {name, message, status, retryable,
// retryAfter, userMessage} | null}. Only the auth store is replaced (it needs a browser
// session); the client, its errors, retry, schemas and configuration are the frontend's files.
"use strict";

const fs = require("fs");
const path = require("path");
const Module = require("module");

const frontend = path.resolve(process.argv[2]);
const call = JSON.parse(fs.readFileSync(0, "utf8"));
const ts = require(require.resolve("typescript", { paths: [frontend] }));

// Everything the client logs goes to stderr: stdout carries only the result.
for (const level of ["log", "info", "warn", "error", "debug"]) {
  console[level] = (...parts) => process.stderr.write(parts.map(String).join(" ") + "\n");
}

const authStore = path.join(frontend, "stores", "auth-store.ts");
const originalResolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (request.startsWith("@/")) {
    request = path.join(frontend, request.slice(2));
  }
  for (const candidate of [request, request + ".ts", path.join(request, "index.ts")]) {
    if (path.isAbsolute(candidate) && fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
      return candidate;
    }
  }
  if (request.startsWith(".") && parent && parent.filename) {
    const base = path.resolve(path.dirname(parent.filename), request);
    for (const candidate of [base + ".ts", path.join(base, "index.ts")]) {
      if (fs.existsSync(candidate)) return candidate;
    }
  }
  return originalResolve.call(this, request, parent, ...rest);
};

require.extensions[".ts"] = function (module, filename) {
  if (filename === authStore) {
    module.exports = { useAuthStore: { getState: () => ({ getToken: () => call.token }) } };
    return;
  }
  const source = fs.readFileSync(filename, "utf8");
  const output = ts.transpileModule(source, {
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2020,
      esModuleInterop: true,
    },
    fileName: filename,
  });
  module._compile(output.outputText, filename);
};

let fetches = 0;
const realFetch = globalThis.fetch;
globalThis.fetch = (...args) => {
  fetches += 1;
  return realFetch(...args);
};

async function main() {
  const [moduleName, functionName] = call.function.split(".");
  const file = moduleName === "adminApi" ? "lib/api/admin.ts" : "lib/api/index.ts";
  const api = require(path.join(frontend, file));
  let result = { fetches: 0, ok: true, error: null };
  try {
    await api[moduleName][functionName](...call.args);
  } catch (error) {
    result.ok = false;
    result.error = {
      name: error.name,
      message: error.message,
      status: error.status ?? null,
      retryable: error.retryable ?? null,
      retryAfter: error.retryAfter ?? null,
      userMessage: typeof error.getUserMessage === "function" ? error.getUserMessage() : null,
    };
  }
  result.fetches = fetches;
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack) + "\n");
  process.exit(2);
});
