// checks.js: what Validate found in the policies view (POST
// /v1/policies/test): the verdict, the problems located on their file and
// line, the tests' results and the coverage per file. Every location is a
// button that opens the file in the editor with the caret there.

import { $, el, say } from "./dom.js";

let editor; // {has(file), goTo(file, row, col)}

// setup tells the checks how to reach the editor.
export function setup(e) {
  editor = e;
}

// testProblems turns the failing and erring tests of a report into
// problems, located where the test failed (or at the test rule).
export function testProblems(report) {
  const out = [];
  for (const t of report.tests || []) {
    const name = `${t.package}.${t.name}`;
    if (t.outcome === "fail") {
      const f = t.failure || {};
      const at = f.row ? f : t;
      out.push({ file: at.file, row: at.row, col: at.col, code: "test_failed", message: `${name} failed`, details: f.expr || [] });
    } else if (t.outcome === "error") {
      const e = t.error || {};
      const at = e.row ? e : t;
      out.push({ file: at.file, row: at.row, col: at.col, code: "test_error", message: `${name}: ${e.message || "error"}`, details: e.details || [] });
    }
  }
  return out;
}

// render shows a check: its verdict, its problems, its tests and coverage.
export function render(check) {
  const state = $("pol-check-state");
  state.classList.remove("error", "allow");
  $("pol-problems-box").hidden = true;
  $("pol-tests-box").hidden = true;
  $("pol-coverage-box").hidden = true;
  if (!check) {
    say(state, "Not validated yet: Validate compiles the draft and runs its tests.");
    return;
  }
  const r = check.report;
  const c = r?.counts;
  if (!r) {
    say(state, `The draft does not compile: ${plural(check.problems.length, "problem")}.`);
    state.classList.add("error");
  } else if (c.fail || c.error) {
    say(state, `${c.fail + c.error} of ${plural(c.pass + c.fail + c.error + c.skip, "test")} failed.`);
    state.classList.add("error");
  } else {
    say(state, `Compiles; ${c.pass} of ${plural(c.pass + c.skip, "test")} passed` + (r.coverage ? `; ${r.coverage.percent.toFixed(1)}% of lines covered.` : "."));
    state.classList.add("allow");
  }
  if (check.problems.length) {
    $("pol-problems").replaceChildren(problemList(check.problems));
    $("pol-problems-box").hidden = false;
  }
  if (r) renderTests(r);
  if (r?.coverage) renderCoverage(r.coverage);
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// problemList draws problems as a list; each located one is a button that
// moves the caret to its file and line.
export function problemList(problems) {
  const ul = el("ul", null, "problems");
  for (const p of problems) {
    const li = el("li");
    if (p.file) li.append(location(p.file, p.row, p.col), " ");
    li.append(el("span", (p.code ? p.code + ": " : "") + p.message));
    if (p.details?.length) li.append(el("pre", p.details.join("\n"), "details"));
    ul.append(li);
  }
  return ul;
}

// location is a button naming file:row:col (or showing label) that opens
// the file in the editor with the caret there.
export function location(file, row, col, label) {
  const text = label || file + (row ? `:${row}${col ? ":" + col : ""}` : "");
  if (!editor.has(file)) return el("span", text, "mono");
  const b = el("button", text, "loc");
  b.type = "button";
  b.dataset.file = file;
  b.addEventListener("click", () => editor.goTo(file, row, col));
  return b;
}

function renderTests(r) {
  $("pol-test-counts").textContent =
    `${r.counts.pass} passed, ${r.counts.fail} failed, ${r.counts.error} erred` + (r.counts.skip ? `, ${r.counts.skip} skipped` : "");
  const failing = r.tests.filter((t) => t.outcome === "fail" || t.outcome === "error");
  const rest = r.tests.filter((t) => !failing.includes(t));
  const ul = $("pol-tests");
  ul.replaceChildren(...failing.map(testItem));
  const details = $("pol-tests-passed");
  details.hidden = rest.length === 0;
  details.querySelector("summary").textContent = `${rest.length} passed or skipped`;
  $("pol-tests-rest").replaceChildren(...rest.map(testItem));
  $("pol-tests-box").hidden = false;
}

function testItem(t) {
  const li = el("li", null, "test " + t.outcome);
  li.append(el("span", t.outcome, "outcome"), " ", el("span", t.name, "mono"), " ", location(t.file, t.row, t.col));
  const lines = [...(t.failure?.expr || [])];
  if (t.error) lines.push(t.error.message);
  if (t.output) lines.push("output:", t.output.trimEnd());
  if (lines.length) li.append(el("pre", lines.join("\n"), "details"));
  return li;
}

function renderCoverage(cov) {
  const body = $("pol-coverage").tBodies[0];
  body.replaceChildren(
    ...cov.files.map((f) => {
      const tr = el("tr");
      // The file's name leads to its first line the tests did not cover.
      const name = el("td");
      name.append(location(f.file, f.not_covered?.[0]?.start, 1, f.file));
      tr.append(name, el("td", f.percent.toFixed(1) + "%", "num"), el("td", `${f.covered_lines} / ${f.covered_lines + f.not_covered_lines}`, "num"));
      return tr;
    }),
  );
  $("pol-coverage-total").textContent = `Total ${cov.percent.toFixed(1)}% (${cov.covered_lines} of ${cov.covered_lines + cov.not_covered_lines} lines)`;
  $("pol-coverage-box").hidden = false;
}
